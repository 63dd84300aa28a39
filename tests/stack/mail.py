"""Cadence's own pieces pointed at a MailStack: compose + SmtpMailer submit, ImapMailbox + classify read.

Nothing here re-implements Cadence: it builds the message with `core.compose`, submits it with
`adapters.smtp.SmtpMailer` (STARTTLS + AUTH, trusting the stack's CA file), reads INBOX with
`adapters.imap.ImapMailbox` and classifies with `core.classify.classify`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cadence.adapters.imap import ImapAccount, ImapConnector, ImapMailbox
from cadence.adapters.smtp import SmtpMailer
from cadence.core.classify import classify
from cadence.core.compose import OutgoingMessage, compose, new_message_id
from cadence.core.model import SendResult, Verdict
from tests.stack.stack import PROSPECT_DOMAIN, MailStack


def unique_address(behaviour: str) -> str:
    """`grey+3f2a9c@prospect.test`: acts as `behaviour` at the internet, unique per call."""
    return f"{behaviour}+{uuid.uuid4().hex[:10]}@{PROSPECT_DOMAIN}"


def smtp_mailer(stack: MailStack, *, password: str | None = None, **options: Any) -> SmtpMailer:
    options.setdefault("command_timeout_s", 10.0)
    options.setdefault("final_reply_timeout_s", 30.0)
    return SmtpMailer(
        host=stack.host,
        port=stack.submission_port,
        security="starttls",
        username=stack.user,
        password=stack.password if password is None else password,
        ca_file=stack.ca_file,
        **options,
    )


def imap_account(stack: MailStack, *, timeout_s: float = 10.0) -> ImapAccount:
    return ImapAccount(
        host=stack.host,
        username=stack.user,
        port=stack.imaps_port,
        ca_file=str(stack.ca_file),
        timeout_s=timeout_s,
    )


def imap_connector(stack: MailStack) -> ImapConnector:
    return ImapConnector(imap_account(stack), secret=stack.password)


@dataclass(frozen=True)
class Submitted:
    recipient: str
    message_id: str
    result: SendResult
    at: float  # time.time() when the server answered


def outgoing(stack: MailStack, recipient: str, *, subject: str = "Quick question") -> OutgoingMessage:
    return OutgoingMessage(
        sender=stack.user,
        sender_name="Sam Seller",
        recipient=recipient,
        subject=subject,
        text="Hello,\n\nwould a short call next week make sense?\n\nSam\n",
        message_id=new_message_id(stack.user),
        date=datetime.now(UTC),
    )


async def submit(
    stack: MailStack, recipient: str, *, mailer: SmtpMailer | None = None, subject: str = "Quick question"
) -> Submitted:
    """Compose one message with Cadence and submit it through Postfix; the mailer is closed unless given."""
    message = outgoing(stack, recipient, subject=subject)
    own = mailer is None
    used = mailer or smtp_mailer(stack)
    try:
        result = await used.send(sender=stack.user, recipients=(recipient,), message=compose(message))
    finally:
        if own:
            await used.close()
    return Submitted(recipient=recipient, message_id=message.message_id, result=result, at=time.time())


@dataclass(frozen=True)
class Arrival:
    uid: int
    raw: bytes
    verdict: Verdict
    seen_at: float  # time.time() when the poll fetched it


@dataclass
class Inbox:
    """INBOX polled through Cadence's IMAP adapter; every new message is classified once and kept."""

    stack: MailStack
    poll_s: float = 0.25
    arrivals: list[Arrival] = field(default_factory=list)
    _mailbox: ImapMailbox | None = None
    _last_uid: int = 0

    async def __aenter__(self) -> Inbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        mailbox, self._mailbox = self._mailbox, None
        if mailbox is not None:
            await mailbox.close()

    async def poll(self) -> list[Arrival]:
        if self._mailbox is None or self._mailbox.broken:
            self._mailbox = await imap_connector(self.stack)()
        await self._mailbox.examine("INBOX")  # re-EXAMINE: a fresh view of what arrived meanwhile
        uids = await self._mailbox.uids_after(self._last_uid)
        fresh: list[Arrival] = []
        if uids:
            now = time.time()
            for message in await self._mailbox.fetch(uids):
                fresh.append(
                    Arrival(uid=message.uid, raw=message.raw, verdict=classify(message.raw), seen_at=now)
                )
            self._last_uid = max(uids)
        self.arrivals.extend(fresh)
        return fresh

    async def wait_for(self, matches: Callable[[Verdict], bool], *, timeout_s: float, what: str) -> Arrival:
        """The first message (already seen or new) whose verdict matches; AssertionError after timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = next((arrival for arrival in self.arrivals if matches(arrival.verdict)), None)
            if found is not None:
                return found
            if loop.time() > deadline:
                seen = [
                    (a.verdict.kind.value, a.verdict.original_message_id, a.verdict.status)
                    for a in self.arrivals
                ]
                raise AssertionError(f"no {what} in INBOX within {timeout_s:.0f} s; seen: {seen}")
            await self.poll()
            if not any(matches(arrival.verdict) for arrival in self.arrivals):
                await asyncio.sleep(self.poll_s)


async def wait_until(
    condition: Callable[[], Any], *, timeout_s: float, what: str, poll_s: float = 0.1
) -> Any:
    """Poll a synchronous condition (e.g. the internet's records) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(poll_s)
