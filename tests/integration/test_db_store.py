"""Repositories: accounts, campaigns, leads, the outbox state machine, suppression, audit, inbound."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from cadence.adapters.db.store import SqliteStore
from cadence.core.model import (
    AccountSettings,
    AuditEntry,
    AuditResult,
    CampaignStatus,
    ConnectionSecurity,
    Guardrails,
    HoldReason,
    IllegalTransition,
    InboundKind,
    Lead,
    LeadStatus,
    LegalBasis,
    MailboxState,
    MessageState,
    NewDraft,
    SentFolderKind,
    Step,
    SuppressionReason,
    Verdict,
)
from cadence.core.ports import DuplicateRecord, RecordNotFound
from tests.integration.db_helpers import T0, make_account, make_campaign, seed_outbox, store  # noqa: F401

# --- accounts ----------------------------------------------------------------------------------------------


def test_account_round_trip_keeps_every_setting(store: SqliteStore) -> None:  # noqa: F811
    settings = AccountSettings(
        email="Sam@Example.Test",
        display_name="Sam",
        smtp_host="mail.example.test",
        smtp_port=465,
        smtp_security=ConnectionSecurity.TLS,
        imap_host="mail.example.test",
        imap_port=993,
        ca_file="/etc/ssl/private-ca.pem",
        provider_key="gmail",
        guardrails=Guardrails(daily_cap=40, business_days=frozenset({0, 2, 4}), timezone="Europe/Paris"),
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
    )
    account = store.create_account(settings, now=T0)
    assert account.settings == dataclasses.replace(settings, email="sam@example.test")
    assert account.created_at == T0 and account.pace_factor == 1.0 and account.paused_reason is None
    assert store.get_account(account.id) == account
    assert store.list_accounts() == (account,)

    changed = store.update_account(
        account.id, settings=dataclasses.replace(settings, guardrails=Guardrails(hourly_cap=1))
    )
    assert changed.settings.guardrails == Guardrails(hourly_cap=1)
    paused = store.set_account_pause(account.id, reason="bounce breaker", until=T0 + timedelta(days=1))
    assert (paused.paused_reason, paused.paused_until) == ("bounce breaker", T0 + timedelta(days=1))
    assert store.set_account_pause(account.id, reason=None).paused_until is None
    backed_off = store.set_account_backoff(account.id, until=T0 + timedelta(hours=2), pace_factor=0.5)
    assert (backed_off.backoff_until, backed_off.pace_factor) == (T0 + timedelta(hours=2), 0.5)
    with pytest.raises(ValueError, match="pace factor"):
        store.set_account_backoff(account.id, until=None, pace_factor=0)
    assert store.set_warmup_started(account.id, at=T0).warmup_started_at == T0


def test_account_errors_are_ours(store: SqliteStore) -> None:  # noqa: F811
    make_account(store)
    with pytest.raises(DuplicateRecord):
        make_account(store, email="SALES@example.test")
    with pytest.raises(RecordNotFound):
        store.get_account(404)
    with pytest.raises(RecordNotFound):
        store.set_account_pause(404, reason="x")


def test_naive_datetimes_are_refused(store: SqliteStore) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="naive"):
        make_account(store, now=T0.replace(tzinfo=None))
    assert store.list_accounts() == ()


# --- campaigns and leads -----------------------------------------------------------------------------------


def test_campaign_keeps_ordered_steps(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    steps = [
        Step(index=1, subject="Hello", body="Hi", html_body="<p>Hi</p>"),
        Step(index=2, subject="Re: Hello", body="Bump", delay_days=3.5),
    ]
    campaign = store.create_campaign(name="C", account_id=account.id, steps=steps, now=T0)
    assert campaign.steps == tuple(steps)
    assert store.get_campaign(campaign.id) == campaign
    assert store.list_campaigns(account_id=account.id) == (campaign,)
    assert (
        store.set_campaign_status(campaign.id, status=CampaignStatus.PAUSED).status is CampaignStatus.PAUSED
    )
    with pytest.raises(ValueError, match="numbered"):
        store.create_campaign(name="bad", account_id=account.id, steps=[steps[1]], now=T0)


def test_leads_bulk_insert_skips_duplicates_and_keeps_fields(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    leads = [
        Lead(
            email="Ann@Lead.test",
            first_name="Ann",
            company="Acme",
            timezone="Europe/Berlin",
            consent=True,
            fields={"role": "CTO", "city": "Köln"},
        ),
        Lead(email="bob@lead.test"),
        Lead(email="ann@lead.test", first_name="Duplicate"),
    ]
    assert store.add_leads(campaign.id, leads=leads, now=T0) == 2
    assert store.add_leads(campaign.id, leads=[Lead(email="bob@lead.test")], now=T0) == 0
    stored = store.list_leads(campaign.id)
    assert [lead.lead.email for lead in stored] == ["ann@lead.test", "bob@lead.test"]
    ann = stored[0]
    assert ann.lead == dataclasses.replace(leads[0], email="ann@lead.test", id=ann.id)
    assert ann.status is LeadStatus.NEW and ann.campaign_id == campaign.id
    assert store.get_lead(ann.id) == ann
    assert store.count_leads(campaign.id) == {LeadStatus.NEW: 2}
    assert store.find_leads("ANN@lead.test") == (ann,)


def test_a_stopping_status_cancels_unsent_messages_of_that_lead(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    [first] = seed_outbox(store, campaign, count=1, state=MessageState.APPROVED)
    lead_id = store.get_message(first).lead_id
    [follow_up] = store.create_drafts(
        [NewDraft(campaign_id=campaign.id, lead_id=lead_id, step_index=2, subject="Re", body="B")], now=T0
    )
    cancelled = store.set_lead_status(lead_id, status=LeadStatus.REPLIED, now=T0, reason="replied")
    assert set(cancelled) == {first, follow_up}
    assert store.get_message(first).state is MessageState.CANCELLED
    assert store.get_lead(lead_id).status is LeadStatus.REPLIED
    paused = store.set_lead_status(
        lead_id, status=LeadStatus.PAUSED, now=T0, resume_at=T0 + timedelta(days=9)
    )
    assert paused == ()
    assert store.get_lead(lead_id).resume_at == T0 + timedelta(days=9)


def test_stop_address_reaches_every_campaign(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    one, two = make_campaign(store, account), make_campaign(store, account)
    a = seed_outbox(store, one, count=1)
    b = seed_outbox(store, two, count=1)
    assert store.get_message(a[0]).recipient == store.get_message(b[0]).recipient
    cancelled = store.stop_address(
        "PERSON0@lead.test", status=LeadStatus.UNSUBSCRIBED, now=T0, reason="unsub"
    )
    assert set(cancelled) == {a[0], b[0]}


# --- outbox state machine ----------------------------------------------------------------------------------


def test_drafts_are_unique_per_lead_and_step(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    [outbox_id] = seed_outbox(store, campaign, count=1, state=MessageState.PENDING_APPROVAL)
    message = store.get_message(outbox_id)
    again = NewDraft(
        campaign_id=campaign.id,
        lead_id=message.lead_id,
        step_index=1,
        subject="x",
        body="y",
        hold_reasons=(HoldReason.FIRST_TOUCH, HoldReason.LINK),
    )
    assert store.create_drafts([again], now=T0) == (None,)
    assert message.state is MessageState.PENDING_APPROVAL
    assert message.recipient == "person0@lead.test" and message.attempts == 0 and message.message_id is None
    with pytest.raises(ValueError, match="starts as"):
        store.create_drafts([dataclasses.replace(again, step_index=2, state=MessageState.SENT)], now=T0)
    [held] = store.create_drafts([dataclasses.replace(again, step_index=2)], now=T0)
    assert held is not None
    assert store.get_message(held).hold_reasons == (HoldReason.FIRST_TOUCH, HoldReason.LINK)


def test_illegal_transitions_are_refused_and_change_nothing(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    [outbox_id] = seed_outbox(store, campaign, count=1, state=MessageState.PENDING_APPROVAL)
    with pytest.raises(IllegalTransition):
        store.transition(outbox_id, to=MessageState.SENT, now=T0)
    assert store.get_message(outbox_id).state is MessageState.PENDING_APPROVAL
    later = T0 + timedelta(minutes=5)
    rejected = store.transition(outbox_id, to=MessageState.REJECTED, now=later, error="tone")
    assert (rejected.state, rejected.state_changed_at, rejected.last_error) == (
        MessageState.REJECTED,
        later,
        "tone",
    )
    for target in MessageState:
        with pytest.raises(IllegalTransition):
            store.transition(outbox_id, to=target, now=later)


def test_bulk_approve_and_reject_report_what_they_skipped(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    pending = seed_outbox(store, campaign, count=4, state=MessageState.PENDING_APPROVAL)
    later = T0 + timedelta(hours=1)
    store.transition(pending[3], to=MessageState.CANCELLED, now=T0)
    outcome = store.approve([pending[0], pending[1], pending[3], 999], now=later)
    assert outcome.changed == (pending[0], pending[1]) and outcome.skipped == (pending[3], 999)
    assert store.get_message(pending[0]).state_changed_at == later
    rejected = store.reject([pending[1], pending[2]], now=later, reason="off-topic")
    # approved messages go back through pending approval, never straight to rejected
    assert rejected.changed == (pending[2],) and rejected.skipped == (pending[1],)
    assert store.count_messages() == {
        MessageState.APPROVED: 2,
        MessageState.REJECTED: 1,
        MessageState.CANCELLED: 1,
    }
    assert [m.id for m in store.list_messages(states=[MessageState.APPROVED])] == pending[:2]


def test_expire_takes_only_old_unsent_messages(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    old = seed_outbox(store, campaign, count=2, state=MessageState.PENDING_APPROVAL, now=T0)
    new = seed_outbox(
        store, campaign, count=1, state=MessageState.PENDING_APPROVAL, now=T0 + timedelta(days=6)
    )
    outcome = store.expire(now=T0 + timedelta(days=8), created_before=T0 + timedelta(days=1))
    assert outcome.changed == tuple(old)
    assert store.get_message(new[0]).state is MessageState.PENDING_APPROVAL


def test_editing_an_approved_draft_sends_it_back_for_review(store: SqliteStore) -> None:  # noqa: F811
    campaign = make_campaign(store, make_account(store))
    [outbox_id] = seed_outbox(store, campaign, count=1, state=MessageState.APPROVED)
    edited = store.edit_draft(outbox_id, subject="New", body="Text", now=T0)
    assert (edited.state, edited.subject, edited.body) == (MessageState.PENDING_APPROVAL, "New", "Text")


# --- suppression -------------------------------------------------------------------------------------------


def test_suppression_by_address_domain_and_parent_domain(store: SqliteStore) -> None:  # noqa: F811
    entry = store.add_suppression(
        "Bob@Lead.test", reason=SuppressionReason.UNSUBSCRIBE, now=T0, source="reply"
    )
    assert (entry.value, entry.is_domain, entry.reason) == (
        "bob@lead.test",
        False,
        SuppressionReason.UNSUBSCRIBE,
    )
    store.add_suppression("@competitor.test", reason=SuppressionReason.MANUAL, now=T0)
    assert store.is_suppressed("BOB@lead.test")
    assert not store.is_suppressed("alice@lead.test")
    found = store.find_suppression("anyone@mail.competitor.test")
    assert found is not None and found.value == "@competitor.test" and found.is_domain
    assert store.is_suppressed("@competitor.test")
    assert not store.is_suppressed("x@notcompetitor.test")
    again = store.add_suppression(
        "bob@lead.test", reason=SuppressionReason.COMPLAINT, now=T0 + timedelta(days=1)
    )
    assert again.reason is SuppressionReason.UNSUBSCRIBE  # first reason kept
    assert [s.value for s in store.list_suppressions(search="compet")] == ["@competitor.test"]
    assert store.remove_suppression("@Competitor.test")
    assert not store.remove_suppression("@competitor.test")
    assert not store.is_suppressed("anyone@mail.competitor.test")
    for bad in ("not-an-address", "@", "a@b", "@nodot"):
        with pytest.raises(ValueError):
            store.add_suppression(bad, reason=SuppressionReason.MANUAL, now=T0)


def test_evidence_is_kept_with_the_suppression(store: SqliteStore) -> None:  # noqa: F811
    raw = b"From: mailer-daemon\r\n\r\n550 5.1.1 user unknown"
    entry = store.add_suppression(
        "dead@lead.test", reason=SuppressionReason.HARD_BOUNCE, now=T0, evidence=raw
    )
    assert entry.evidence_id is not None
    assert store.get_evidence(entry.evidence_id) == raw


def test_erasure_keeps_only_a_hash_that_still_suppresses(store: SqliteStore) -> None:  # noqa: F811
    store.add_suppression("gone@lead.test", reason=SuppressionReason.UNSUBSCRIBE, now=T0, evidence=b"mail")
    erased = store.add_suppression("gone@lead.test", reason=SuppressionReason.ERASED, now=T0)
    assert erased.hashed and "gone" not in erased.value and erased.evidence_id is None
    assert [s.value for s in store.list_suppressions()] == [erased.value]
    found = store.find_suppression("Gone@lead.test")
    assert found is not None and found.reason is SuppressionReason.ERASED
    assert not store.is_suppressed("other@lead.test")


# --- audit, inbound, mailbox state -------------------------------------------------------------------------


def test_audit_rows_are_stored_and_queried(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    entries = [
        AuditEntry(
            at=T0 + timedelta(minutes=i),
            result=result,
            account_id=account.id,
            sender=account.email,
            recipient=f"r{i}@lead.test",
            subject="Hi",
            reason=reason,
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            detail="rule",
        )
        for i, (result, reason) in enumerate(
            [
                (AuditResult.ALLOWED, ""),
                (AuditResult.HELD, "first_touch"),
                (AuditResult.BLOCKED, "suppressed"),
            ]
        )
    ]
    store.append_audit(entries)
    newest_first = store.query_audit(account_id=account.id)
    assert [e.result for e in newest_first] == [AuditResult.BLOCKED, AuditResult.HELD, AuditResult.ALLOWED]
    assert newest_first[0] == dataclasses.replace(entries[2], id=newest_first[0].id)
    assert [e.reason for e in store.query_audit(results=[AuditResult.HELD, AuditResult.BLOCKED])] == [
        "suppressed",
        "first_touch",
    ]
    assert len(store.query_audit(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))) == 1
    assert [e.recipient for e in store.query_audit(recipient="R0@lead.test")] == ["r0@lead.test"]
    assert store.query_audit(account_id=account.id + 1) == ()


def test_inbound_events_are_recorded_once(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    verdict = Verdict(
        kind=InboundKind.AUTO_REPLY,
        recipients=("a@lead.test",),
        return_date=date(2026, 12, 1),
        in_reply_to=("<m2@x>", "<m1@x>"),
        message_id="<ar@lead.test>",
    )
    event, created = store.record_inbound_event(
        account_id=account.id,
        folder="INBOX",
        uidvalidity=7,
        uid=42,
        verdict=verdict,
        now=T0,
        message_id="<ar@lead.test>",
        raw=b"raw message",
    )
    assert created and event.verdict == verdict and event.kind is InboundKind.AUTO_REPLY
    assert event.evidence_id is not None and store.get_evidence(event.evidence_id) == b"raw message"
    again, created_again = store.record_inbound_event(
        account_id=account.id,
        folder="INBOX",
        uidvalidity=7,
        uid=42,
        verdict=Verdict(kind=InboundKind.OTHER),
        now=T0 + timedelta(minutes=1),
    )
    assert not created_again and again == event
    _, other_validity = store.record_inbound_event(
        account_id=account.id, folder="INBOX", uidvalidity=8, uid=42, verdict=verdict, now=T0
    )
    assert other_validity
    assert len(store.list_inbound_events(account_id=account.id, kinds=[InboundKind.AUTO_REPLY])) == 2


def test_mailbox_state_get_and_set(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    assert store.get_mailbox_state(account.id, folder="INBOX") is None
    store.set_mailbox_state(MailboxState(account_id=account.id, folder="INBOX", uidvalidity=3, last_uid=10))
    store.set_mailbox_state(MailboxState(account_id=account.id, folder="INBOX", uidvalidity=3, last_uid=12))
    store.set_mailbox_state(MailboxState(account_id=account.id, folder="Junk", uidvalidity=1, last_uid=2))
    assert store.get_mailbox_state(account.id, folder="INBOX") == MailboxState(account.id, "INBOX", 3, 12)
    assert store.get_mailbox_state(account.id, folder="Junk") == MailboxState(account.id, "Junk", 1, 2)


def test_erasing_a_person_leaves_no_trace_but_keeps_them_suppressed(store: SqliteStore) -> None:  # noqa: F811
    import sqlite3

    from cadence.core.model import Claim, LedgerKind
    from tests.integration.db_helpers import pick_first

    account = make_account(store)
    campaign = make_campaign(store, account)
    seed_outbox(store, campaign, count=2)  # person0 and person1 @lead.test
    claim = store.claim_next_send(account_id=account.id, now=T0, decide=pick_first)
    assert isinstance(claim, Claim) and claim.message.recipient == "person0@lead.test"
    assert claim.message.message_id is not None
    store.record_delivered(claim.message.message_id, at=T0)
    store.append_audit(
        [
            AuditEntry(
                at=T0,
                result=AuditResult.SENT,
                account_id=account.id,
                recipient="Person0@lead.test",
                subject="Hi P0",
                detail="for person0@lead.test",
            )
        ]
    )
    bounce = Verdict(kind=InboundKind.UNSUBSCRIBE, from_address="person0@lead.test")
    store.record_inbound_event(
        account_id=account.id,
        folder="INBOX",
        uidvalidity=1,
        uid=5,
        verdict=bounce,
        now=T0,
        raw=b"From: person0@lead.test\r\n\r\nstop",
    )
    store.add_suppression("person0@lead.test", reason=SuppressionReason.UNSUBSCRIBE, now=T0, evidence=b"x p0")
    sends_before = len(store.snapshot(account.id, now=T0 + timedelta(hours=1)).sends)

    outcome = store.erase_person("PERSON0@lead.test", now=T0 + timedelta(hours=1))

    assert (outcome.leads_removed, outcome.messages_removed) == (1, 1)
    assert (
        outcome.ledger_rows_anonymised,
        outcome.audit_rows_anonymised,
        outcome.inbound_events_removed,
    ) == (
        1,
        1,
        1,
    )
    with sqlite3.connect(store.database.path) as raw:
        dump = "\n".join(raw.iterdump()).lower()
    raw.close()
    assert "person0" not in dump
    assert "person1@lead.test" in dump  # nobody else was touched
    assert store.is_suppressed("person0@lead.test")
    snapshot = store.snapshot(account.id, now=T0 + timedelta(hours=1))
    assert len(snapshot.sends) == sends_before  # the send still counts against the caps
    assert [s.recipient.rpartition("@")[2] for s in snapshot.sends] == ["lead.test"]
    assert store.list_ledger(account_id=account.id, since=T0, kinds=[LedgerKind.SENT])[0].subject == ""
    with pytest.raises(ValueError, match="not a domain"):
        store.erase_person("@lead.test", now=T0)


def test_erasure_waits_for_a_send_in_flight(store: SqliteStore) -> None:  # noqa: F811
    from cadence.core.model import Claim
    from tests.integration.db_helpers import pick_first

    account = make_account(store)
    seed_outbox(store, make_campaign(store, account), count=1)
    assert isinstance(store.claim_next_send(account_id=account.id, now=T0, decide=pick_first), Claim)
    with pytest.raises(ValueError, match="being sent right now"):
        store.erase_person("person0@lead.test", now=T0)
    assert store.find_leads("person0@lead.test")  # nothing changed
