"""The sandbox's pieces on their own: the fast clock, the in-memory mailbox, the sandbox's DSNs and replies
through the real classifier."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest

from cadence.core.classify import classify
from cadence.core.model import InboundKind
from cadence.core.ports import MailboxError, MailboxErrorKind, SystemClock, real_seconds
from cadence.demo.clock import ScaledClock, demo_start
from cadence.demo.mailbox import INBOX, SENT, SandboxMailStore, sandbox_connector
from cadence.demo.recipients import BEHAVIOURS, Behaviour, react

START = datetime(2026, 11, 23, 7, 50, tzinfo=UTC)


class _Ticks:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_scaled_clock_runs_speed_times_faster_and_scales_waits() -> None:
    ticks = _Ticks()
    clock = ScaledClock(START, speed=600, monotonic=ticks)
    assert clock.now() == START
    ticks.value += 2.5
    assert clock.now() == START + timedelta(seconds=1500)
    assert real_seconds(clock, 3600) == pytest.approx(6.0)
    assert real_seconds(SystemClock(), 3600) == 3600
    with pytest.raises(ValueError):
        ScaledClock(START, speed=0)


def test_the_demo_week_starts_monday_before_business_hours() -> None:
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert demo_start(friday) == START
    assert demo_start(START) == START


@pytest.mark.asyncio
async def test_mailbox_uids_uidvalidity_and_idle_wake() -> None:
    clock = ScaledClock(START, speed=1)
    store = SandboxMailStore(clock=clock, uidvalidity=7)

    async def password() -> str | None:
        return "right"

    connect = sandbox_connector(store, password=password, expected="right")
    mailbox = await connect()
    folders = await mailbox.folders()
    assert (folders.inbox, folders.sent) == (INBOX, SENT)
    status = await mailbox.examine(INBOX)
    assert (status.uidvalidity, status.uidnext, status.exists) == (7, 1, 0)

    wake = asyncio.Event()
    waiting = asyncio.create_task(mailbox.wait_for_change(max_wait_s=5, wake=wake))
    await asyncio.sleep(0)
    store.deliver(INBOX, b"Subject: one\r\n\r\nbody\r\n")
    assert await asyncio.wait_for(waiting, 1) is True
    store.deliver(INBOX, b"Subject: two\r\nMessage-ID: <two@x>\r\n\r\nbody\r\n")
    await mailbox.examine(INBOX)
    assert await mailbox.uids_after(0) == [1, 2]
    assert await mailbox.uids_after(1) == [2]
    assert await mailbox.uids_since(date(2026, 11, 23)) == [1, 2]
    assert await mailbox.uids_since(date(2026, 11, 24)) == []
    fetched = await mailbox.fetch([2])
    assert [m.uid for m in fetched] == [2] and b"two" in fetched[0].raw
    assert await mailbox.find_message_id(INBOX, "<two@x>") == [2]
    assert await mailbox.append(SENT, b"Subject: copy\r\n\r\n") == 1

    wake.set()
    assert await mailbox.wait_for_change(max_wait_s=5, wake=wake) is False
    await mailbox.close()
    with pytest.raises(MailboxError):
        await mailbox.examine(INBOX)

    async def wrong() -> str | None:
        return "wrong"

    with pytest.raises(MailboxError) as refused:
        await sandbox_connector(store, password=wrong, expected="right")()
    assert refused.value.kind is MailboxErrorKind.AUTH_FAILED


def _ours(to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Sam <you@sandbox.example>"
    message["To"] = to
    message["Subject"] = "Acme and late deliveries"
    message["Message-ID"] = "<cad-123@sandbox.example>"
    message["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    message.set_content("Hi,\n\nA question.\n")
    return message.as_bytes()


EXPECTED = {
    Behaviour.HARD_BOUNCE: InboundKind.HARD_BOUNCE,
    Behaviour.SOFT_BOUNCE: InboundKind.SOFT_BOUNCE,
    Behaviour.OUT_OF_OFFICE: InboundKind.AUTO_REPLY,
    Behaviour.UNSUBSCRIBE: InboundKind.UNSUBSCRIBE,
    Behaviour.NOT_INTERESTED: InboundKind.NOT_INTERESTED,
    Behaviour.REPLY: InboundKind.REPLY,
}


@pytest.mark.parametrize("behaviour", list(EXPECTED))
def test_every_simulated_answer_is_classified_as_meant(behaviour: Behaviour) -> None:
    address = next(a for a, b in BEHAVIOURS.items() if b is behaviour)
    reaction = react(
        _ours(address),
        recipient=address,
        our_address="you@sandbox.example",
        at=START,
        rng=random.Random(1),
        already_replied=False,
    )
    assert reaction is not None and reaction.delay > timedelta(0)
    verdict = classify(reaction.raw)
    assert verdict.kind is EXPECTED[behaviour]
    if behaviour in (Behaviour.HARD_BOUNCE, Behaviour.SOFT_BOUNCE):
        assert verdict.recipients == (address,)
    if behaviour is Behaviour.OUT_OF_OFFICE:
        assert verdict.return_date is not None
    assert b"<cad-123@sandbox.example>" in reaction.raw  # threaded on (or carrying) our Message-ID


def test_silent_recipients_and_second_replies_send_nothing() -> None:
    raw = _ours("nobody@acme-systems.example")
    rng = random.Random(1)
    assert (
        react(
            raw,
            recipient="nobody@acme-systems.example",
            our_address="y",
            at=START,
            rng=rng,
            already_replied=False,
        )
        is None
    )
    replier = next(a for a, b in BEHAVIOURS.items() if b is Behaviour.REPLY)
    assert react(raw, recipient=replier, our_address="y", at=START, rng=rng, already_replied=True) is None
