"""The scheduler against a real SQLite file and the scripted aiosmtpd peer (STARTTLS, trustme CA): caps,
wake on approval, every SMTP fault class, in-doubt after a drop, follow-ups, and replies stopping them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core.classify import classify
from cadence.core.model import (
    Account,
    AccountSettings,
    AuditResult,
    ConnectionSecurity,
    DeferReason,
    FolderRole,
    Guardrails,
    InboundItem,
    Lead,
    LeadStatus,
    LedgerEntry,
    LedgerKind,
    MessageState,
    SendOutcome,
    Step,
    SuppressionReason,
)
from cadence.core.ports import SecretStoreUnavailable
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent, SendEventKind
from cadence.services.inbox_effects import InboxEffects
from cadence.services.scheduler import Scheduler, SchedulerOptions, draft_for_step
from tests.integration.smtp_peer import (  # noqa: F401
    AUTH,
    DATA_BODY,
    END_OF_DATA,
    MAIL,
    Drop,
    Reply,
    ScriptedSmtpPeer,
    smtp_ca,
    smtp_ca_file,
    smtp_peer,
)

PERMISSIVE = Guardrails(
    daily_cap=1_000_000,
    hourly_cap=1_000_000,
    domain_cap=1_000_000,
    min_delay_s=0,
    jitter_s=0,
    hours_start_min=0,
    hours_end_min=24 * 60,
    business_days=frozenset(range(7)),
    warmup_enabled=False,
    approve_first_touch=False,
)
SENDER = "alice@example.test"
PASSWORD = "alice-secret-pw"


class DictSecrets:
    """The scheduler's SecretStore port in memory (the keyring itself is tested elsewhere)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.reads = 0

    async def get(self, account: str) -> str | None:
        self.reads += 1
        return self.secrets.get(account)

    async def set(self, account: str, secret: str) -> None:
        self.secrets[account] = secret

    async def delete(self, account: str) -> None:
        self.secrets.pop(account, None)


@dataclass
class World:
    store: SqliteStore
    db: DbWorker
    peer: ScriptedSmtpPeer
    account: Account
    secrets: DictSecrets
    events: list[SendEvent]
    bus: EventBus[SendEvent]

    def scheduler(self) -> Scheduler:
        return Scheduler(
            store=self.store,
            db=self.db,
            secrets=self.secrets,
            mailer_factory=smtp_mailer_for,
            events=self.bus,
            rng=random.Random(7),
            options=SchedulerOptions(stop_grace_s=5),
        )

    def campaign(
        self, leads: int, *, steps: tuple[Step, ...] | None = None, guardrails: Guardrails | None = None
    ) -> int:
        now = datetime.now(UTC)
        steps = steps or (Step(index=1, subject="Hello {first_name}", body="Hi {first_name}, a note."),)
        campaign = self.store.create_campaign(name="c", account_id=self.account.id, steps=steps, now=now)
        self.store.add_leads(
            campaign.id,
            leads=[Lead(email=f"lead{i}@example.com", first_name=f"P{i}") for i in range(leads)],
            now=now,
        )
        drafts = [
            draft_for_step(
                campaign_id=campaign.id,
                lead=lead,
                step=steps[0],
                guardrails=guardrails or self.account.settings.guardrails,
            )
            for lead in self.store.list_leads(campaign.id)
        ]
        self.store.create_drafts(drafts, now=now)
        return campaign.id

    def states(self) -> dict[MessageState, int]:
        return self.store.count_messages()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest_asyncio.fixture
async def world(store: SqliteStore, smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> AsyncIterator[World]:  # noqa: F811
    account = store.create_account(
        AccountSettings(
            email=SENDER,
            smtp_host=smtp_peer.host,
            smtp_port=smtp_peer.port,
            smtp_security=ConnectionSecurity.STARTTLS,
            ca_file=str(smtp_ca_file),
            guardrails=PERMISSIVE,
        ),
        now=datetime.now(UTC),
    )
    db = DbWorker()
    bus: EventBus[SendEvent] = EventBus()
    events: list[SendEvent] = []
    bus.subscribe(events.append)
    try:
        yield World(store, db, smtp_peer, account, DictSecrets({SENDER: PASSWORD}), events, bus)
    finally:
        db.shutdown()


def with_guardrails(world: World, guardrails: Guardrails) -> None:
    world.account = world.store.update_account(
        world.account.id, settings=replace(world.account.settings, guardrails=guardrails)
    )


@pytest.mark.asyncio
async def test_campaign_sends_everything_once_with_one_message_per_pass(world: World) -> None:
    world.campaign(6)
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 6
    finally:
        await scheduler.stop()
    assert world.states() == {MessageState.SENT: 6}
    recipients = sorted(r for m in world.peer.accepted for r in m.recipients)
    assert recipients == sorted(f"lead{i}@example.com" for i in range(6))
    message_ids = {m.message_id for m in world.peer.accepted}
    assert message_ids == {m.message_id for m in world.store.list_messages()}
    ledger = world.store.list_ledger(
        account_id=world.account.id, since=datetime.now(UTC) - timedelta(hours=1)
    )
    assert len(ledger) == 6 and all(e.kind is LedgerKind.SENT for e in ledger)
    audit = world.store.query_audit(results=[AuditResult.SENT])
    assert len(audit) == 6 and all(e.sender == SENDER and e.legal_basis is not None for e in audit)
    assert sum(1 for e in world.events if e.kind is SendEventKind.SENT) == 6
    assert world.secrets.reads == 1  # cached in memory after the first read


@pytest.mark.asyncio
async def test_daily_cap_is_respected_and_the_scheduler_says_why_it_waits(world: World) -> None:
    with_guardrails(world, replace(PERMISSIVE, daily_cap=3))
    now = datetime.now(UTC)
    for minutes in (30, 20, 10):  # three cold sends already in the rolling 24 h (e.g. by another process)
        world.store.add_ledger_entry(
            LedgerEntry(
                account_id=world.account.id,
                at=now - timedelta(minutes=minutes),
                recipient=f"earlier{minutes}@example.org",
                kind=LedgerKind.SENT,
            )
        )
    world.campaign(2)
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 0
        result = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert result.outcome is None and result.reason is DeferReason.DAILY_CAP
    assert result.wait_until is not None
    assert result.wait_until >= now - timedelta(minutes=30) + timedelta(hours=24)
    assert world.peer.received == []
    assert world.states() == {MessageState.APPROVED: 2}


@pytest.mark.asyncio
async def test_pacing_spreads_sends_over_the_window(world: World) -> None:
    with_guardrails(world, replace(PERMISSIVE, daily_cap=3))
    world.campaign(3)
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 1
        result = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    # three a day over a 24 h window: the next one waits hours (spacing), not seconds
    assert result.reason is DeferReason.SPACING
    assert result.wait_until is not None and result.wait_until > datetime.now(UTC) + timedelta(hours=3)
    assert len(world.peer.accepted) == 1


@pytest.mark.asyncio
async def test_approval_wakes_the_running_scheduler(world: World) -> None:
    with_guardrails(world, replace(PERMISSIVE, approve_first_touch=True))
    world.campaign(2, guardrails=world.account.settings.guardrails)
    assert world.states() == {MessageState.PENDING_APPROVAL: 2}
    scheduler = world.scheduler()
    await scheduler.start()
    try:
        await asyncio.sleep(0.5)
        assert world.peer.received == []  # nothing goes before approval, and the task sleeps (no wait_until)
        pending = [m.id for m in world.store.list_messages(states=[MessageState.PENDING_APPROVAL])]
        world.store.approve(pending, now=datetime.now(UTC))
        scheduler.wake(world.account.id)
        for _ in range(200):
            if len(world.peer.accepted) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    assert len(world.peer.accepted) == 2
    assert world.states() == {MessageState.SENT: 2}


@pytest.mark.asyncio
async def test_temporary_failure_defers_on_the_retry_schedule_without_using_capacity(world: World) -> None:
    world.peer.on(END_OF_DATA, Reply("451 4.3.0 Temporary local problem"), times=1)
    world.campaign(1)
    scheduler = world.scheduler()
    before = datetime.now(UTC)
    try:
        result = await scheduler.run_pass(world.account.id)
        again = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert result.outcome is SendOutcome.DEFERRED
    message = world.store.list_messages()[0]
    assert message.state is MessageState.DEFERRED and message.defer_reason is DeferReason.SMTP_TEMPORARY
    assert message.next_attempt_at is not None
    assert (
        before + timedelta(minutes=4) <= message.next_attempt_at <= datetime.now(UTC) + timedelta(minutes=6)
    )
    assert again.outcome is None  # not retried before its time
    assert world.store.list_ledger(account_id=world.account.id, since=before) == ()
    assert world.store.get_account(world.account.id).paused_reason is None


@pytest.mark.asyncio
async def test_dead_recipient_is_suppressed_with_the_servers_words_and_counted_as_hard_bounce(
    world: World,
) -> None:
    world.peer.reply_to_recipient("lead0@example.com", Reply("550 5.1.1 <lead0@example.com>: no such user"))
    world.campaign(2, steps=(Step(1, "Hi", "Hello"), Step(2, "Again", "Hello again", delay_days=2)))
    scheduler = world.scheduler()
    try:
        await scheduler.drain()
    finally:
        await scheduler.stop()
    dead = world.store.list_messages(lead_id=world.store.find_leads("lead0@example.com")[0].id)
    assert [m.state for m in dead] == [MessageState.FAILED]  # and no follow-up for a dead address
    assert "5.1.1" in (dead[0].last_error or "")
    suppression = world.store.find_suppression("lead0@example.com")
    assert suppression is not None and suppression.reason is SuppressionReason.SMTP_REJECTED
    assert suppression.evidence_id is not None
    assert b"no such user" in world.store.get_evidence(suppression.evidence_id)
    assert world.store.find_leads("lead0@example.com")[0].status is LeadStatus.BOUNCED
    bounces = world.store.list_ledger(
        account_id=world.account.id,
        since=datetime.now(UTC) - timedelta(hours=1),
        kinds=[LedgerKind.HARD_BOUNCE],
    )
    assert [b.recipient for b in bounces] == ["lead0@example.com"]
    assert [r for m in world.peer.accepted for r in m.recipients] == ["lead1@example.com"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        (END_OF_DATA, "550 5.7.1 Message rejected due to local policy", SendOutcome.POLICY),
        (MAIL, "554 5.7.0 TS03 Message permanently deferred", SendOutcome.DO_NOT_RETRY),
    ],
)
async def test_policy_refusals_pause_the_account_with_the_server_text_and_no_retry_storm(
    world: World, stage: str, reply: str, outcome: SendOutcome
) -> None:
    world.peer.on(stage, Reply(reply))
    world.campaign(3)
    scheduler = world.scheduler()
    try:
        first = await scheduler.run_pass(world.account.id)
        second = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert first.outcome is outcome
    assert second.outcome is None and second.reason is DeferReason.PAUSED and second.wait_until is None
    account = world.store.get_account(world.account.id)
    assert account.paused_reason is not None and reply.split(" ", 1)[1][:20] in account.paused_reason
    assert len(world.peer.received) + len([c for c in world.peer.commands if c[1] == "MAIL"]) >= 1
    assert world.states()[MessageState.DEFERRED] == 1  # the message waits for the resume, not failed
    assert world.store.query_audit(results=[AuditResult.PAUSED])


@pytest.mark.asyncio
async def test_wrong_password_pauses_the_account_once_and_resuming_after_the_fix_sends(world: World) -> None:
    world.secrets.secrets[SENDER] = "wrong"
    world.campaign(2)
    scheduler = world.scheduler()
    try:
        first = await scheduler.run_pass(world.account.id)
        second = await scheduler.run_pass(world.account.id)
        assert first.outcome is SendOutcome.AUTH_FAILED and second.outcome is None
        assert len(world.peer.auth_attempts) == 1
        assert "login" in (world.store.get_account(world.account.id).paused_reason or "")

        world.secrets.secrets[SENDER] = PASSWORD  # the user fixes the password and resumes
        await scheduler.resume(world.account.id)
        assert await scheduler.drain() == 2
    finally:
        await scheduler.stop()
    assert len(world.peer.accepted) == 2 and world.states() == {MessageState.SENT: 2}


@pytest.mark.asyncio
async def test_throttling_backs_the_account_off(world: World) -> None:
    world.peer.on(END_OF_DATA, Reply("421 4.7.0 Too many messages, try again later", close=True), times=1)
    world.campaign(2)
    scheduler = world.scheduler()
    try:
        first = await scheduler.run_pass(world.account.id)
        second = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert first.outcome is SendOutcome.THROTTLED
    account = world.store.get_account(world.account.id)
    assert account.backoff_until is not None and account.backoff_until > datetime.now(UTC) + timedelta(
        minutes=3
    )
    assert second.outcome is None and second.reason is DeferReason.BACKOFF
    deferred = world.store.list_messages(states=[MessageState.DEFERRED])
    assert len(deferred) == 1 and deferred[0].defer_reason is DeferReason.BACKOFF


@pytest.mark.asyncio
async def test_provider_quota_pauses_until_the_window_frees(world: World) -> None:
    world.campaign(3)
    scheduler = world.scheduler()
    try:
        await scheduler.run_pass(world.account.id)  # one sent: the rolling day starts with it
        world.peer.on(END_OF_DATA, Reply("550 5.4.5 Daily user sending quota exceeded"))
        quota = await scheduler.run_pass(world.account.id)
        while quota.outcome is None and quota.reason is DeferReason.SPACING:  # a few ms between sends
            await asyncio.sleep(0.02)
            quota = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert quota.outcome is SendOutcome.QUOTA
    account = world.store.get_account(world.account.id)
    first_sent = world.store.list_messages(states=[MessageState.SENT])[0].state_changed_at
    assert account.paused_until is not None
    assert abs((account.paused_until - (first_sent + timedelta(hours=24))).total_seconds()) < 5
    assert world.states()[MessageState.DEFERRED] == 1


@pytest.mark.asyncio
async def test_mailbox_full_counts_a_soft_bounce_and_retries_later(world: World) -> None:
    world.peer.reply_to_recipient("lead0@example.com", Reply("552 5.2.2 Mailbox full"))
    world.campaign(1)
    scheduler = world.scheduler()
    try:
        result = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert result.outcome is SendOutcome.RECIPIENT_SOFT
    soft = world.store.list_ledger(
        account_id=world.account.id,
        since=datetime.now(UTC) - timedelta(hours=1),
        kinds=[LedgerKind.SOFT_BOUNCE],
    )
    assert len(soft) == 1
    assert world.states() == {MessageState.DEFERRED: 1}
    assert world.store.find_suppression("lead0@example.com") is None


@pytest.mark.asyncio
async def test_drop_after_the_final_dot_leaves_the_message_in_doubt_and_a_restart_never_resends_it(
    world: World,
) -> None:
    world.peer.on(END_OF_DATA, Drop(), times=1)
    world.campaign(2)
    scheduler = world.scheduler()
    try:
        first = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert first.outcome is SendOutcome.IN_DOUBT
    in_doubt = world.store.list_in_doubt(world.account.id)
    assert len(in_doubt) == 1
    doubtful_id = in_doubt[0].message_id

    restarted = world.scheduler()  # a new process: nothing in memory
    try:
        reported = await restarted.start()
        for _ in range(200):
            if world.states().get(MessageState.SENT) == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        await restarted.stop()
    assert [m.message_id for m in reported] == [doubtful_id]
    assert world.states() == {MessageState.SENT: 1, MessageState.SENDING: 1}
    assert [m.message_id for m in world.peer.received].count(doubtful_id) == 1
    assert any(e.kind is SendEventKind.IN_DOUBT for e in world.events)


@pytest.mark.asyncio
async def test_follow_up_is_created_when_a_step_is_sent_and_due_after_its_delay(world: World) -> None:
    steps = (
        Step(1, "Hi {first_name}", "Hello"),
        Step(2, "Re: Hi {first_name}", "Following up", delay_days=3),
    )
    world.campaign(1, steps=steps)
    scheduler = world.scheduler()
    try:
        await scheduler.drain()
        later = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    first, follow_up = world.store.list_messages()
    assert first.state is MessageState.SENT
    assert follow_up.step_index == 2 and follow_up.state is MessageState.APPROVED
    assert follow_up.subject == "Re: Hi P0"
    assert follow_up.next_attempt_at is not None
    assert abs((follow_up.next_attempt_at - (first.state_changed_at + timedelta(days=3))).total_seconds()) < 1
    assert later.outcome is None and later.reason is DeferReason.STEP_NOT_DUE
    assert later.wait_until == follow_up.next_attempt_at


def _reply_to(message_id: str, *, sender: str, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = SENDER
    mail["Subject"] = "Re: Hi P1"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="example.com")
    mail["In-Reply-To"] = message_id
    mail["References"] = message_id
    mail.set_content(body)
    return mail.as_bytes()


@pytest.mark.asyncio
async def test_a_reply_stops_the_follow_ups_and_sent_copies_settle_in_doubt_sends(world: World) -> None:
    steps = (Step(1, "Hi {first_name}", "Hello"), Step(2, "Again", "Following up", delay_days=3))
    world.campaign(2, steps=steps)
    world.peer.on(END_OF_DATA, Drop(), times=1)  # the first message (lead1) ends in doubt
    scheduler = world.scheduler()
    try:
        await scheduler.drain()
    finally:
        await scheduler.stop()
    sent = world.store.list_messages(states=[MessageState.SENT])
    assert [m.recipient for m in sent] == ["lead1@example.com"]
    doubtful = world.store.list_in_doubt(world.account.id)
    assert [m.recipient for m in doubtful] == ["lead0@example.com"]
    assert sent[0].message_id is not None and doubtful[0].message_id is not None

    sink = InboxEffects(world.store, events=world.bus)
    raw = _reply_to(sent[0].message_id, sender="lead1@example.com", body="Thanks, let's talk next week.")
    verdict = classify(raw)
    reply = InboundItem(
        folder="INBOX", role=FolderRole.INBOX, uid=7, raw=raw, message_id=None, verdict=verdict
    )
    await world.db.call(
        sink.apply_batch,
        account_id=world.account.id,
        folder="INBOX",
        uidvalidity=1,
        items=[reply],
        last_uid=7,
    )
    await world.db.call(
        sink.apply_batch,
        account_id=world.account.id,
        folder="INBOX",
        uidvalidity=1,
        items=[reply],
        last_uid=7,
    )
    lead1 = world.store.find_leads("lead1@example.com")[0]
    assert lead1.status is LeadStatus.REPLIED
    assert [m.state for m in world.store.list_messages(lead_id=lead1.id)] == [
        MessageState.SENT,
        MessageState.CANCELLED,
    ]
    state = world.store.get_mailbox_state(world.account.id, folder="INBOX")
    assert state is not None and state.last_uid == 7

    mime = world.store.get_mime(doubtful[0].message_id)
    assert mime is not None
    copy = InboundItem(
        folder="Sent",
        role=FolderRole.SENT,
        uid=3,
        raw=mime,
        message_id=doubtful[0].message_id,
        verdict=classify(mime),
    )
    await world.db.call(
        sink.apply_batch, account_id=world.account.id, folder="Sent", uidvalidity=1, items=[copy], last_uid=3
    )
    lead0 = world.store.find_leads("lead0@example.com")[0]
    settled = world.store.list_messages(lead_id=lead0.id)
    assert [m.state for m in settled] == [MessageState.SENT, MessageState.APPROVED]  # sent + its follow-up
    assert world.store.list_in_doubt(world.account.id) == ()
    ledger = world.store.list_ledger(
        account_id=world.account.id, since=datetime.now(UTC) - timedelta(hours=1), kinds=[LedgerKind.SENT]
    )
    assert sorted(e.recipient for e in ledger) == ["lead0@example.com", "lead1@example.com"]


@pytest.mark.asyncio
async def test_approved_lead_without_recorded_consent_is_set_aside_and_does_not_block_the_queue(
    world: World,
) -> None:
    now = datetime.now(UTC)
    step = Step(1, "Hello", "Hi")
    campaign = world.store.create_campaign(name="eu", account_id=world.account.id, steps=(step,), now=now)
    world.store.add_leads(campaign.id, leads=[Lead("kunde@example.de"), Lead("buyer@example.com")], now=now)
    drafts = [
        draft_for_step(campaign_id=campaign.id, lead=lead, step=step, guardrails=PERMISSIVE)
        for lead in world.store.list_leads(campaign.id)
    ]
    assert [d.state for d in drafts] == [MessageState.PENDING_APPROVAL, MessageState.APPROVED]
    ids = world.store.create_drafts(drafts, now=now)
    world.store.approve([i for i in ids if i is not None], now=now)  # the user approves the held one too
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 1
    finally:
        await scheduler.stop()
    assert [r for m in world.peer.accepted for r in m.recipients] == ["buyer@example.com"]
    held = world.store.list_messages(lead_id=world.store.find_leads("kunde@example.de")[0].id)[0]
    assert held.state is MessageState.DEFERRED and held.defer_reason is DeferReason.CONSENT_REQUIRED
    assert world.store.query_audit(results=[AuditResult.HELD], recipient="kunde@example.de")


class SteppedClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.mark.asyncio
async def test_a_message_still_deferred_after_72_hours_is_given_up(world: World) -> None:
    world.peer.on(END_OF_DATA, Reply("451 4.3.0 Temporary local problem"))
    world.campaign(1)
    clock = SteppedClock()
    scheduler = Scheduler(
        store=world.store,
        db=world.db,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        clock=clock,
        rng=random.Random(1),
    )
    try:
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DEFERRED
        clock.offset = timedelta(hours=2)
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DEFERRED
        assert world.states() == {MessageState.DEFERRED: 1}
        clock.offset = timedelta(hours=73)
        assert (await scheduler.run_pass(world.account.id)).outcome is SendOutcome.DEFERRED
    finally:
        await scheduler.stop()
    message = world.store.list_messages()[0]
    assert message.state is MessageState.FAILED and "72 h" in (message.last_error or "")
    assert len(world.peer.received) == 3 and message.attempts == 3


@pytest.mark.asyncio
async def test_two_processes_sharing_the_database_never_exceed_a_cap_together(
    world: World, tmp_path: Path
) -> None:
    with_guardrails(world, replace(PERMISSIVE, domain_cap=3))
    world.campaign(12)  # every lead at example.com: the domain cap binds
    second_database = open_database(tmp_path / "cadence.sqlite3")  # the same file, its own connections
    second_db = DbWorker()
    other = Scheduler(
        store=SqliteStore(second_database),
        db=second_db,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        rng=random.Random(2),
    )
    first = world.scheduler()
    try:
        counts = await asyncio.gather(first.drain(), other.drain())
    finally:
        await first.stop()
        await other.stop()
        second_db.shutdown()
        second_database.close()
    assert sum(counts) == 3
    assert len(world.peer.accepted) == 3
    assert world.states() == {MessageState.SENT: 3, MessageState.APPROVED: 9}


class LockedKeyring(DictSecrets):
    async def get(self, account: str) -> str | None:
        self.reads += 1
        raise SecretStoreUnavailable("The system keyring is locked; unlock it and try again.")


@pytest.mark.asyncio
async def test_a_locked_keyring_delays_sending_without_pausing_the_account(world: World) -> None:
    world.campaign(1)
    world.secrets = LockedKeyring({})
    scheduler = world.scheduler()
    try:
        result = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert result.outcome is None and result.reason is DeferReason.BACKOFF
    assert result.wait_until is not None and result.wait_until > datetime.now(UTC) + timedelta(minutes=4)
    assert world.store.get_account(world.account.id).paused_reason is None
    assert world.states() == {MessageState.APPROVED: 1} and world.peer.received == []
    assert any("keyring" in e.detail for e in world.events if e.kind is SendEventKind.DEFERRED)


@pytest.mark.asyncio
async def test_mail_written_by_hand_in_sent_counts_as_a_manual_send_once(world: World) -> None:
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = "Friend <friend@example.org>, other@example.net"
    mail["Subject"] = "Lunch?"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="example.test")
    mail.set_content("Are you free on Friday?")
    raw = mail.as_bytes()
    item = InboundItem(
        folder="Sent",
        role=FolderRole.SENT,
        uid=11,
        raw=raw,
        message_id=mail["Message-ID"],
        verdict=classify(raw),
    )
    sink = InboxEffects(world.store)
    for uid in (11, 12):  # the same message seen again under another UID (e.g. copied): counted once
        await world.db.call(
            sink.apply_batch,
            account_id=world.account.id,
            folder="Sent",
            uidvalidity=1,
            items=[replace(item, uid=uid)],
            last_uid=uid,
        )
    ledger = world.store.list_ledger(
        account_id=world.account.id, since=datetime.now(UTC) - timedelta(hours=1), kinds=[LedgerKind.SENT]
    )
    assert sorted((e.recipient, e.manual, e.cold) for e in ledger) == [
        ("friend@example.org", True, False),
        ("other@example.net", True, False),
    ]
    snapshot = world.store.snapshot(world.account.id, now=datetime.now(UTC))
    assert sum(1 for record in snapshot.sends if record.manual) == 2  # the provider caps see them
