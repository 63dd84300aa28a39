"""The inbox watcher and sending, the gaps between them, against real servers: in-doubt sends settled from a
real Dovecot's Sent folder (or sent again through the SMTP peer), and the mailbox read before a batch."""

from __future__ import annotations

import inspect
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.smtp import SmtpMailer
from cadence.app import imap_connector_for, smtp_mailer_for
from cadence.core.classify import classify
from cadence.core.model import (
    Account,
    AccountSettings,
    AuditResult,
    ConnectionSecurity,
    Lead,
    LeadStatus,
    MessageState,
    SentFolderKind,
    Step,
)
from cadence.services.dbworker import DbWorker
from cadence.services.in_doubt import IN_DOUBT_GRACE, InDoubtSettler, MailboxFirst
from cadence.services.inbox import InboxEvent, InboxEventKind, InboxWatcher, WatchOptions
from cadence.services.inbox_effects import InboxEffects
from cadence.services.scheduler import Scheduler, draft_for_step
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.smtp_peer import END_OF_DATA, Drop, ScriptedSmtpPeer, smtp_ca  # noqa: F401
from tests.integration.test_scheduler_send import PERMISSIVE, DictSecrets

pytestmark = pytest.mark.dovecot

STEPS = (Step(1, "Hello {first_name}", "Hi"), Step(2, "Re: Hello {first_name}", "Again", delay_days=3))


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture
def mailbox_server() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


@dataclass
class World:
    server: DovecotServer
    peer: ScriptedSmtpPeer
    store: SqliteStore
    db: DbWorker
    secrets: DictSecrets
    watcher: InboxWatcher
    bundle: Path

    def account(self, kind: SentFolderKind) -> Account:
        return self.store.create_account(
            AccountSettings(
                email=self.server.user,
                smtp_host=self.peer.host,
                smtp_port=self.peer.port,
                smtp_security=ConnectionSecurity.STARTTLS,
                imap_host=self.server.host,
                imap_port=self.server.imaps_port,
                ca_file=str(self.bundle),
                guardrails=PERMISSIVE,
                sent_folder_kind=kind,
            ),
            now=datetime.now(UTC),
        )

    def campaign(self, account: Account, emails: list[str]) -> int:
        now = datetime.now(UTC)
        campaign = self.store.create_campaign(name="c", account_id=account.id, steps=STEPS, now=now)
        self.store.add_leads(campaign.id, leads=[Lead(e, e.split("@")[0].title()) for e in emails], now=now)
        self.store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=STEPS[0], guardrails=PERMISSIVE)
                for lead in self.store.list_leads(campaign.id)
            ],
            now=now,
        )
        return campaign.id

    def scheduler(self, **kwargs: object) -> Scheduler:
        return Scheduler(
            store=self.store,
            db=self.db,
            secrets=self.secrets,
            mailer_factory=smtp_mailer_for,
            rng=random.Random(3),
            **kwargs,  # type: ignore[arg-type]
        )

    async def watch(self, account: Account) -> None:
        await self.watcher.start(account.id, imap_connector_for(account, self.secrets))
        assert (await self.watcher.sync_now(account.id, timeout_s=60))[0].ok


@pytest_asyncio.fixture
async def world(
    tmp_path: Path,
    mailbox_server: DovecotServer,
    smtp_ca: trustme.CA,  # noqa: F811
) -> AsyncIterator[World]:
    user, password = mailbox_server.user, mailbox_server.password
    peer = ScriptedSmtpPeer(ca=smtp_ca, users={user: password})
    await peer.start()
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(smtp_ca.cert_pem.bytes() + mailbox_server.ca_file.read_bytes())
    database = open_database(tmp_path / "cadence.sqlite3")
    store = SqliteStore(database)
    db = DbWorker()
    watcher = InboxWatcher(
        sink=InboxEffects(store),
        classify=classify,
        options=WatchOptions(idle=False, poll_interval_s=3600),
        sink_executor=db.executor,
    )
    try:
        yield World(mailbox_server, peer, store, db, DictSecrets({user: password}), watcher, bundle)
    finally:
        await watcher.stop()
        db.shutdown()
        database.close()
        await peer.stop()


async def _one_in_doubt(world: World, kind: SentFolderKind) -> tuple[Account, Scheduler, str, int]:
    account = world.account(kind)
    world.campaign(account, ["ann@example.com"])
    scheduler = world.scheduler()
    world.peer.on(END_OF_DATA, Drop(), times=1)  # the connection drops after the final dot
    assert await scheduler.drain() == 1
    message = world.store.list_messages()[0]
    assert message.state is MessageState.SENDING and message.message_id is not None
    await world.watch(account)
    return account, scheduler, message.message_id, message.id


def _settler(world: World, *, after: timedelta) -> InDoubtSettler:
    return InDoubtSettler(
        store=world.store,
        db=world.db,
        watcher=world.watcher,
        clock=FakeClock(datetime.now(UTC) + after),
    )


WITHIN_GRACE = IN_DOUBT_GRACE - timedelta(minutes=1)
AFTER_GRACE = IN_DOUBT_GRACE + timedelta(minutes=1)


def test_the_grace_outlasts_the_longest_send_the_smtp_adapter_can_still_be_in() -> None:
    """A message still `sending` inside the grace may be a live send (here or in a second instance): settling
    it then could send it twice. EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA: seven commands, then the
    dot."""
    defaults = inspect.signature(SmtpMailer).parameters
    longest_send_s = 7 * defaults["command_timeout_s"].default + defaults["final_reply_timeout_s"].default
    assert IN_DOUBT_GRACE.total_seconds() > longest_send_s


@pytest.mark.asyncio
async def test_an_in_doubt_send_found_in_sent_after_the_grace_period_is_recorded_as_sent(
    world: World,
) -> None:
    _, scheduler, message_id, outbox_id = await _one_in_doubt(world, SentFolderKind.APP_APPENDS)
    try:
        copy = world.store.get_mime(message_id)
        assert copy is not None
        world.server.append("Sent", copy, seen=True)

        assert await _settler(world, after=WITHIN_GRACE).settle_once() == {}
        assert world.store.get_message(outbox_id).state is MessageState.SENDING

        assert await _settler(world, after=AFTER_GRACE).settle_once() == {message_id: "sent"}
        assert world.store.get_message(outbox_id).state is MessageState.SENT
        assert world.store.is_already_sent(message_id)
        follow_ups = [m for m in world.store.list_messages() if m.step_index == 2]
        assert len(follow_ups) == 1 and follow_ups[0].state is MessageState.APPROVED
        assert await scheduler.drain() == 0  # nothing sent again
        assert [m.message_id for m in world.peer.received if m.accepted] == []
    finally:
        await scheduler.stop()


@pytest.mark.asyncio
async def test_an_in_doubt_send_missing_where_the_provider_files_sent_mail_is_sent_again_once(
    world: World,
) -> None:
    _, scheduler, message_id, outbox_id = await _one_in_doubt(world, SentFolderKind.PROVIDER_FILES)
    try:
        assert await _settler(world, after=AFTER_GRACE).settle_once() == {message_id: "requeued"}
        requeued = world.store.get_message(outbox_id)
        assert requeued.state is MessageState.QUEUED and requeued.message_id == message_id
        audit = world.store.query_audit(limit=50)
        assert any(row.result is AuditResult.DEFERRED and "queued again" in row.reason for row in audit)

        assert await scheduler.drain() == 1
        assert world.store.get_message(outbox_id).state is MessageState.SENT
        accepted = [m.message_id for m in world.peer.received if m.accepted]
        assert accepted == [message_id]  # the same Message-ID, delivered once
        assert await _settler(world, after=timedelta(minutes=30)).settle_once() == {}
        assert await scheduler.drain() == 0
    finally:
        await scheduler.stop()


@pytest.mark.asyncio
async def test_an_in_doubt_send_missing_where_the_app_appends_copies_stays_in_doubt(world: World) -> None:
    _, scheduler, message_id, outbox_id = await _one_in_doubt(world, SentFolderKind.APP_APPENDS)
    try:
        assert await _settler(world, after=AFTER_GRACE).settle_once() == {message_id: "in_doubt"}
        assert world.store.get_message(outbox_id).state is MessageState.SENDING
        assert await scheduler.drain() == 0
        assert [m.message_id for m in world.peer.received if m.accepted] == []
    finally:
        await scheduler.stop()


def _unsubscribe(sender: str, to: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = "unsubscribe"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="example.com")
    mail.set_content("Please remove me from your list.")
    return mail.as_bytes()


@pytest.mark.asyncio
async def test_an_unsubscribe_arriving_while_idle_is_read_before_the_next_send(world: World) -> None:
    account = world.account(SentFolderKind.APP_APPENDS)
    clock = FakeClock(datetime.now(UTC))
    mailbox_first = MailboxFirst(world.watcher, clock=clock, stale_after=timedelta(minutes=10))
    scheduler = world.scheduler(before_batch=mailbox_first)
    try:
        await world.watch(account)
        await mailbox_first(account.id)  # the last read of the mailbox, before going idle
        world.campaign(account, ["ann@example.com", "bob@example.com"])
        world.server.append("INBOX", _unsubscribe("ann@example.com", world.server.user))
        clock.advance(timedelta(minutes=11))  # idle for longer than the staleness limit

        await scheduler.drain()

        assert [m.recipients for m in world.peer.received if m.accepted] == [("bob@example.com",)]
        assert world.store.is_suppressed("ann@example.com")
        ann = world.store.find_leads("ann@example.com")[0]
        assert ann.status is LeadStatus.UNSUBSCRIBED
        assert all(m.state is not MessageState.SENT for m in world.store.list_messages(lead_id=ann.id))
    finally:
        await scheduler.stop()


@pytest.mark.asyncio
async def test_the_mailbox_is_read_again_only_when_the_last_pass_is_older_than_the_limit(
    world: World,
) -> None:
    account = world.account(SentFolderKind.APP_APPENDS)
    clock = FakeClock(datetime.now(UTC))
    mailbox_first = MailboxFirst(world.watcher, clock=clock, stale_after=timedelta(minutes=10))
    await world.watch(account)
    mailbox_first.on_inbox_event(InboxEvent(InboxEventKind.SYNCED, account.id))  # the watcher's own pass
    world.server.append("INBOX", _unsubscribe("ann@example.com", world.server.user))

    clock.advance(timedelta(minutes=5))
    await mailbox_first(account.id)
    assert not world.store.is_suppressed("ann@example.com")  # read 5 minutes ago: not read again

    clock.advance(timedelta(minutes=6))
    await mailbox_first(account.id)
    assert world.store.is_suppressed("ann@example.com")
