"""The send path: snapshot from the ledger, claim inside one transaction, outcomes, and two processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cadence.adapters.db import tables
from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import (
    AuditEntry,
    AuditResult,
    Blocked,
    BlockReason,
    Campaign,
    CampaignLead,
    CampaignStatus,
    Claim,
    ClaimDecision,
    DeferReason,
    Deferred,
    Idle,
    IllegalTransition,
    LeadStatus,
    LedgerEntry,
    LedgerKind,
    MessageState,
    NewDraft,
    OutboxMessage,
    PacingSnapshot,
    SendCandidate,
    SendPick,
    SuppressionReason,
)
from cadence.core.ports import Decide
from tests.integration.db_helpers import (
    T0,
    CapRule,
    hammer,
    make_account,
    make_campaign,
    message_id_for,
    pick_first,
    seed_outbox,
    store,  # noqa: F401
)


def _claim(
    store: SqliteStore,  # noqa: F811
    account_id: int,
    *,
    now: datetime = T0,
    decide: Decide = pick_first,
) -> Claim:
    claim = store.claim_next_send(account_id=account_id, now=now, decide=decide)
    assert isinstance(claim, Claim), claim
    return claim


def test_claim_reserves_the_message_with_its_message_id_and_mime(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    ids = seed_outbox(store, make_campaign(store, account), count=3)
    now = T0 + timedelta(minutes=1)
    claim = _claim(store, account.id, now=now)
    message = claim.message
    assert message.id == ids[0]
    assert (message.state, message.attempts, message.state_changed_at) == (MessageState.SENDING, 1, now)
    assert message.message_id == f"<{ids[0]}.t@cadence.test>"
    assert claim.mime == b"MIME person0@lead.test" == store.get_mime(message.message_id)
    assert store.get_message(ids[0]) == message
    assert store.list_in_doubt(account.id) == (message,)


def test_a_message_in_flight_uses_capacity(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    seed_outbox(store, make_campaign(store, account), count=3)
    first = _claim(store, account.id, decide=CapRule(1))
    snapshot = store.snapshot(account.id, now=T0)
    assert [s.recipient for s in snapshot.sends] == [first.message.recipient]
    second = store.claim_next_send(account_id=account.id, now=T0, decide=CapRule(1))
    assert second == Idle(wait_until=T0 + timedelta(hours=1), reason=DeferReason.DAILY_CAP, candidates=2)


def test_delivery_is_recorded_in_one_go_and_only_once(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    seed_outbox(store, make_campaign(store, account), count=1)
    claim = _claim(store, account.id)
    assert claim.message.message_id is not None
    at = T0 + timedelta(seconds=5)
    sent = store.record_delivered(claim.message.message_id, at=at, transcript="250 2.0.0 OK")
    assert (sent.state, sent.state_changed_at) == (MessageState.SENT, at)
    assert store.is_already_sent(claim.message.message_id)
    assert store.get_lead(sent.lead_id).status is LeadStatus.CONTACTED
    assert store.record_delivered(claim.message.message_id, at=at + timedelta(minutes=1)) == sent
    ledger = store.list_ledger(account_id=account.id, since=T0)
    assert [(e.recipient, e.kind, e.message_id, e.at, e.manual) for e in ledger] == [
        (sent.recipient, LedgerKind.SENT, claim.message.message_id, at, False)
    ]
    assert store.list_in_doubt(account.id) == ()
    snapshot = store.snapshot(account.id, now=at)
    assert len(snapshot.sends) == 1  # the ledger row replaced the reservation, not added to it


def test_snapshot_reads_the_last_24_hours_of_the_ledger(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    other = make_account(store, email="other@example.test")

    def entry(
        hours_ago: float,
        kind: LedgerKind = LedgerKind.SENT,
        *,
        account_id: int = account.id,
        manual: bool = False,
        recipient: str = "r@lead.test",
    ) -> LedgerEntry:
        return LedgerEntry(
            account_id=account_id,
            at=T0 - timedelta(hours=hours_ago),
            recipient=recipient,
            kind=kind,
            subject="S",
            manual=manual,
        )

    for item in (
        entry(25),
        entry(23, recipient="in@lead.test"),
        entry(1, manual=True, recipient="manual@lead.test"),
        entry(2, account_id=other.id),
        entry(1, LedgerKind.HARD_BOUNCE),
        entry(30, LedgerKind.HARD_BOUNCE),
        entry(1, LedgerKind.SOFT_BOUNCE),
    ):
        assert store.add_ledger_entry(item)
    store.set_account_pause(account.id, reason="breaker", until=T0 + timedelta(hours=3))
    store.set_account_backoff(account.id, until=T0 + timedelta(minutes=30), pace_factor=0.5)
    store.set_warmup_started(account.id, at=T0 - timedelta(days=4))

    snapshot = store.snapshot(account.id, now=T0)
    assert sorted((s.recipient, s.manual) for s in snapshot.sends) == [
        ("in@lead.test", False),
        ("manual@lead.test", True),
    ]
    assert snapshot.hard_bounces_24h == 1
    assert snapshot.hard_bounce_times == (T0 - timedelta(hours=1),)  # the bounce breaker's fresh sample
    assert (snapshot.paused_reason, snapshot.paused_until) == ("breaker", T0 + timedelta(hours=3))
    assert (snapshot.backoff_until, snapshot.pace_factor) == (T0 + timedelta(minutes=30), 0.5)
    assert snapshot.warmup_started_at == T0 - timedelta(days=4)


def test_manual_sends_found_twice_are_counted_once(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    found = LedgerEntry(
        account_id=account.id,
        at=T0,
        recipient="Friend@x.test",
        kind=LedgerKind.SENT,
        message_id="<hand@x>",
        manual=True,
    )
    assert store.add_ledger_entry(found)
    assert not store.add_ledger_entry(found)
    assert len(store.snapshot(account.id, now=T0).sends) == 1


def test_candidates_follow_ups_first_then_oldest_and_only_if_due(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    campaign = make_campaign(store, account)
    older = seed_outbox(store, campaign, count=1, now=T0 - timedelta(hours=2))
    newer = seed_outbox(store, campaign, count=1, now=T0 - timedelta(hours=1))
    lead_of_older = store.get_message(older[0]).lead_id
    follow_up, not_due = store.create_drafts(
        [
            NewDraft(
                campaign_id=campaign.id,
                lead_id=lead_of_older,
                step_index=2,
                subject="Re",
                body="B",
                state=MessageState.APPROVED,
                next_attempt_at=T0 - timedelta(minutes=1),
            ),
            NewDraft(
                campaign_id=campaign.id,
                lead_id=store.get_message(newer[0]).lead_id,
                step_index=2,
                subject="Re",
                body="B",
                state=MessageState.APPROVED,
                next_attempt_at=T0 + timedelta(days=1),
            ),
        ],
        now=T0,
    )
    seen: list[tuple[int, ...]] = []

    def record(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        seen.append(tuple(c.message.id for c in candidates))
        assert all(c.step is not None and c.step.index == c.message.step_index for c in candidates)
        return ClaimDecision()

    assert store.claim_next_send(account_id=account.id, now=T0, decide=record) == Idle(None, None, 3)
    assert seen == [(follow_up, older[0], newer[0])]
    assert not_due is not None
    store.set_campaign_status(campaign.id, status=CampaignStatus.PAUSED)
    assert store.claim_next_send(account_id=account.id, now=T0, decide=record) == Idle(None, None, 0)


def test_deferred_messages_retry_when_due_with_the_same_message_id(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    [outbox_id] = seed_outbox(store, make_campaign(store, account), count=1)
    first = _claim(store, account.id)
    assert first.message.message_id is not None
    deferred = store.record_deferred(
        first.message.message_id,
        at=T0,
        next_attempt_at=T0 + timedelta(minutes=10),
        reason=DeferReason.SMTP_TEMPORARY,
        error="451 4.3.0 try later",
    )
    assert (deferred.state, deferred.defer_reason, deferred.last_error) == (
        MessageState.DEFERRED,
        DeferReason.SMTP_TEMPORARY,
        "451 4.3.0 try later",
    )
    assert store.snapshot(account.id, now=T0).sends == ()  # a deferral uses no capacity
    assert store.claim_next_send(
        account_id=account.id, now=T0 + timedelta(minutes=5), decide=pick_first
    ) == Idle(None, None, 0)

    def new_id(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        return ClaimDecision(pick=SendPick(candidates[0].message.id, "<different@x>", b"m"))

    with pytest.raises(ValueError, match="must reuse"):
        store.claim_next_send(account_id=account.id, now=T0 + timedelta(minutes=11), decide=new_id)
    assert store.get_message(outbox_id).state is MessageState.DEFERRED  # rolled back
    retry = _claim(store, account.id, now=T0 + timedelta(minutes=11))
    assert (retry.message.message_id, retry.message.attempts) == (first.message.message_id, 2)
    assert retry.message.defer_reason is None


def test_a_dead_recipient_fails_the_message_and_stops_the_lead(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    campaign = make_campaign(store, account)
    [outbox_id] = seed_outbox(store, campaign, count=1)
    lead_id = store.get_message(outbox_id).lead_id
    [follow_up] = store.create_drafts(
        [NewDraft(campaign_id=campaign.id, lead_id=lead_id, step_index=2, subject="Re", body="B")], now=T0
    )
    claim = _claim(store, account.id)
    assert claim.message.message_id is not None
    failed = store.record_failed(
        claim.message.message_id, at=T0, error="550 5.1.1 user unknown", lead_status=LeadStatus.BOUNCED
    )
    assert (failed.state, failed.last_error) == (MessageState.FAILED, "550 5.1.1 user unknown")
    assert store.get_lead(lead_id).status is LeadStatus.BOUNCED
    assert follow_up is not None and store.get_message(follow_up).state is MessageState.CANCELLED
    assert store.list_ledger(account_id=account.id, since=T0 - timedelta(days=1)) == ()
    with pytest.raises(IllegalTransition):
        store.record_delivered(claim.message.message_id, at=T0)


def test_in_doubt_messages_are_listed_and_can_be_requeued(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    seed_outbox(store, make_campaign(store, account), count=1)
    claim = _claim(store, account.id)
    assert claim.message.message_id is not None
    [in_doubt] = store.list_in_doubt(account.id)
    assert in_doubt.id == claim.message.id
    requeued = store.requeue_in_doubt(claim.message.message_id, at=T0 + timedelta(minutes=1))
    assert requeued.state is MessageState.QUEUED
    again = _claim(store, account.id, now=T0 + timedelta(minutes=2))
    assert again.message.message_id == claim.message.message_id


def test_decide_can_block_defer_and_audit_in_the_same_transaction(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    a, b, c = seed_outbox(store, make_campaign(store, account), count=3)
    store.add_suppression("person0@lead.test", reason=SuppressionReason.UNSUBSCRIBE, now=T0)
    later = T0 + timedelta(hours=2)

    def decide(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        assert snapshot.suppressed_addresses == {"person0@lead.test"}
        return ClaimDecision(
            wait_until=later,
            wait_reason=DeferReason.DOMAIN_CAP,
            blocked=((a, Blocked(BlockReason.SUPPRESSED, "unsubscribed")),),
            deferred=((b, Deferred(DeferReason.DOMAIN_CAP, later)),),
            audit=(
                AuditEntry(
                    at=T0,
                    result=AuditResult.BLOCKED,
                    account_id=account.id,
                    recipient="person0@lead.test",
                    reason="suppressed",
                ),
            ),
        )

    assert store.claim_next_send(account_id=account.id, now=T0, decide=decide) == Idle(
        later, DeferReason.DOMAIN_CAP, 3
    )
    blocked = store.get_message(a)
    assert (blocked.state, blocked.last_error) == (MessageState.BLOCKED, "suppressed: unsubscribed")
    deferred = store.get_message(b)
    assert (deferred.state, deferred.next_attempt_at, deferred.defer_reason) == (
        MessageState.DEFERRED,
        later,
        DeferReason.DOMAIN_CAP,
    )
    assert store.get_message(c).state is MessageState.APPROVED
    assert [e.recipient for e in store.query_audit(account_id=account.id)] == ["person0@lead.test"]


def test_a_failing_decide_changes_nothing(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    [a] = seed_outbox(store, make_campaign(store, account), count=1)

    def decide(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        raise RuntimeError("template error")

    with pytest.raises(RuntimeError):
        store.claim_next_send(account_id=account.id, now=T0, decide=decide)
    assert store.get_message(a).state is MessageState.APPROVED

    def picks_a_stranger(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        return ClaimDecision(
            pick=SendPick(a + 100, "<x@y>", b""), blocked=((a, Blocked(BlockReason.DUPLICATE)),)
        )

    with pytest.raises(ValueError, match="not an open candidate"):
        store.claim_next_send(account_id=account.id, now=T0, decide=picks_a_stranger)
    assert store.get_message(a).state is MessageState.APPROVED


def test_suppressions_relevant_to_candidates_are_in_the_snapshot(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    campaign = make_campaign(store, account)
    seed_outbox(store, campaign, count=2, domain="lead.test")
    seed_outbox(store, campaign, count=1, domain="mail.blocked.test")
    seed_outbox(store, campaign, count=1, domain="fine.test")
    store.add_suppression("person1@lead.test", reason=SuppressionReason.ERASED, now=T0)
    store.add_suppression("@blocked.test", reason=SuppressionReason.MANUAL, now=T0)
    store.add_suppression("unrelated@else.test", reason=SuppressionReason.MANUAL, now=T0)
    snapshots: list[PacingSnapshot] = []

    def keep(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        snapshots.append(snapshot)
        return ClaimDecision()

    store.claim_next_send(account_id=account.id, now=T0, decide=keep)
    assert snapshots[0].suppressed_addresses == {"person1@lead.test"}
    assert snapshots[0].suppressed_domains == {"blocked.test", "mail.blocked.test"}


def test_a_message_id_already_sent_is_blocked_not_sent_again(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    [a] = seed_outbox(store, make_campaign(store, account), count=1)
    claim = _claim(store, account.id)
    assert claim.message.message_id is not None
    store.requeue_in_doubt(claim.message.message_id, at=T0)
    # the server had accepted it after all, and another record of that delivery exists
    with store.database.write() as connection:
        connection.execute(
            tables.idempotency_keys.insert().values(message_id=claim.message.message_id, created_at=T0)
        )
    assert store.claim_next_send(account_id=account.id, now=T0, decide=pick_first) == Idle(None, None, 0)
    assert store.get_message(a).state is MessageState.BLOCKED


def test_two_processes_never_exceed_the_cap_nor_send_a_message_twice(tmp_path: Path) -> None:
    cap = 25
    path = tmp_path / "shared.sqlite3"
    database = open_database(path)
    try:
        store = SqliteStore(database)
        account = make_account(store)
        campaign = make_campaign(store, account)
        seed_outbox(store, campaign, count=cap * 3)
    finally:
        database.close()

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(target=hammer, args=(str(path), account.id, cap, tag, start, results)) for tag in "ab"
    ]
    for worker in workers:
        worker.start()
    try:
        by_tag = dict(results.get(timeout=120) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
        results.close()
        results.join_thread()
    assert all(worker.exitcode == 0 for worker in workers)
    sent_a, sent_b = by_tag["a"], by_tag["b"]

    assert not set(sent_a) & set(sent_b)
    assert len(sent_a) + len(sent_b) == cap
    assert sent_a and sent_b, "both processes should have taken part"
    database = open_database(path)
    try:
        store = SqliteStore(database)
        since = datetime.now(UTC) - timedelta(days=1)
        assert len(store.list_ledger(account_id=account.id, since=since)) == cap
        assert store.count_messages(account_id=account.id) == {
            MessageState.SENT: cap,
            MessageState.APPROVED: 2 * cap,
        }
        with database.read() as connection:
            keys = connection.execute(select(func.count()).select_from(tables.idempotency_keys)).scalar_one()
        assert keys == cap
        assert store.list_in_doubt(account.id) == ()
    finally:
        database.close()


def test_message_id_helper_reuses_an_existing_id(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    seed_outbox(store, make_campaign(store, account), count=1)
    claim = _claim(store, account.id)
    candidate = SendCandidate(
        message=claim.message,
        lead=store.get_lead(claim.message.lead_id).lead,
        lead_status=LeadStatus.NEW,
        step=None,
    )
    assert message_id_for(candidate, tag="other") == claim.message.message_id


def test_delivery_with_follow_up_creates_the_next_step_once(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    campaign = make_campaign(store, account)
    seed_outbox(store, campaign, count=1)
    claim = _claim(store, account.id)
    assert claim.message.message_id is not None
    seen: list[tuple[int, int, LeadStatus]] = []

    def follow_up(
        campaign: Campaign, lead: CampaignLead, sent: OutboxMessage, at: datetime
    ) -> NewDraft | None:
        seen.append((campaign.id, sent.step_index, lead.status))
        step = campaign.steps[sent.step_index]
        return NewDraft(
            campaign_id=campaign.id,
            lead_id=lead.id,
            step_index=step.index,
            subject=step.subject,
            body=step.body,
            state=MessageState.APPROVED,
            next_attempt_at=at + timedelta(days=step.delay_days),
        )

    sent, draft_id = store.record_delivered_with_follow_up(
        claim.message.message_id, at=T0, follow_up=follow_up
    )
    assert sent.state is MessageState.SENT and draft_id is not None
    assert seen == [(campaign.id, 1, LeadStatus.CONTACTED)]
    draft = store.get_message(draft_id)
    assert (draft.step_index, draft.state, draft.next_attempt_at) == (
        2,
        MessageState.APPROVED,
        T0 + timedelta(days=3),
    )
    again = store.record_delivered_with_follow_up(claim.message.message_id, at=T0, follow_up=follow_up)
    assert again == (sent, None) and len(seen) == 1
    assert len(store.list_ledger(account_id=account.id, since=T0 - timedelta(days=1))) == 1
    # the follow-up is not due yet: nothing to claim, and the scheduler learns when to look again
    assert store.claim_next_send(account_id=account.id, now=T0, decide=pick_first) == Idle(None, None, 0)
    assert store.next_attempt_after(account.id, now=T0) == T0 + timedelta(days=3)


def test_a_paused_lead_gets_new_messages_after_its_return_date(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)
    campaign = make_campaign(store, account)
    [first] = seed_outbox(store, campaign, count=1, state=MessageState.PENDING_APPROVAL)
    lead_id = store.get_message(first).lead_id
    back = T0 + timedelta(days=10)
    store.set_lead_status(lead_id, status=LeadStatus.PAUSED, now=T0, resume_at=back)
    [draft_id] = store.create_drafts(
        [
            NewDraft(
                campaign_id=campaign.id,
                lead_id=lead_id,
                step_index=2,
                subject="Re",
                body="B",
                next_attempt_at=T0 + timedelta(days=3),
            )
        ],
        now=T0,
    )
    assert draft_id is not None and store.get_message(draft_id).next_attempt_at == back


def test_the_snapshot_never_serves_a_deleted_ledger_row(store: SqliteStore) -> None:  # noqa: F811
    account = make_account(store)

    def send(recipient: str) -> LedgerEntry:
        return LedgerEntry(
            account_id=account.id, at=T0 - timedelta(hours=1), recipient=recipient, kind=LedgerKind.SENT
        )

    store.add_ledger_entry(send("old@x.test"))
    assert [s.recipient for s in store.snapshot(account.id, now=T0).sends] == ["old@x.test"]
    with store.database.write() as connection:
        connection.execute(tables.ledger.delete())
    store.add_ledger_entry(send("new@x.test"))  # would reuse the deleted row's id without AUTOINCREMENT
    assert [s.recipient for s in store.snapshot(account.id, now=T0).sends] == ["new@x.test"]
