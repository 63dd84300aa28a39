"""services.lead_import.prepare_drafts makes, for leads not yet written, exactly the drafts that
scheduler.draft_for_step makes for them once written: text, state and hold reasons in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cadence.core.model import CampaignLead, Guardrails, HoldReason, Lead, LeadStatus, MessageState, Step
from cadence.core.templates import TemplateError
from cadence.services.lead_import import drafts_for, prepare_drafts
from cadence.services.scheduler import draft_for_step

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LEADS = (
    Lead("ann@acme.com", "Ann", "Lee", "Acme", fields={"Site": "our page", "Plan": "Gold"}),
    Lead("Bob@Beta.COM", "Bob", "", "Beta", fields={"Site": "https://beta.example/deal", "Plan": ""}),
    Lead("cy@gamma.de", "Cy", "Ng", "Gamma", consent=None, fields={"Site": "x", "Plan": "USD 99 per seat"}),
    Lead("di@delta.de", "", "Di", "", consent=True, fields={"Site": "", "Plan": "pri"}),
    Lead("ed@eps.io", "Ed\nBcc: x@y.z", "", "Eps", fields={"Site": "", "Plan": ""}),  # refused subject
    Lead("fay@phi.com", "Fay", "Fox", "Phi", fields={"Site": "see attached", "Plan": "Silver"}),
)
STEPS = (
    Step(1, "Hi {first_name|there} at {company|your team}", "Visit {site|our site}.\nYour plan: {plan}cing"),
    Step(1, "Quick question", "Hello {full_name}, {site}\n\nThe {plan|basic} plan is attached."),
    Step(2, "Follow-up for {company}", "{first_name}, see www.{company}.example/offer {plan}"),
)
GUARDRAILS = (Guardrails(), Guardrails(approve_first_touch=False))


def _draft_for_step(lead: Lead, lead_id: int, step: Step, guardrails: Guardrails) -> object:
    stored = Lead(
        email=lead.email.strip().lower(),
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        timezone=lead.timezone,
        consent=lead.consent,
        fields=lead.fields,
        id=lead_id,
    )
    enrolled = CampaignLead(campaign_id=7, lead=stored, status=LeadStatus.NEW, created_at=NOW)
    try:
        return draft_for_step(campaign_id=7, lead=enrolled, step=step, guardrails=guardrails)
    except TemplateError:
        return None


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("guardrails", GUARDRAILS)
def test_prepared_drafts_are_what_draft_for_step_makes(step: Step, guardrails: Guardrails) -> None:
    ids = {lead.email.strip().lower(): 100 + number for number, lead in enumerate(LEADS)}
    expected = [_draft_for_step(lead, ids[lead.email.lower()], step, guardrails) for lead in LEADS]
    prepared = prepare_drafts(LEADS, step=step, guardrails=guardrails)
    drafts = drafts_for(prepared, lead_ids=dict(ids), campaign_id=7, step_index=step.index)
    assert drafts == [draft for draft in expected if draft is not None]
    # the lead whose name holds a line break is left out where the subject shows the name
    assert len(drafts) == len(LEADS) - ("{first_name" in step.subject)


def test_a_link_or_price_added_by_a_merge_value_holds_the_draft_with_its_reason() -> None:
    step = STEPS[0]
    prepared = {p.address: p for p in prepare_drafts(LEADS, step=step, guardrails=GUARDRAILS[1])}
    assert prepared["ann@acme.com"].hold_reasons == ()
    assert prepared["bob@beta.com"].hold_reasons == (HoldReason.LINK,)
    assert prepared["bob@beta.com"].body == "Visit https://beta.example/deal.\nYour plan: cing"
    # consent region without consent, and "USD 99 per seat" from the merge value
    assert prepared["cy@gamma.de"].hold_reasons == (HoldReason.CONSENT_REQUIRED, HoldReason.PRICE)
    # "{plan}cing" with plan "pri" spells "pricing" across the merge field and the text after it
    assert prepared["di@delta.de"].hold_reasons == (HoldReason.PRICE,)
    assert prepared["di@delta.de"].subject == "Hi there at your team"
    drafts = drafts_for(
        prepared.values(), lead_ids={"ann@acme.com": 1, "bob@beta.com": 2}, campaign_id=7, step_index=1
    )
    assert [(d.lead_id, d.state) for d in drafts] == [
        (1, MessageState.APPROVED),
        (2, MessageState.PENDING_APPROVAL),
    ]


def test_the_collector_is_paused_inside_nested_and_concurrent_blocks_and_restored_after() -> None:
    import gc
    import threading

    from cadence.services.lead_import import collector_paused

    assert gc.isenabled()
    inner_entered, outer_may_leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other_thread() -> None:
        with collector_paused():
            inner_entered.set()
            outer_may_leave.wait(5)
            seen.append(gc.isenabled())

    with collector_paused():
        assert not gc.isenabled()
        worker = threading.Thread(target=other_thread)
        worker.start()
        inner_entered.wait(5)
        with collector_paused():
            assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's block is still running
    outer_may_leave.set()
    worker.join(5)
    assert seen == [False]
    assert gc.isenabled()
