"""What inbox items do to sending, over a real SQLite store and real sends through the SMTP peer: a person's
reply stops their company's sequence in that campaign (never for free-mail domains), and a provider's
throttling text in a bounce backs the account off like an SMTP throttling reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cadence.adapters.db.store import SqliteStore
from cadence.core.classify import classify
from cadence.core.model import DeferReason, FolderRole, InboundItem, Lead, LeadStatus, MessageState, Step
from cadence.services.inbox_effects import InboxEffects, company_domain
from cadence.services.scheduler import draft_for_step
from tests.integration.smtp_peer import smtp_ca, smtp_ca_file, smtp_peer  # noqa: F401
from tests.integration.test_scheduler_send import PERMISSIVE, SENDER, World, store, world  # noqa: F401

STEPS = (Step(1, "Hello {first_name}", "Hi"), Step(2, "Re: Hello {first_name}", "Again", delay_days=3))


def _campaign(setup: World, emails: list[str]) -> int:
    now = datetime.now(UTC)
    campaign = setup.store.create_campaign(name="c", account_id=setup.account.id, steps=STEPS, now=now)
    setup.store.add_leads(campaign.id, leads=[Lead(e, e.split("@")[0].title()) for e in emails], now=now)
    setup.store.create_drafts(
        [
            draft_for_step(campaign_id=campaign.id, lead=lead, step=STEPS[0], guardrails=PERMISSIVE)
            for lead in setup.store.list_leads(campaign.id)
        ],
        now=now,
    )
    return campaign.id


def _item(uid: int, raw: bytes) -> InboundItem:
    return InboundItem(
        folder="INBOX",
        role=FolderRole.INBOX,
        uid=uid,
        raw=raw,
        message_id=f"<in{uid}@x.test>",
        verdict=classify(raw),
    )


def _reply(sender: str, in_reply_to: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {SENDER}\r\nSubject: Re: Hello\r\nMessage-ID: <r-{sender}>\r\n"
        f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "\r\nSounds good, let's talk on Tuesday about the details.\r\n"
    ).encode()


def _apply(effects: InboxEffects, setup: World, items: list[InboundItem]) -> None:
    effects.apply_batch(
        account_id=setup.account.id, folder="INBOX", uidvalidity=1, items=items, last_uid=items[-1].uid
    )


def _first_message_id(sqlite: SqliteStore, address: str) -> str:
    lead = sqlite.find_leads(address)[0]
    message_id = sqlite.list_messages(lead_id=lead.id)[0].message_id
    assert message_id is not None
    return message_id


def _status(sqlite: SqliteStore, address: str, campaign_id: int) -> LeadStatus:
    return next(lead.status for lead in sqlite.find_leads(address) if lead.campaign_id == campaign_id)


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("Ann@Acme.Example", "acme.example"),
        ("x@gmail.com", None),
        ("x@outlook.com", None),
        ("x@yahoo.co.uk", None),
        ("x@hotmail.de", None),
        ("x@icloud.com", None),
        ("x@gmx.net", None),
        ("x@web.de", None),
        ("x@proton.me", None),
        ("x@protonmail.com", None),
        ("x@example.com", None),
        ("no-domain", None),
    ],
)
def test_company_domain_leaves_out_free_mail(address: str, domain: str | None) -> None:
    assert company_domain(address) == domain


@pytest.mark.asyncio
async def test_a_reply_stops_the_sequence_of_everyone_at_that_company_in_that_campaign(world: World) -> None:  # noqa: F811
    first = _campaign(
        world,
        ["ann@acme.example", "carl@acme.example", "dan@other.example", "eve@gmail.com", "fay@gmail.com"],
    )
    second = _campaign(world, ["gus@acme.example"])
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 6
    finally:
        await scheduler.stop()
    sqlite = world.store
    effects = InboxEffects(sqlite)
    _apply(
        effects,
        world,
        [
            _item(1, _reply("ann@acme.example", _first_message_id(sqlite, "ann@acme.example"))),
            _item(2, _reply("eve@gmail.com", _first_message_id(sqlite, "eve@gmail.com"))),
        ],
    )

    assert _status(sqlite, "ann@acme.example", first) is LeadStatus.REPLIED
    assert _status(sqlite, "carl@acme.example", first) is LeadStatus.FINISHED
    carl = sqlite.find_leads("carl@acme.example")[0]
    follow_ups = [m for m in sqlite.list_messages(lead_id=carl.id) if m.step_index == 2]
    assert [m.state for m in follow_ups] == [MessageState.CANCELLED]
    assert _status(sqlite, "dan@other.example", first) is LeadStatus.CONTACTED  # another company
    assert _status(sqlite, "gus@acme.example", second) is LeadStatus.CONTACTED  # another campaign
    assert _status(sqlite, "eve@gmail.com", first) is LeadStatus.REPLIED
    assert _status(sqlite, "fay@gmail.com", first) is LeadStatus.CONTACTED  # free mail says nothing


@pytest.mark.asyncio
async def test_the_company_stop_can_be_switched_off(world: World) -> None:  # noqa: F811
    campaign = _campaign(world, ["ann@acme.example", "carl@acme.example"])
    scheduler = world.scheduler()
    try:
        assert await scheduler.drain() == 2
    finally:
        await scheduler.stop()
    effects = InboxEffects(world.store, stop_company_on_reply=False)
    _apply(
        effects,
        world,
        [_item(1, _reply("ann@acme.example", _first_message_id(world.store, "ann@acme.example")))],
    )
    assert _status(world.store, "ann@acme.example", campaign) is LeadStatus.REPLIED
    assert _status(world.store, "carl@acme.example", campaign) is LeadStatus.CONTACTED


def _throttling_dsn(diagnostic: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
        f"To: {SENDER}\r\nSubject: Delayed Mail (still being retried)\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message is delayed.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n"
        "Final-Recipient: rfc822; lead@gmail.example\r\nAction: delayed\r\nStatus: 4.7.0\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--B--\r\n"
    ).encode()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "diagnostic",
    [
        "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your SPF domain",
        "421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume",
        "451 4.7.650 The mail server [192.0.2.7] has been temporarily rate limited due to IP reputation",
    ],
)
async def test_a_throttling_bounce_backs_the_account_off_before_the_next_send(
    world: World,  # noqa: F811
    diagnostic: str,
) -> None:
    raw = _throttling_dsn(diagnostic)
    assert classify(raw).throttling is not None
    _campaign(world, ["ann@acme.example"])
    effects = InboxEffects(world.store)
    _apply(effects, world, [_item(1, raw)])

    account = world.store.get_account(world.account.id)
    assert account.backoff_until is not None and account.backoff_until > datetime.now(UTC) + timedelta(
        minutes=1
    )
    assert account.consecutive_throttles == 1 and account.pace_factor == 0.5
    scheduler = world.scheduler()
    try:
        result = await scheduler.run_pass(world.account.id)
    finally:
        await scheduler.stop()
    assert result.outcome is None and result.reason is DeferReason.BACKOFF
    assert world.peer.accepted == []

    _apply(effects, world, [_item(1, raw)])  # the same bounce read again: no second backoff
    assert world.store.get_account(world.account.id).consecutive_throttles == 1
