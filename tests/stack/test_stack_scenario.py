"""Issue 7, point 1: 100 leads, two steps, through the real mail stack and Cadence's real services.

8 dead addresses (real Postfix DSNs), 3 unsubscribes, 2 "not interested", 5 out-of-office and 4 interested
replies (APPENDed to Dovecot's INBOX, threaded on Cadence's Message-IDs). The scheduler and the inbox
watcher run in this process over the CLI-made data directory; the clock is simulated (see scenario.py).
At the end the store must show every dead address and opt-out suppressed with its evidence, no follow-up
for the interested leads, the out-of-office follow-ups only after the return date, the breaker paused
once when the hard-bounce rate passed 5 % of at least 20 sends and sending again the next business day;
the internet's recorder must agree with the ledger."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.classify import classify
from cadence.core.model import (
    AuditResult,
    InboundKind,
    LeadStatus,
    LedgerKind,
    MessageState,
    SuppressionReason,
)
from cadence.core.pacing import BREAKER_PAUSE_REASON
from cadence.services.inbox_effects import RETURN_TIME
from tests.integration.cli_harness import keyring_session
from tests.stack.mail import wait_until
from tests.stack.report import record
from tests.stack.scenario import (
    BUSINESS_START,
    CAST,
    FOLLOW_UP_DAYS,
    LEADS,
    Role,
    Scenario,
    cast,
    session_environment,
    set_up_with_cli,
)
from tests.stack.stack import MailStack

pytestmark = [pytest.mark.keyring, pytest.mark.slow]

SUPPRESSED_AS = {
    Role.DEAD: SuppressionReason.HARD_BOUNCE,
    Role.UNSUBSCRIBE: SuppressionReason.UNSUBSCRIBE,
    Role.NOT_INTERESTED: SuppressionReason.NOT_INTERESTED,
}
TUESDAY_OPENING = datetime(
    2026, 12, 1, 9, 0, tzinfo=UTC
)  # the business day after the Monday the breaker trips


@pytest.fixture(scope="module")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with keyring_session(tmp_path_factory.mktemp("keyring")) as env:
        yield env


def test_hundred_leads_end_suppressed_stopped_resumed_and_the_breaker_resumes_the_next_business_day(
    tmp_path: Path, keyring_env: dict[str, str], private_mail_stack: MailStack
) -> None:
    stack, data = private_mail_stack, tmp_path / "data"
    started = time.monotonic()
    prospects = cast(uuid.uuid4().hex[:6])
    set_up_with_cli(stack, data=data, workdir=tmp_path, env=keyring_env, prospects=prospects)
    scenario = Scenario(stack=stack, data=data, prospects=prospects)
    with session_environment(keyring_env):
        asyncio.run(scenario.run(until=BUSINESS_START + timedelta(days=21)))

    by_role = {role: [p for p in prospects if p.role is role] for role in Role}
    expected_follow_ups = [p for p in prospects if p.role in (Role.SILENT, Role.OUT_OF_OFFICE)]
    expected_sends = LEADS + len(expected_follow_ups)
    dead = {p.email for p in by_role[Role.DEAD]}
    # Postfix hands every accepted submission on to the internet in its own time: wait for the last ones
    asyncio.run(
        wait_until(
            lambda: len(stack.delivered()) >= expected_sends - len(dead),
            timeout_s=30,
            what="the internet received every deliverable message",
        )
    )
    delivered = stack.delivered()

    database = open_database(data / "cadence.sqlite3")
    try:
        store = SqliteStore(database)
        (account,) = store.list_accounts()
        ledger = store.list_ledger(account_id=account.id, since=BUSINESS_START - timedelta(days=1))
        sent_rows = store.list_messages(account_id=account.id, states=[MessageState.SENT])
        every_message = store.list_messages(account_id=account.id)
        leads = {p.email: store.find_leads(p.email)[0] for p in prospects}
        suppressions = {p.email: store.find_suppression(p.email) for p in prospects}
        evidence = {
            email: store.get_evidence(s.evidence_id)
            for email, s in suppressions.items()
            if s is not None and s.evidence_id is not None
        }
        audit_pauses = store.query_audit(account_id=account.id, results=[AuditResult.PAUSED], limit=None)
    finally:
        database.close()

    ledger_sends = sorted((e for e in ledger if e.kind is LedgerKind.SENT), key=lambda e: e.at)
    ledger_bounces = sorted((e for e in ledger if e.kind is LedgerKind.HARD_BOUNCE), key=lambda e: e.at)
    step_of = {row.message_id: row.step_index for row in sent_rows}
    sent_by_lead: dict[str, dict[int, datetime]] = {}
    for entry in ledger_sends:
        sent_by_lead.setdefault(entry.recipient, {})[step_of[entry.message_id]] = entry.at
    first_touch_id = {
        row.recipient: row.message_id for row in sent_rows if row.step_index == 1 and row.message_id
    }

    # --- every send in the ledger is one the scheduler made, once per lead and step ---------------------
    assert len(ledger_sends) == len(scenario.sends) == len(sent_rows) == expected_sends
    assert Counter((e.recipient, step_of[e.message_id]) for e in ledger_sends).most_common(1)[0][1] == 1
    assert all(
        set(sent_by_lead[p.email]) == {1}
        for p in prospects
        if p.role not in (Role.SILENT, Role.OUT_OF_OFFICE)
    )
    assert all(set(sent_by_lead[p.email]) == {1, 2} for p in expected_follow_ups)

    # --- dead addresses: suppressed as hard bounces, the real DSN kept as evidence ------------------------
    assert len(ledger_bounces) == len(dead)
    for prospect in by_role[Role.DEAD]:
        suppression = suppressions[prospect.email]
        assert suppression is not None and suppression.reason is SuppressionReason.HARD_BOUNCE, prospect
        verdict = classify(evidence[prospect.email])
        assert verdict.kind is InboundKind.HARD_BOUNCE and verdict.status == "5.1.1"
        assert verdict.recipients == (prospect.email,)
        assert verdict.original_message_id == first_touch_id[prospect.email]
        assert b"report-type=delivery-status" in evidence[prospect.email]
        assert leads[prospect.email].status is LeadStatus.BOUNCED

    # --- opt-outs: suppressed with the reply itself as evidence, no follow-up ----------------------------
    for role in (Role.UNSUBSCRIBE, Role.NOT_INTERESTED):
        for prospect in by_role[role]:
            suppression = suppressions[prospect.email]
            assert suppression is not None and suppression.reason is SUPPRESSED_AS[role], prospect
            verdict = classify(evidence[prospect.email])
            assert verdict.kind.value == role.value
            assert first_touch_id[prospect.email] in verdict.in_reply_to
            assert verdict.from_address == prospect.email

    # --- interested: the follow-up stopped, the lead marked as replied -------------------------------------
    for prospect in by_role[Role.INTERESTED]:
        assert leads[prospect.email].status is LeadStatus.REPLIED
        assert suppressions[prospect.email] is None  # a reply is not an opt-out
        follow_ups = [m for m in every_message if m.recipient == prospect.email and m.step_index == 2]
        assert [m.state for m in follow_ups] == [MessageState.CANCELLED]  # drafted at the first send, stopped
    for role in (Role.DEAD, Role.UNSUBSCRIBE, Role.NOT_INTERESTED):
        for prospect in by_role[role]:
            follow_ups = [m for m in every_message if m.recipient == prospect.email and m.step_index == 2]
            assert all(m.state is MessageState.CANCELLED for m in follow_ups), (prospect, follow_ups)
    assert all(suppressions[p.email] is None for p in expected_follow_ups)

    # --- out of office: the follow-up waited for the return date, then went ------------------------------
    returns = {prospect.email: back for _, prospect, back in scenario.replies if back is not None}
    assert set(returns) == {p.email for p in by_role[Role.OUT_OF_OFFICE]}
    ooo_follow_ups: list[tuple[datetime, datetime]] = []
    for email, back in returns.items():
        first, second = sent_by_lead[email][1], sent_by_lead[email][2]
        resume_at = datetime.combine(back, RETURN_TIME)
        assert first + timedelta(days=FOLLOW_UP_DAYS) < resume_at  # the auto-reply did postpone it
        assert second >= resume_at, (email, second, resume_at)
        ooo_follow_ups.append((resume_at, second))

    # --- the bounce breaker: tripped once at >= 20 sends and > 5 %, resumed the next business day ---------
    breaker_pauses = [event for event in scenario.pauses if event.detail == BREAKER_PAUSE_REASON]
    assert len(breaker_pauses) == 1, [(e.at.isoformat(), e.until) for e in scenario.pauses]
    paused_at, until = breaker_pauses[0].at, breaker_pauses[0].until
    assert until == TUESDAY_OPENING
    window = [e for e in ledger_sends if paused_at - timedelta(hours=24) < e.at <= paused_at]
    bounces = [e for e in ledger_bounces if paused_at - timedelta(hours=24) < e.at <= paused_at]
    assert len(window) >= 20 and len(bounces) > 0.05 * len(window)
    before = [e for e in ledger_sends if e.at <= paused_at]
    assert (
        len(before) == 20
    )  # six dead among the first twenty: it trips as soon as the sample is large enough
    assert [a for a in audit_pauses if a.reason == BREAKER_PAUSE_REASON and a.at == paused_at]
    assert not [e for e in ledger_sends if paused_at < e.at < until]
    resumed_at = min(e.at for e in ledger_sends if e.at > paused_at)
    assert resumed_at == TUESDAY_OPENING  # the first slot of the next business day, not a day later

    # after the pause the breaker judged a fresh sample: the later bounces never made it more than 5 %
    fresh_rates = []
    for bounce in (e for e in ledger_bounces if e.at > until):
        start = max(bounce.at - timedelta(hours=24), until)
        sample = [e for e in ledger_sends if start <= e.at <= bounce.at]
        later = [e for e in ledger_bounces if start <= e.at <= bounce.at]
        fresh_rates.append((len(later), len(sample)))
    assert len(fresh_rates) == len(dead) - len(bounces)
    assert all(count <= 0.05 * sample or sample < 20 for count, sample in fresh_rates)

    # --- the internet's recorder agrees with the ledger ----------------------------------------------------
    delivered_ids = Counter(record["message_id"] for record in delivered)
    assert max(delivered_ids.values()) == 1
    expected_delivered = {e.message_id for e in ledger_sends if e.recipient not in dead}
    assert set(delivered_ids) == expected_delivered
    assert not {record["rcpt"] for record in delivered} & dead
    sent_at = {e.message_id: e.at for e in ledger_sends}
    for record_ in delivered:
        suppression = suppressions.get(record_["rcpt"])
        if suppression is not None:
            assert sent_at[record_["message_id"]] < suppression.created_at, record_

    wall_s = time.monotonic() - started
    record(
        "scenario",
        leads=LEADS,
        sends=len(ledger_sends),
        delivered=len(delivered),
        hard_bounces=len(ledger_bounces),
        suppressed={role.value: len(CAST[role]) for role in SUPPRESSED_AS},
        replies=len(scenario.replies),
        breaker_paused_at=paused_at,
        breaker_until=until,
        breaker_sample=len(window),
        breaker_bounces=len(bounces),
        resumed_at=resumed_at,
        fresh_samples_at_later_bounces=fresh_rates,
        ooo_follow_ups=[(str(resume), str(sent)) for resume, sent in sorted(ooo_follow_ups)],
        simulated_days=round((max(e.at for e in ledger_sends) - BUSINESS_START) / timedelta(days=1), 2),
        scheduler_passes=scenario.passes,
        dsn_wait_median_s=round(sorted(scenario.dsn_waits_s)[len(scenario.dsn_waits_s) // 2], 2),
        wall_s=round(wall_s, 1),
    )
