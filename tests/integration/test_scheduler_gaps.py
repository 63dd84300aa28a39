"""The scheduler's correctness gaps, against a real SQLite file and the scripted aiosmtpd peer, on a fake
clock: follow-ups thread with the first message, every deferral is audited once per change, AIMD pace after
repeated throttling, stale messages expire in the running scheduler, and the warm-up starts at the first
send."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import pacing
from cadence.core.model import (
    Account,
    AccountSettings,
    AuditEntry,
    AuditResult,
    Claim,
    ConnectionSecurity,
    DeferReason,
    Guardrails,
    Lead,
    LedgerEntry,
    LedgerKind,
    MessageState,
    NewDraft,
    SendOutcome,
    Step,
    SuppressionReason,
)
from cadence.services.dbworker import DbWorker
from cadence.services.scheduler import DEFER_AUDIT_SLACK, Scheduler, SchedulerOptions, draft_for_step
from tests.integration.db_helpers import pick_first
from tests.integration.smtp_peer import (  # noqa: F401
    END_OF_DATA,
    Reply,
    ScriptedSmtpPeer,
    smtp_ca,
    smtp_ca_file,
    smtp_peer,
)
from tests.integration.test_scheduler_send import PASSWORD, PERMISSIVE, SENDER, DictSecrets

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class World:
    store: SqliteStore
    db: DbWorker
    peer: ScriptedSmtpPeer
    account: Account
    clock: FakeClock

    def scheduler(self, **options: object) -> Scheduler:
        return Scheduler(
            store=self.store,
            db=self.db,
            secrets=DictSecrets({SENDER: PASSWORD}),
            mailer_factory=smtp_mailer_for,
            clock=self.clock,
            rng=random.Random(3),
            options=SchedulerOptions(stop_grace_s=5, **options),  # type: ignore[arg-type]
        )

    def campaign(self, leads: int, *, steps: tuple[Step, ...] | None = None) -> int:
        now = self.clock.now()
        steps = steps or (Step(index=1, subject="Hello {first_name}", body="Hi {first_name}, a note."),)
        campaign = self.store.create_campaign(name="c", account_id=self.account.id, steps=steps, now=now)
        self.store.add_leads(
            campaign.id,
            leads=[Lead(email=f"lead{i}@example.com", first_name=f"P{i}") for i in range(leads)],
            now=now,
        )
        guardrails = self.store.get_account(self.account.id).settings.guardrails
        drafts = [
            draft_for_step(campaign_id=campaign.id, lead=lead, step=steps[0], guardrails=guardrails)
            for lead in self.store.list_leads(campaign.id)
        ]
        self.store.create_drafts(drafts, now=now)
        return campaign.id

    def guardrails(self, guardrails: Guardrails) -> None:
        self.account = self.store.update_account(
            self.account.id, settings=replace(self.account.settings, guardrails=guardrails)
        )

    def deferral_audit(self) -> list[AuditEntry]:
        rows = self.store.query_audit(results=[AuditResult.DEFERRED], limit=None)
        return sorted(rows, key=lambda entry: entry.id or 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest_asyncio.fixture
async def world(store: SqliteStore, smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> AsyncIterator[World]:  # noqa: F811
    clock = FakeClock(MONDAY)
    account = store.create_account(
        AccountSettings(
            email=SENDER,
            smtp_host=smtp_peer.host,
            smtp_port=smtp_peer.port,
            smtp_security=ConnectionSecurity.STARTTLS,
            ca_file=str(smtp_ca_file),
            guardrails=PERMISSIVE,
        ),
        now=clock.now(),
    )
    db = DbWorker()
    try:
        yield World(store, db, smtp_peer, account, clock)
    finally:
        db.shutdown()


# --- 1. follow-ups thread with the first message ----------------------------------------------------------


@pytest.mark.asyncio
async def test_follow_ups_reply_in_the_thread_of_earlier_steps_and_keep_their_subjects(world: World) -> None:
    steps = (
        Step(1, "Hi {first_name}", "Hello"),
        Step(2, "A second thought, {first_name}", "Following up", delay_days=3),
        Step(3, "Re: Hi {first_name}", "Last note", delay_days=2),
    )
    world.campaign(1, steps=steps)
    scheduler = world.scheduler()
    try:
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
        world.clock.advance(timedelta(days=3, minutes=1))
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
        world.clock.advance(timedelta(days=2, minutes=1))
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
    finally:
        await scheduler.stop()
    first, second, third = (message.headers for message in world.peer.accepted)
    first_id, second_id = str(first["Message-ID"]).strip(), str(second["Message-ID"]).strip()
    assert first["In-Reply-To"] is None and first["References"] is None
    assert str(second["In-Reply-To"]).strip() == first_id
    assert str(second["References"]).split() == [first_id]
    assert str(third["In-Reply-To"]).strip() == second_id
    assert str(third["References"]).split() == [first_id, second_id]
    # subjects are the user's: "Re:" only where the step's template says so
    assert [str(h["Subject"]) for h in (first, second, third)] == [
        "Hi P0",
        "A second thought, P0",
        "Re: Hi P0",
    ]


@pytest.mark.asyncio
async def test_threads_never_mix_leads_or_campaigns(world: World) -> None:
    steps = (Step(1, "Hi {first_name}", "Hello"), Step(2, "Again", "Following up", delay_days=1))
    world.campaign(2, steps=steps)
    scheduler = world.scheduler()
    try:
        for _ in range(2):
            assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
            world.clock.advance(timedelta(minutes=1))
        world.clock.advance(timedelta(days=1))
        for _ in range(2):
            assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
            world.clock.advance(timedelta(minutes=1))
    finally:
        await scheduler.stop()
    first_ids = {m.recipients[0]: m.message_id for m in world.peer.accepted[:2]}
    for follow_up in world.peer.accepted[2:]:
        headers = follow_up.headers
        assert str(headers["In-Reply-To"]).strip() == first_ids[follow_up.recipients[0]]
        assert str(headers["References"]).split() == [first_ids[follow_up.recipients[0]]]


# --- 2. every decision is audited; a deferral once per material change ----------------------------------


@pytest.mark.asyncio
async def test_a_cap_deferral_is_audited_once_and_again_only_when_its_reason_changes(world: World) -> None:
    world.guardrails(replace(PERMISSIVE, daily_cap=1))
    world.campaign(3)
    scheduler = world.scheduler()
    try:
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
        sent_at = world.clock.now()
        world.clock.advance(timedelta(minutes=1))
        capped = await scheduler.run_pass(world.account.id)
        assert capped.outcome is None and capped.reason is DeferReason.DAILY_CAP
        after_first_wake = world.deferral_audit()

        world.clock.advance(timedelta(minutes=5))
        again = await scheduler.run_pass(world.account.id)
        assert again.reason is DeferReason.DAILY_CAP
        after_second_wake = world.deferral_audit()

        world.store.set_account_backoff(world.account.id, until=world.clock.now() + timedelta(hours=2))
        world.clock.advance(timedelta(minutes=1))
        backoff = await scheduler.run_pass(world.account.id)
        assert backoff.reason is DeferReason.BACKOFF
        after_reason_change = world.deferral_audit()
    finally:
        await scheduler.stop()

    assert len(after_first_wake) == 1
    cap = after_first_wake[0]
    assert cap.reason == DeferReason.DAILY_CAP.value and cap.recipient == "lead1@example.com"
    next_time = datetime.fromisoformat(cap.detail.removeprefix("until "))
    assert next_time >= sent_at + timedelta(hours=24)  # the rolling day frees the slot
    assert after_second_wake == after_first_wake
    assert len(after_reason_change) == 2
    assert after_reason_change[1].reason == DeferReason.BACKOFF.value
    head = world.store.list_messages(states=[MessageState.APPROVED])[0]
    assert head.audited_defer_reason is DeferReason.BACKOFF
    # the decision that let the first message go is in the audit log as well
    allowed = world.store.query_audit(results=[AuditResult.ALLOWED])
    assert [entry.recipient for entry in allowed] == ["lead0@example.com"]


@pytest.mark.asyncio
async def test_a_deferral_whose_time_moves_materially_is_audited_again(world: World) -> None:
    world.campaign(1)
    scheduler = world.scheduler()
    backoff_until = world.clock.now() + DEFER_AUDIT_SLACK / 2
    times: list[datetime | None] = []
    try:
        for until in (
            backoff_until,
            backoff_until + DEFER_AUDIT_SLACK / 4,  # moved a little: not audited again
            backoff_until + 3 * DEFER_AUDIT_SLACK,  # moved by more than the slack: audited
        ):
            world.store.set_account_backoff(world.account.id, until=until)
            result = await scheduler.run_pass(world.account.id)
            assert result.outcome is None and result.reason is DeferReason.BACKOFF
            times.append(world.store.list_messages()[0].audited_defer_until)
            world.clock.advance(timedelta(seconds=10))
    finally:
        await scheduler.stop()
    audit = world.deferral_audit()
    assert [entry.reason for entry in audit] == [DeferReason.BACKOFF.value] * 2
    assert [entry.detail for entry in audit] == [
        f"until {backoff_until.isoformat()}",
        f"until {(backoff_until + 3 * DEFER_AUDIT_SLACK).isoformat()}",
    ]
    assert times == [backoff_until, backoff_until, backoff_until + 3 * DEFER_AUDIT_SLACK]


@pytest.mark.asyncio
async def test_blocked_and_allowed_decisions_are_audited_every_time(world: World) -> None:
    world.campaign(2)
    world.store.add_suppression(
        "lead0@example.com", reason=SuppressionReason.UNSUBSCRIBE, now=world.clock.now()
    )
    scheduler = world.scheduler()
    try:
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
    finally:
        await scheduler.stop()
    blocked = world.store.query_audit(results=[AuditResult.BLOCKED], limit=None)
    allowed = world.store.query_audit(results=[AuditResult.ALLOWED], limit=None)
    assert [(e.recipient, e.reason) for e in blocked] == [("lead0@example.com", "suppressed")]
    assert [e.recipient for e in allowed] == ["lead1@example.com"]
    assert allowed[0].detail == f"message_id={world.peer.accepted[0].message_id}"


# --- 3. AIMD pace after repeated throttling ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_each_throttle_in_a_row_halves_the_pace_and_clean_sends_grow_it_back(world: World) -> None:
    world.peer.on(END_OF_DATA, Reply("421 4.7.0 Too many messages, try again later", close=True), times=3)
    world.campaign(4)
    scheduler = world.scheduler()
    factors: list[float] = []
    backoffs: list[timedelta] = []
    streaks: list[int] = []
    try:
        for _ in range(3):
            throttled_at = world.clock.now()
            assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.THROTTLED
            account = world.store.get_account(world.account.id)
            assert account.backoff_until is not None
            factors.append(account.pace_factor)
            backoffs.append(account.backoff_until - throttled_at)
            streaks.append(account.consecutive_throttles)
            # while the breaker is open nothing is tried
            held = await scheduler.run_pass(world.account.id)
            assert held.outcome is None and held.reason is DeferReason.BACKOFF
            world.clock.current = account.backoff_until + timedelta(seconds=1)

        # the engine sees the slower pace: caps scale with the factor
        slow = world.store.snapshot(world.account.id, now=world.clock.now())
        assert slow.pace_factor == 0.125
        capped = replace(PERMISSIVE, daily_cap=16, hourly_cap=8)
        slow_report = pacing.capacity_report(guardrails=capped, snapshot=slow)
        full_report = pacing.capacity_report(guardrails=capped, snapshot=replace(slow, pace_factor=1.0))
        assert (slow_report.daily.limit, full_report.daily.limit) == (2, 16)
        assert (slow_report.hourly.limit, full_report.hourly.limit) == (1, 8)
        assert slow_report.effective_daily_cap < full_report.effective_daily_cap

        recovering: list[float] = []
        for _ in range(3):
            assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
            account = world.store.get_account(world.account.id)
            recovering.append(account.pace_factor)
            assert account.consecutive_throttles == 0 and account.backoff_until is None
            world.clock.advance(timedelta(minutes=1))
    finally:
        await scheduler.stop()

    assert factors == [0.5, 0.25, 0.125]
    assert streaks == [1, 2, 3]
    assert backoffs[0] < backoffs[1] < backoffs[2]
    assert timedelta(minutes=4) <= backoffs[0] <= timedelta(minutes=6)  # 5 min ± 20 %
    assert recovering == pytest.approx([0.175, 0.225, 0.275])
    assert len(world.peer.accepted) == 3


@pytest.mark.asyncio
async def test_a_clean_send_ends_the_throttle_streak(world: World) -> None:
    world.peer.on(END_OF_DATA, Reply("421 4.7.0 Slow down", close=True), times=1)
    world.campaign(3)
    scheduler = world.scheduler()
    try:
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.THROTTLED
        first = world.store.get_account(world.account.id)
        assert first.backoff_until is not None
        world.clock.current = first.backoff_until + timedelta(seconds=1)
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
        world.peer.on(END_OF_DATA, Reply("421 4.7.0 Slow down", close=True), times=1)
        world.clock.advance(timedelta(minutes=1))
        throttled_at = world.clock.now()
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.THROTTLED
    finally:
        await scheduler.stop()
    account = world.store.get_account(world.account.id)
    assert account.consecutive_throttles == 1  # a new streak: not the second of the old one
    assert account.pace_factor == pytest.approx((0.5 + 0.05) * 0.5)
    assert account.backoff_until is not None
    assert account.backoff_until - throttled_at <= timedelta(minutes=6)  # the first step again


# --- 4. expiry in the running scheduler -------------------------------------------------------------------


async def _until(condition: object, *, seconds: float = 10.0) -> None:
    assert callable(condition)
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.mark.asyncio
async def test_messages_queued_past_the_expiry_are_expired_audited_and_never_sent(world: World) -> None:
    world.guardrails(replace(PERMISSIVE, approve_first_touch=True))
    steps = (Step(1, "Hi {first_name}", "Hello"), Step(2, "Again", "Following up", delay_days=10))
    campaign_id = world.campaign(2, steps=steps)  # both held for approval (first touch)
    world.store.approve([world.store.list_messages()[0].id], now=world.clock.now())
    lead = world.store.list_leads(campaign_id)[1]
    # a follow-up due in 10 days is not stale after 8: its time in the queue starts when it is due
    world.store.create_drafts(
        [
            NewDraft(
                campaign_id=campaign_id,
                lead_id=lead.id,
                step_index=2,
                subject="Again",
                body="Following up",
                state=MessageState.APPROVED,
                next_attempt_at=world.clock.now() + timedelta(days=10),
            )
        ],
        now=world.clock.now(),
    )
    world.store.set_account_pause(world.account.id, reason="on holiday")
    scheduler = world.scheduler()
    try:
        world.clock.advance(timedelta(days=6, hours=23))
        assert (await scheduler.run_pass(world.account.id)).outcome is None
        assert world.store.count_messages() == {MessageState.APPROVED: 2, MessageState.PENDING_APPROVAL: 1}

        world.clock.advance(timedelta(days=1, hours=2))
        await scheduler.start()  # the running scheduler, not a test-only call
        await _until(lambda: world.store.count_messages().get(MessageState.EXPIRED) == 2)
    finally:
        await scheduler.stop()
    assert world.store.count_messages() == {MessageState.EXPIRED: 2, MessageState.APPROVED: 1}
    expired = world.store.list_messages(states=[MessageState.EXPIRED])
    assert {m.step_index for m in expired} == {1}
    assert all("longer than 7 days" in (m.last_error or "") for m in expired)
    audit = world.store.query_audit(results=[AuditResult.EXPIRED], limit=None)
    assert sorted(entry.recipient for entry in audit) == ["lead0@example.com", "lead1@example.com"]
    assert world.peer.received == []


def test_a_lead_away_until_a_return_date_does_not_expire_while_waiting_for_it(world: World) -> None:
    campaign_id = world.campaign(2)
    away, present = world.store.list_leads(campaign_id)
    start = world.clock.now()
    world.store.set_lead_status(away.id, status=away.status, now=start, resume_at=start + timedelta(days=5))
    expired = world.store.expire_stale(
        world.account.id, now=start + timedelta(days=8), max_age=timedelta(days=7)
    )
    assert [m.lead_id for m in expired] == [present.id]
    expired = world.store.expire_stale(
        world.account.id, now=start + timedelta(days=12, minutes=1), max_age=timedelta(days=7)
    )
    assert [m.lead_id for m in expired] == [away.id]
    assert world.store.count_messages() == {MessageState.EXPIRED: 2}


@pytest.mark.asyncio
async def test_an_idle_scheduler_looks_again_after_the_housekeeping_interval(world: World) -> None:
    world.campaign(1)
    world.store.set_account_pause(world.account.id, reason="paused by the user")
    scheduler = world.scheduler(housekeeping_interval=timedelta(milliseconds=50))
    try:
        await scheduler.start()
        await asyncio.sleep(0.2)  # paused without an end: still nothing expired
        assert world.store.count_messages() == {MessageState.APPROVED: 1}
        world.clock.advance(timedelta(days=8))
        await _until(lambda: world.store.count_messages() == {MessageState.EXPIRED: 1})
    finally:
        await scheduler.stop()


# --- 5. the warm-up starts with the first send ------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_warm_up_starts_at_the_first_send_and_the_ramp_then_grows(world: World) -> None:
    warm = replace(PERMISSIVE, warmup_enabled=True, warmup_start=10, warmup_step=5, warmup_every_days=2)
    world.guardrails(warm)
    world.campaign(2)
    assert world.store.get_account(world.account.id).warmup_started_at is None
    scheduler = world.scheduler()
    try:
        first_send = world.clock.now()
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
        world.clock.advance(timedelta(hours=4))  # past the spacing of ten sends a day
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DELIVERED
    finally:
        await scheduler.stop()
    account = world.store.get_account(world.account.id)
    assert account.warmup_started_at == first_send  # set once, by the first send
    day_one = pacing.capacity_report(
        guardrails=warm, snapshot=world.store.snapshot(account.id, now=first_send)
    )
    week_later = pacing.capacity_report(
        guardrails=warm, snapshot=world.store.snapshot(account.id, now=first_send + timedelta(days=6))
    )
    assert day_one.warmup is not None and week_later.warmup is not None
    assert (day_one.warmup.limit, week_later.warmup.limit) == (10, 25)


def test_a_send_settled_from_the_sent_folder_also_starts_the_warm_up(world: World) -> None:
    world.campaign(1)
    now = world.clock.now()
    claimed = world.store.claim_next_send(account_id=world.account.id, now=now, decide=pick_first)
    assert isinstance(claimed, Claim) and claimed.message.message_id is not None
    assert world.store.get_account(world.account.id).warmup_started_at is None  # claimed is not sent
    found_at = world.clock.now() + timedelta(hours=3)  # a restart finds it in Sent
    world.store.record_delivered(claimed.message.message_id, at=found_at)
    assert world.store.get_account(world.account.id).warmup_started_at == found_at


# --- a breaker pause resumed by hand ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_resuming_a_breaker_pause_by_hand_sends_at_once_and_the_breaker_judges_what_follows(
    world: World,
) -> None:
    guardrails = replace(PERMISSIVE, bounce_breaker_min_sample=20)
    settings = replace(world.account.settings, guardrails=guardrails)
    world.store.update_account(world.account.id, settings=settings)
    now = world.clock.now()
    for i in range(20):  # 20 cold sends in the last hours, 6 of them hard-bounced: well over 5 %
        sent_at = now - timedelta(hours=3, minutes=-i)
        entry = LedgerEntry(world.account.id, sent_at, f"old{i}@example.com", LedgerKind.SENT, "S")
        assert world.store.add_ledger_entry(entry)
        if i < 6:
            bounce = replace(entry, kind=LedgerKind.HARD_BOUNCE, at=sent_at + timedelta(minutes=5))
            assert world.store.add_ledger_entry(bounce)
    world.campaign(2)
    scheduler = world.scheduler()
    try:
        tripped = await scheduler.run_pass(world.account.id)
        assert tripped.outcome is None and tripped.reason is DeferReason.BOUNCE_BREAKER
        paused = world.store.get_account(world.account.id)
        assert paused.paused_reason == pacing.BREAKER_PAUSE_REASON and paused.paused_until is not None

        await scheduler.resume(world.account.id)
        resumed = await scheduler.run_pass(world.account.id)
        assert resumed.outcome is SendOutcome.DELIVERED  # not tripped again by the same six bounces
        assert world.store.get_account(world.account.id).paused_until == now
    finally:
        await scheduler.stop()
