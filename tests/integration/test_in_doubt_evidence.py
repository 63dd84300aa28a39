"""Mail in the inbox that cites a message left in doubt proves that it went out: a bounce of it (the server
took it, then could not deliver it) or a reply to it. The inbox batch records such a message as sent itself,
once, instead of leaving it to the user. Found by the kill test through the real mail stack: a kill right
after the final dot to a dead address left the message in doubt although Postfix's DSN named it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cadence.core.classify import classify
from cadence.core.model import (
    FolderRole,
    InboundItem,
    LeadStatus,
    LedgerKind,
    MessageState,
    OutboxMessage,
    Step,
)
from cadence.services.inbox_effects import InboxEffects
from tests.integration.smtp_peer import END_OF_DATA, Drop, smtp_ca, smtp_ca_file, smtp_peer  # noqa: F401
from tests.integration.test_scheduler_send import SENDER, World, store, world  # noqa: F401

STEPS = (Step(1, "Hello {first_name}", "Hi"), Step(2, "Re: Hello {first_name}", "Again", delay_days=3))
LEAD = "lead0@example.com"  # World.campaign's first lead


async def _left_in_doubt(setup: World) -> OutboxMessage:
    """A real send whose connection drops right after the final dot: the message stays `sending`."""
    setup.campaign(1, steps=STEPS)
    setup.peer.on(END_OF_DATA, Drop(), times=1)
    scheduler = setup.scheduler()
    try:
        assert await scheduler.drain() == 1
    finally:
        await scheduler.stop()
    (message,) = setup.store.list_messages()
    assert message.state is MessageState.SENDING and message.message_id is not None
    return message


def _hard_bounce(original_message_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mail.example.test>\r\n"
        f"To: {SENDER}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mail.example.test>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mail.example.test\r\n\r\n"
        f"Final-Recipient: rfc822; {LEAD}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SENDER}\r\nTo: {LEAD}\r\nSubject: Hello P0\r\nMessage-ID: {original_message_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


def _reply(in_reply_to: str) -> bytes:
    return (
        f"From: {LEAD}\r\nTo: {SENDER}\r\nSubject: Re: Hello\r\nMessage-ID: <r-1@example.com>\r\n"
        f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nSounds good, let's talk on Tuesday.\r\n"
    ).encode()


def _apply(setup: World, raw: bytes, *, uid: int) -> None:
    item = InboundItem(
        folder="INBOX",
        role=FolderRole.INBOX,
        uid=uid,
        raw=raw,
        message_id=f"<in{uid}@x.test>",
        verdict=classify(raw),
    )
    InboxEffects(setup.store).apply_batch(
        account_id=setup.account.id, folder="INBOX", uidvalidity=1, items=[item], last_uid=uid
    )


def _ledger(setup: World, kind: LedgerKind) -> list[str | None]:
    since = datetime.now(UTC) - timedelta(hours=1)
    return [
        e.message_id for e in setup.store.list_ledger(account_id=setup.account.id, since=since, kinds=[kind])
    ]


@pytest.mark.asyncio
async def test_a_bounce_of_a_message_in_doubt_records_it_as_sent_and_stops_the_lead(
    world: World,  # noqa: F811
) -> None:
    message = await _left_in_doubt(world)
    assert message.message_id is not None
    assert _ledger(world, LedgerKind.SENT) == []

    _apply(world, _hard_bounce(message.message_id), uid=1)

    assert world.store.get_message(message.id).state is MessageState.SENT
    assert world.store.list_in_doubt(world.account.id) == ()
    assert _ledger(world, LedgerKind.SENT) == [message.message_id]
    assert _ledger(world, LedgerKind.HARD_BOUNCE) == [message.message_id]
    assert world.store.get_lead(message.lead_id).status is LeadStatus.BOUNCED
    assert world.store.is_suppressed(LEAD)
    # the follow-up drafted with the delivery is cancelled by the bounce in the same batch
    follow_ups = [m for m in world.store.list_messages() if m.step_index == 2]
    assert [m.state for m in follow_ups] == [MessageState.CANCELLED]

    _apply(world, _hard_bounce(message.message_id), uid=1)  # read again: nothing changes
    assert _ledger(world, LedgerKind.SENT) == [message.message_id]
    assert [m.message_id for m in world.peer.received].count(message.message_id) == 1  # no second send


@pytest.mark.asyncio
async def test_a_reply_to_a_message_in_doubt_records_it_as_sent(world: World) -> None:  # noqa: F811
    message = await _left_in_doubt(world)
    assert message.message_id is not None

    _apply(world, _reply(message.message_id), uid=7)

    assert world.store.get_message(message.id).state is MessageState.SENT
    assert _ledger(world, LedgerKind.SENT) == [message.message_id]
    assert world.store.get_lead(message.lead_id).status is LeadStatus.REPLIED


@pytest.mark.asyncio
async def test_a_bounce_that_names_a_message_not_in_doubt_settles_nothing(world: World) -> None:  # noqa: F811
    world.campaign(1, steps=STEPS)
    (queued,) = world.store.list_messages()
    assert queued.state is MessageState.APPROVED and queued.message_id is None

    _apply(world, _hard_bounce("<cad-unknown@example.test>"), uid=3)

    assert world.store.get_message(queued.id).state is MessageState.CANCELLED  # the lead bounced
    assert _ledger(world, LedgerKind.SENT) == []
