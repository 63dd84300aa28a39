"""Every message Cadence sent gets exactly one copy in Sent (APP_APPENDS providers), even when the process
died between the delivery and the APPEND: real SQLite, a real Dovecot and the scripted SMTP peer. A message
"sent without its copy" is made by sending with no copier listening, which is what a kill right after the
delivery leaves behind."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import imap_connector_for, smtp_mailer_for
from cadence.core.classify import classify
from cadence.core.model import (
    Account,
    AccountSettings,
    ConnectionSecurity,
    Lead,
    MessageState,
    OutboxMessage,
    SentFolderKind,
    Step,
)
from cadence.core.ports import UserFacingError
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent
from cadence.services.inbox import InboxEvent, InboxWatcher, WatchOptions
from cadence.services.inbox_effects import InboxEffects, SentFolderCopier
from cadence.services.runtime import Runtime
from cadence.services.scheduler import Scheduler, draft_for_step
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.smtp_peer import END_OF_DATA, Drop, ScriptedSmtpPeer, smtp_ca  # noqa: F401
from tests.integration.test_scheduler_send import PERMISSIVE, DictSecrets

pytestmark = pytest.mark.dovecot

STEP = Step(1, "Hello {first_name}", "Hi")


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
    inbox_events: EventBus[InboxEvent]
    bundle: Path

    def account(self, kind: SentFolderKind = SentFolderKind.APP_APPENDS) -> Account:
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

    async def sent_without_copy(self, account: Account, emails: list[str]) -> list[OutboxMessage]:
        """Deliver a first message to each address with nobody copying it to Sent (as a kill would)."""
        now = datetime.now(UTC)
        campaign = self.store.create_campaign(name="c", account_id=account.id, steps=(STEP,), now=now)
        self.store.add_leads(campaign.id, leads=[Lead(e, e.split("@")[0].title()) for e in emails], now=now)
        self.store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=STEP, guardrails=PERMISSIVE)
                for lead in self.store.list_leads(campaign.id)
            ],
            now=now,
        )
        scheduler = Scheduler(
            store=self.store,
            db=self.db,
            secrets=self.secrets,
            mailer_factory=smtp_mailer_for,
            rng=random.Random(3),
        )
        try:
            assert await scheduler.drain() == len(emails)
        finally:
            await scheduler.stop()
        sent = self.store.list_messages(campaign_id=campaign.id, states=[MessageState.SENT])
        assert len(sent) == len(emails)
        return list(sent)

    async def watch(self, account: Account) -> None:
        await self.watcher.start(account.id, imap_connector_for(account, self.secrets))
        assert (await self.watcher.sync_now(account.id, timeout_s=60))[0].ok

    def copies_in_sent(self, message_id: str) -> int:
        with self.server.client() as imap:
            imap.select("Sent", readonly=True)
            _, found = imap.search(None, "HEADER", "Message-ID", f'"{message_id}"')
        return len(found[0].split())

    def sent_folder_size(self) -> int:
        with self.server.client() as imap:
            _, data = imap.select("Sent", readonly=True)
        return int(data[0] or 0)

    def refuse_appends_to_sent(self, refuse: bool) -> None:
        """Dovecot writes an APPENDed message to the maildir's tmp/ first: unwritable, it answers NO."""
        (self.server.maildir("Sent") / "tmp").chmod(0o555 if refuse else 0o700)


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
    inbox_events: EventBus[InboxEvent] = EventBus()
    watcher = InboxWatcher(
        sink=InboxEffects(store),
        classify=classify,
        on_event=inbox_events.publish,
        options=WatchOptions(idle=False, poll_interval_s=3600, backoff_initial_s=0.2, backoff_max_s=1.0),
        sink_executor=db.executor,
    )
    world = World(
        mailbox_server, peer, store, db, DictSecrets({user: password}), watcher, inbox_events, bundle
    )
    try:
        yield world
    finally:
        world.refuse_appends_to_sent(False)
        await watcher.stop()
        db.shutdown()
        database.close()
        await peer.stop()


def _copier(world: World) -> SentFolderCopier:
    return SentFolderCopier(store=world.store, db=world.db, watcher=world.watcher)


async def _until(condition: object, *, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_sent_message_without_a_copy_gets_exactly_one_from_the_catch_up(world: World) -> None:
    account = world.account()
    sent = await world.sent_without_copy(account, ["ann@example.com", "bob@example.com"])
    await world.watch(account)
    copier = _copier(world)
    try:
        assert [world.copies_in_sent(m.message_id or "") for m in sent] == [0, 0]

        report = await copier.catch_up(account.id)

        assert (report.found, report.appended, report.failed, report.more) == (0, 2, 0, False)
        for message in sent:
            assert message.message_id is not None
            assert world.copies_in_sent(message.message_id) == 1
            assert world.store.has_sent_copy(message.id)
            with world.server.client() as imap:  # the exact bytes that went out
                imap.select("Sent", readonly=True)
                _, found = imap.search(None, "HEADER", "Message-ID", f'"{message.message_id}"')
                _, data = imap.fetch(found[0].split()[0], "(BODY.PEEK[])")
            body = data[0][1]
            assert isinstance(body, bytes)
            assert body.replace(b"\r\n", b"\n") == (world.store.get_mime(message.message_id) or b"").replace(
                b"\r\n", b"\n"
            )

        again = await copier.catch_up(account.id)
        assert (again.found, again.appended, again.failed) == (0, 0, 0)
        assert world.sent_folder_size() == 2
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_a_copy_appended_just_before_a_crash_is_recorded_and_not_appended_again(world: World) -> None:
    account = world.account()
    (message,) = await world.sent_without_copy(account, ["ann@example.com"])
    assert message.message_id is not None
    await world.watch(account)  # the watcher has read Sent before the copy lands: only a search finds it
    world.server.append("Sent", world.store.get_mime(message.message_id) or b"", seen=True)
    assert not world.store.has_sent_copy(message.id)
    copier = _copier(world)
    try:
        report = await copier.catch_up(account.id)

        assert (report.found, report.appended, report.failed) == (1, 0, 0)
        assert world.copies_in_sent(message.message_id) == 1
        assert world.store.has_sent_copy(message.id)
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_the_watchers_pass_over_sent_records_a_copy_it_sees(world: World) -> None:
    account = world.account()
    (message,) = await world.sent_without_copy(account, ["ann@example.com"])
    assert message.message_id is not None
    world.server.append("Sent", world.store.get_mime(message.message_id) or b"", seen=True)

    await world.watch(account)

    assert world.store.has_sent_copy(message.id)
    assert (
        world.store.list_missing_sent_copies(
            account.id, since=datetime.now(UTC) - timedelta(days=7), limit=50
        )
        == ()
    )


@pytest.mark.asyncio
async def test_a_provider_files_account_is_never_appended_to(world: World) -> None:
    account = world.account(SentFolderKind.PROVIDER_FILES)
    copier = _copier(world)
    bus: EventBus[SendEvent] = EventBus()
    bus.subscribe(copier.on_event)
    world.inbox_events.subscribe(copier.on_inbox_event)
    scheduler = Scheduler(
        store=world.store,
        db=world.db,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        events=bus,
        rng=random.Random(3),
    )
    try:
        (earlier,) = await world.sent_without_copy(account, ["ann@example.com"])
        await world.watch(account)  # connecting runs a catch-up
        campaign = world.store.create_campaign(
            name="d", account_id=account.id, steps=(STEP,), now=datetime.now(UTC)
        )
        world.store.add_leads(campaign.id, leads=[Lead("bob@example.com", "Bob")], now=datetime.now(UTC))
        world.store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=STEP, guardrails=PERMISSIVE)
                for lead in world.store.list_leads(campaign.id)
            ],
            now=datetime.now(UTC),
        )
        assert await scheduler.drain() == 1  # a SENT event for the copier
        report = await copier.catch_up(account.id)
        await copier.aclose()

        assert (report.found, report.appended, report.failed) == (0, 0, 0)
        assert world.sent_folder_size() == 0
        assert not world.store.has_sent_copy(earlier.id)
    finally:
        await scheduler.stop()
        await copier.aclose()


@pytest.mark.asyncio
async def test_a_refused_append_is_left_for_the_next_pass_with_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    account = world.account()
    (message,) = await world.sent_without_copy(account, ["ann@example.com"])
    assert message.message_id is not None
    await world.watch(account)
    copier = _copier(world)
    try:
        world.refuse_appends_to_sent(True)
        with caplog.at_level(logging.WARNING, logger="cadence.services.inbox_effects"):
            refused = await copier.catch_up(account.id)

        assert (refused.found, refused.appended, refused.failed) == (0, 0, 1)
        assert world.copies_in_sent(message.message_id) == 0
        assert not world.store.has_sent_copy(message.id)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(f"copy of message {message.id} is not in Sent yet" in w for w in warnings), warnings
        assert world.watcher.last_error(account.id) is None  # the watcher carries on

        world.refuse_appends_to_sent(False)
        retried = await copier.catch_up(account.id)

        assert (retried.found, retried.appended, retried.failed) == (0, 1, 0)
        assert world.copies_in_sent(message.message_id) == 1
        assert world.store.has_sent_copy(message.id)
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_the_catch_up_runs_when_the_watcher_connects_and_again_after_a_reconnect(world: World) -> None:
    account = world.account()
    (ann,) = await world.sent_without_copy(account, ["ann@example.com"])
    assert ann.message_id is not None
    copier = _copier(world)
    world.inbox_events.subscribe(copier.on_inbox_event)
    try:
        await world.watch(account)
        await _until(lambda: world.store.has_sent_copy(ann.id))
        assert world.copies_in_sent(ann.message_id) == 1

        (bob,) = await world.sent_without_copy(account, ["bob@example.com"])
        assert bob.message_id is not None
        await asyncio.to_thread(world.server.restart)  # the watcher's connection drops
        await world.watcher.sync_now(account.id, timeout_s=30)  # it notices, and connects again
        await _until(lambda: world.store.has_sent_copy(bob.id))

        assert world.copies_in_sent(bob.message_id) == 1
        assert world.copies_in_sent(ann.message_id) == 1
        assert world.sent_folder_size() == 2
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_a_batch_larger_than_one_pass_is_finished_by_the_following_passes(world: World) -> None:
    account = world.account()
    sent = await world.sent_without_copy(account, [f"lead{i}@example.com" for i in range(5)])
    await world.watch(account)
    copier = SentFolderCopier(store=world.store, db=world.db, watcher=world.watcher, batch=2)
    world.inbox_events.subscribe(copier.on_inbox_event)
    try:
        first = await copier.catch_up(account.id)
        assert (first.appended, first.more) == (2, True)
        # the passes that follow (here: asked for) carry on where the last one stopped
        for _ in range(3):
            assert (await world.watcher.sync_now(account.id, timeout_s=60))[0].ok
            await _until(lambda: not copier.catching_up(account.id))
        assert all(world.store.has_sent_copy(m.id) for m in sent)
        assert world.sent_folder_size() == 5
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_a_message_sent_while_the_copier_listens_is_copied_once_and_recorded(world: World) -> None:
    account = world.account()
    await world.watch(account)
    copier = _copier(world)
    world.inbox_events.subscribe(copier.on_inbox_event)
    bus: EventBus[SendEvent] = EventBus()
    bus.subscribe(copier.on_event)
    scheduler = Scheduler(
        store=world.store,
        db=world.db,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        events=bus,
        rng=random.Random(3),
    )
    try:
        now = datetime.now(UTC)
        campaign = world.store.create_campaign(name="c", account_id=account.id, steps=(STEP,), now=now)
        world.store.add_leads(campaign.id, leads=[Lead("ann@example.com", "Ann")], now=now)
        world.store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=STEP, guardrails=PERMISSIVE)
                for lead in world.store.list_leads(campaign.id)
            ],
            now=now,
        )
        assert await scheduler.drain() == 1
        (message,) = world.store.list_messages(states=[MessageState.SENT])
        copy_task = asyncio.ensure_future(_until(lambda: world.store.has_sent_copy(message.id)))
        catch_up = await copier.catch_up(account.id)  # racing the SENT event's own copy
        await copy_task
        assert message.message_id is not None
        assert world.copies_in_sent(message.message_id) == 1
        assert catch_up.appended + catch_up.found <= 1
    finally:
        await scheduler.stop()
        await copier.aclose()


@pytest.mark.asyncio
async def test_an_erased_person_leaves_nothing_to_catch_up(world: World) -> None:
    account = world.account()
    sent = await world.sent_without_copy(account, ["ann@example.com", "bob@example.com"])
    await world.watch(account)
    world.store.erase_person("ann@example.com", now=datetime.now(UTC))
    copier = _copier(world)
    try:
        report = await copier.catch_up(account.id)
        assert (report.appended, report.failed) == (1, 0)
        bob = next(m for m in sent if m.recipient == "bob@example.com")
        ann = next(m for m in sent if m.recipient == "ann@example.com")
        assert bob.message_id is not None and ann.message_id is not None
        assert world.copies_in_sent(bob.message_id) == 1
        assert world.copies_in_sent(ann.message_id) == 0
        assert world.sent_folder_size() == 1
    finally:
        await copier.aclose()


@pytest.mark.asyncio
async def test_the_windows_runtime_catches_up_when_it_starts_watching(world: World) -> None:
    account = world.account()
    (message,) = await world.sent_without_copy(account, ["ann@example.com"])
    assert message.message_id is not None
    runtime = Runtime(
        store=world.store,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        connector_factory=lambda a: imap_connector_for(a, world.secrets),
    )
    try:
        await runtime.start()
        await _until(lambda: world.store.has_sent_copy(message.id))
        assert world.copies_in_sent(message.message_id) == 1
    finally:
        await runtime.aclose()
    assert world.copies_in_sent(message.message_id) == 1


@pytest.mark.asyncio
async def test_an_in_doubt_message_the_user_marks_sent_gets_its_copy(world: World) -> None:
    account = world.account()
    world.peer.on(END_OF_DATA, Drop(), times=1)  # the connection drops after the final dot: in doubt
    with pytest.raises(AssertionError):
        await world.sent_without_copy(account, ["ann@example.com"])
    (message,) = world.store.list_messages(states=[MessageState.SENDING])
    assert message.message_id is not None
    runtime = Runtime(
        store=world.store,
        secrets=world.secrets,
        mailer_factory=smtp_mailer_for,
        connector_factory=lambda a: imap_connector_for(a, world.secrets),
    )
    try:
        await runtime.start()
        assert (await runtime.watcher.sync_now(account.id, timeout_s=60))[0].ok
        await _until(lambda: not runtime.sent_copier.catching_up(account.id))
        assert world.sent_folder_size() == 0  # in doubt: no copy yet

        for _ in range(200):  # the runtime's scheduler may be between passes over this account
            try:
                await runtime.settle_in_doubt(message.id, sent=True)
                break
            except UserFacingError:
                await asyncio.sleep(0.05)

        await _until(lambda: world.store.has_sent_copy(message.id))
        assert world.copies_in_sent(message.message_id) == 1
        assert world.store.get_message(message.id).state is MessageState.SENT
    finally:
        await runtime.aclose()
