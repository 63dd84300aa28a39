"""Sending and reading together, against real servers: the scheduler sends through the SMTP peer, the inbox
watcher reads a real Dovecot, and what it finds (a reply in INBOX, a copy in Sent) changes what is sent."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
import trustme

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import imap_connector_for, smtp_mailer_for
from cadence.core.classify import classify
from cadence.core.model import (
    AccountSettings,
    ConnectionSecurity,
    Lead,
    LeadStatus,
    LedgerKind,
    MessageState,
    Step,
)
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent
from cadence.services.inbox import InboxWatcher, WatchOptions
from cadence.services.inbox_effects import InboxEffects, SentFolderCopier
from cadence.services.scheduler import Scheduler, draft_for_step
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.smtp_peer import END_OF_DATA, Drop, ScriptedSmtpPeer, smtp_ca  # noqa: F401
from tests.integration.test_scheduler_send import PERMISSIVE, DictSecrets

pytestmark = pytest.mark.dovecot


@pytest.fixture
def mailbox_server() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


def _reply(*, sender: str, to: str, in_reply_to: str, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = "Re: Hello"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="example.com")
    mail["In-Reply-To"] = in_reply_to
    mail["References"] = in_reply_to
    mail.set_content(body)
    return mail.as_bytes()


@pytest.mark.asyncio
async def test_reply_in_inbox_stops_follow_ups_and_sent_copy_settles_the_in_doubt_send(
    tmp_path: Path,
    mailbox_server: DovecotServer,
    smtp_ca: trustme.CA,  # noqa: F811
) -> None:
    user, password = mailbox_server.user, mailbox_server.password
    peer = ScriptedSmtpPeer(ca=smtp_ca, users={user: password})
    await peer.start()
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(smtp_ca.cert_pem.bytes() + mailbox_server.ca_file.read_bytes())
    database = open_database(tmp_path / "cadence.sqlite3")
    store = SqliteStore(database)
    db = DbWorker()
    secrets = DictSecrets({user: password})
    watcher = InboxWatcher(
        sink=InboxEffects(store),
        classify=classify,
        options=WatchOptions(idle=False, poll_interval_s=3600),
        sink_executor=db.executor,
    )
    scheduler = Scheduler(
        store=store, db=db, secrets=secrets, mailer_factory=smtp_mailer_for, rng=random.Random(3)
    )
    try:
        now = datetime.now(UTC)
        account = store.create_account(
            AccountSettings(
                email=user,
                smtp_host=peer.host,
                smtp_port=peer.port,
                smtp_security=ConnectionSecurity.STARTTLS,
                imap_host=mailbox_server.host,
                imap_port=mailbox_server.imaps_port,
                ca_file=str(bundle),
                guardrails=PERMISSIVE,
            ),
            now=now,
        )
        steps = (
            Step(1, "Hello {first_name}", "Hi"),
            Step(2, "Re: Hello {first_name}", "Again", delay_days=3),
        )
        campaign = store.create_campaign(name="c", account_id=account.id, steps=steps, now=now)
        store.add_leads(
            campaign.id,
            leads=[Lead("ann@example.com", "Ann"), Lead("bob@example.com", "Bob")],
            now=now,
        )
        store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=steps[0], guardrails=PERMISSIVE)
                for lead in store.list_leads(campaign.id)
            ],
            now=now,
        )
        peer.on(END_OF_DATA, Drop(), times=1)  # Ann's message: the connection drops after the final dot
        assert await scheduler.drain() == 2
        ann, bob = (store.find_leads(a)[0] for a in ("ann@example.com", "bob@example.com"))
        ann_message = store.list_messages(lead_id=ann.id)[0]
        bob_first, bob_follow_up = store.list_messages(lead_id=bob.id)
        assert ann_message.state is MessageState.SENDING and bob_first.state is MessageState.SENT
        assert bob_follow_up.state is MessageState.APPROVED and bob_follow_up.step_index == 2

        # Bob answers; Ann's message had in fact gone out and the provider filed it in Sent
        assert bob_first.message_id is not None and ann_message.message_id is not None
        reply = _reply(
            sender="bob@example.com", to=user, in_reply_to=bob_first.message_id, body="Yes, call me."
        )
        mailbox_server.append("INBOX", reply)
        ann_copy = store.get_mime(ann_message.message_id)
        assert ann_copy is not None
        mailbox_server.append("Sent", ann_copy, seen=True)

        await watcher.start(account.id, imap_connector_for(account, secrets))
        reports = await watcher.sync_now(account.id, timeout_s=60)
        assert reports[0].ok, reports[0].error

        assert store.get_lead(bob.id).status is LeadStatus.REPLIED
        assert store.get_message(bob_follow_up.id).state is MessageState.CANCELLED
        settled = store.get_message(ann_message.id)
        assert settled.state is MessageState.SENT
        ann_follow_up = [m for m in store.list_messages(lead_id=ann.id) if m.step_index == 2]
        assert len(ann_follow_up) == 1 and ann_follow_up[0].state is MessageState.APPROVED
        ledger = store.list_ledger(
            account_id=account.id, since=now - timedelta(minutes=1), kinds=[LedgerKind.SENT]
        )
        assert sorted(e.recipient for e in ledger) == ["ann@example.com", "bob@example.com"]

        again = await watcher.sync_now(account.id, timeout_s=60)  # nothing new: nothing changes
        assert (
            again[0].ok
            and store.list_ledger(
                account_id=account.id, since=now - timedelta(minutes=1), kinds=[LedgerKind.SENT]
            )
            == ledger
        )
        assert [m.message_id for m in peer.received].count(ann_message.message_id) == 1
    finally:
        await scheduler.stop()
        await watcher.stop()
        db.shutdown()
        database.close()
        await peer.stop()


@pytest.mark.asyncio
async def test_a_sent_message_is_copied_to_sent_once_and_not_counted_again(
    tmp_path: Path,
    mailbox_server: DovecotServer,
    smtp_ca: trustme.CA,  # noqa: F811
) -> None:
    user, password = mailbox_server.user, mailbox_server.password
    peer = ScriptedSmtpPeer(ca=smtp_ca, users={user: password})
    await peer.start()
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(smtp_ca.cert_pem.bytes() + mailbox_server.ca_file.read_bytes())
    database = open_database(tmp_path / "cadence.sqlite3")
    store = SqliteStore(database)
    db = DbWorker()
    secrets = DictSecrets({user: password})
    watcher = InboxWatcher(
        sink=InboxEffects(store),
        classify=classify,
        options=WatchOptions(idle=False, poll_interval_s=3600),
        sink_executor=db.executor,
    )
    bus: EventBus[SendEvent] = EventBus()
    copier = SentFolderCopier(store=store, db=db, watcher=watcher)
    bus.subscribe(copier.on_event)
    scheduler = Scheduler(
        store=store, db=db, secrets=secrets, mailer_factory=smtp_mailer_for, events=bus, rng=random.Random(3)
    )
    try:
        now = datetime.now(UTC)
        account = store.create_account(
            AccountSettings(
                email=user,
                smtp_host=peer.host,
                smtp_port=peer.port,
                smtp_security=ConnectionSecurity.STARTTLS,
                imap_host=mailbox_server.host,
                imap_port=mailbox_server.imaps_port,
                ca_file=str(bundle),
                guardrails=PERMISSIVE,
            ),
            now=now,
        )
        step = Step(1, "Hello {first_name}", "Hi")
        campaign = store.create_campaign(name="c", account_id=account.id, steps=(step,), now=now)
        store.add_leads(campaign.id, leads=[Lead("ann@example.com", "Ann")], now=now)
        store.create_drafts(
            [
                draft_for_step(campaign_id=campaign.id, lead=lead, step=step, guardrails=PERMISSIVE)
                for lead in store.list_leads(campaign.id)
            ],
            now=now,
        )
        await watcher.start(account.id, imap_connector_for(account, secrets))
        assert (await watcher.sync_now(account.id, timeout_s=60))[0].ok
        assert await scheduler.drain() == 1
        await copier.aclose()  # waits for the APPEND
        sent = store.list_messages()[0]
        with mailbox_server.client() as imap:
            imap.select("Sent", readonly=True)
            _, found = imap.search(None, "HEADER", "Message-ID", f'"{sent.message_id}"')
        assert len(found[0].split()) == 1

        assert (await watcher.sync_now(account.id, timeout_s=60))[0].ok  # the watcher reads its own copy
        ledger = store.list_ledger(
            account_id=account.id, since=now - timedelta(minutes=1), kinds=[LedgerKind.SENT]
        )
        assert [(e.recipient, e.manual) for e in ledger] == [("ann@example.com", False)]
    finally:
        await scheduler.stop()
        await copier.aclose()
        await watcher.stop()
        db.shutdown()
        database.close()
        await peer.stop()
