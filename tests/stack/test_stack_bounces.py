"""Mail submitted with Cadence's SmtpMailer through the real Postfix, and what comes back into INBOX, read
with Cadence's IMAP adapter and judged by Cadence's classifier. The internet answers by local part."""

from __future__ import annotations

from typing import Any

import pytest

from cadence.core.model import InboundKind, SendOutcome
from tests.stack.mail import Inbox, submit, unique_address, wait_until
from tests.stack.stack import MailStack


def _records_for(records: list[dict[str, Any]], recipient: str) -> list[dict[str, Any]]:
    return [record for record in records if record["rcpt"] == recipient]


@pytest.mark.asyncio
async def test_dead_recipient_comes_back_as_a_hard_bounce_with_recipient_and_message_id(
    mail_stack: MailStack,
) -> None:
    sent = await submit(mail_stack, "dead@prospect.test")
    assert sent.result.outcome is SendOutcome.DELIVERED, sent.result
    assert sent.result.code == 250

    async with Inbox(mail_stack) as inbox:
        arrival = await inbox.wait_for(
            lambda verdict: verdict.original_message_id == sent.message_id,
            timeout_s=15,
            what=f"DSN for {sent.message_id}",
        )
    verdict = arrival.verdict
    assert verdict.kind is InboundKind.HARD_BOUNCE
    assert verdict.status == "5.1.1"
    assert verdict.recipients == ("dead@prospect.test",)
    assert verdict.address_dead is True
    assert verdict.delayed is False
    assert b"report-type=delivery-status" in arrival.raw
    assert any(
        record["reply"].startswith("550 5.1.1")
        for record in _records_for(mail_stack.attempts(), sent.recipient)
    )
    assert not _records_for(mail_stack.delivered(), sent.recipient)


@pytest.mark.asyncio
async def test_accepted_recipient_is_recorded_by_the_internet_with_cadences_message_id(
    mail_stack: MailStack,
) -> None:
    recipient = unique_address("ok")
    sent = await submit(mail_stack, recipient)
    assert sent.result.outcome is SendOutcome.DELIVERED, sent.result

    delivered = await wait_until(
        lambda: _records_for(mail_stack.delivered(), recipient), timeout_s=10, what=f"{recipient} delivered"
    )
    assert [record["message_id"] for record in delivered] == [sent.message_id]
    assert delivered[0]["mail_from"] == mail_stack.user
    assert [record["reply"] for record in _records_for(mail_stack.attempts(), recipient)] == ["250 2.1.5 OK"]


@pytest.mark.asyncio
async def test_greylisted_recipient_is_accepted_at_postfixs_first_retry(mail_stack: MailStack) -> None:
    recipient = unique_address("grey")
    sent = await submit(mail_stack, recipient)
    assert sent.result.outcome is SendOutcome.DELIVERED, sent.result

    delivered = await wait_until(
        lambda: _records_for(mail_stack.delivered(), recipient), timeout_s=15, what=f"{recipient} delivered"
    )
    assert [record["message_id"] for record in delivered] == [sent.message_id]
    replies = [record["reply"] for record in _records_for(mail_stack.attempts(), recipient)]
    assert [reply[:3] for reply in replies] == ["451", "250"]
    attempts = _records_for(mail_stack.attempts(), recipient)
    assert attempts[1]["ts"] > attempts[0]["ts"]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_full_mailbox_gives_a_delay_warning_then_a_soft_failure(mail_stack: MailStack) -> None:
    recipient = unique_address("full")
    sent = await submit(mail_stack, recipient)
    assert sent.result.outcome is SendOutcome.DELIVERED, sent.result
    lifetime = mail_stack.timings.queue_lifetime_s

    async with Inbox(mail_stack) as inbox:
        warning = await inbox.wait_for(
            lambda v: v.original_message_id == sent.message_id and v.delayed,
            timeout_s=mail_stack.timings.delay_warning_s + 15,
            what="delay warning",
        )
        failure = await inbox.wait_for(
            lambda v: v.original_message_id == sent.message_id and not v.delayed,
            timeout_s=lifetime + 20,
            what="final failure DSN",
        )
    assert warning.verdict.kind is InboundKind.SOFT_BOUNCE
    assert warning.verdict.status == "4.2.2"
    assert warning.verdict.recipients == (recipient,)
    assert warning.uid < failure.uid

    assert failure.verdict.kind is InboundKind.SOFT_BOUNCE
    assert failure.verdict.status == "4.2.2"
    assert failure.verdict.recipients == (recipient,)
    assert failure.verdict.address_dead is False
    assert b"Action: failed" in failure.raw

    replies = [record["reply"] for record in _records_for(mail_stack.attempts(), recipient)]
    assert len(replies) >= 3 and all(reply.startswith("452 4.2.2") for reply in replies)
    assert not _records_for(mail_stack.delivered(), recipient)
