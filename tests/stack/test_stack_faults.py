"""Faults Cadence's adapters must survive, produced by the real servers: a wrong password at Postfix, Postfix
down, Postfix presenting a certificate from another CA, Dovecot restarted under an open IMAP connection or
hanging mid-FETCH.
This module has its own stack because it stops and reconfigures pieces of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cadence.adapters.imap import ImapConnector
from cadence.core.model import SendOutcome
from cadence.core.ports import MailboxError, MailboxErrorKind
from tests.stack.mail import imap_account, imap_connector, smtp_mailer, submit, unique_address, wait_until
from tests.stack.stack import MailStack


def _log_since(stack: MailStack, offset: int) -> str:
    return stack.postfix_log.read_bytes()[offset:].decode(errors="replace")


def _log_size(stack: MailStack) -> int:
    return stack.postfix_log.stat().st_size if stack.postfix_log.exists() else 0


def _delivered_ids(stack: MailStack) -> set[object]:
    return {record["message_id"] for record in stack.delivered()}


@pytest.mark.asyncio
async def test_wrong_password_is_auth_failed_and_nothing_is_queued(private_mail_stack: MailStack) -> None:
    stack = private_mail_stack
    wrong = "wrong-" + stack.password
    mailer = smtp_mailer(stack, password=wrong)
    try:
        sent = await submit(stack, unique_address("ok"), mailer=mailer)
    finally:
        await mailer.close()
    assert sent.result.outcome is SendOutcome.AUTH_FAILED, sent.result
    assert sent.result.code == 535
    assert wrong not in sent.result.transcript
    assert stack.queue_ids() == []
    assert sent.message_id not in _delivered_ids(stack)


@pytest.mark.asyncio
async def test_submission_server_down_is_deferred_and_sending_resumes_when_it_is_back(
    private_mail_stack: MailStack,
) -> None:
    stack = private_mail_stack
    stack.stop_postfix()
    try:
        down = await submit(stack, unique_address("ok"))
    finally:
        stack.start_postfix()
    assert down.result.outcome is SendOutcome.DEFERRED, down.result
    assert down.result.stage == "connect"

    back = await submit(stack, unique_address("ok"))
    assert back.result.outcome is SendOutcome.DELIVERED, back.result
    await wait_until(
        lambda: back.message_id in _delivered_ids(stack), timeout_s=10, what="delivery after restart"
    )
    assert down.message_id not in _delivered_ids(stack)


@pytest.mark.asyncio
async def test_certificate_from_another_ca_fails_closed_before_any_login(
    private_mail_stack: MailStack,
) -> None:
    stack = private_mail_stack
    stack.present_untrusted_certificate()
    try:
        offset = _log_size(stack)
        mailer = smtp_mailer(stack)
        try:
            refused = await submit(stack, unique_address("ok"), mailer=mailer)
            check = await mailer.verify_login()
        finally:
            await mailer.close()
        server_side = _log_since(stack, offset)
    finally:
        stack.present_trusted_certificate()
    assert refused.result.outcome is SendOutcome.POLICY, refused.result  # pause the account, do not retry
    assert refused.result.stage == "starttls"
    assert "AUTH" not in refused.result.transcript.split("STARTTLS", 1)[1]
    assert not check.ok and check.failed_step == "starttls"
    assert "sasl_username" not in server_side  # Postfix never saw a login
    assert stack.queue_ids() == []

    trusted = await submit(stack, unique_address("ok"))
    assert trusted.result.outcome is SendOutcome.DELIVERED, trusted.result
    await wait_until(lambda: trusted.message_id in _delivered_ids(stack), timeout_s=10, what="delivery")
    assert refused.message_id not in _delivered_ids(stack)


@pytest.mark.asyncio
async def test_imap_server_restarted_mid_idle_raises_our_error_and_a_new_connection_works(
    private_mail_stack: MailStack,
) -> None:
    stack = private_mail_stack
    connect = imap_connector(stack)
    mailbox = await connect()
    try:
        before = await mailbox.examine("INBOX")
        assert mailbox.supports_idle
        idle = asyncio.ensure_future(mailbox.wait_for_change(max_wait_s=30, wake=asyncio.Event()))
        await asyncio.sleep(0.3)
        assert not idle.done()
        await asyncio.to_thread(stack.restart_dovecot)
        with pytest.raises(MailboxError) as lost:
            await asyncio.wait_for(idle, timeout=10)
        assert lost.value.kind is MailboxErrorKind.CONNECTION_LOST
        assert mailbox.broken
        with pytest.raises(MailboxError) as again:
            await asyncio.wait_for(mailbox.uids_after(0), timeout=5)
        assert again.value.kind is MailboxErrorKind.CONNECTION_LOST
    finally:
        await mailbox.close()

    fresh = await connect()
    try:
        after = await fresh.examine("INBOX")
        assert (after.uidvalidity, after.exists) == (before.uidvalidity, before.exists)
    finally:
        await fresh.close()


@pytest.mark.asyncio
async def test_imap_server_down_refuses_clearly_and_a_dropped_connection_fails_fast(
    private_mail_stack: MailStack,
) -> None:
    stack = private_mail_stack
    sent = await submit(stack, "dead@prospect.test")  # a DSN in INBOX so there is something to fetch
    connect = imap_connector(stack)
    mailbox = await connect()
    try:
        await mailbox.examine("INBOX")
        uids = await wait_until_async(lambda: mailbox.uids_after(0), timeout_s=10)
        await asyncio.to_thread(stack.stop_dovecot)
        try:
            with pytest.raises(MailboxError) as dropped:
                await asyncio.wait_for(mailbox.fetch(uids), timeout=10)
            assert dropped.value.kind is MailboxErrorKind.CONNECTION_LOST
            with pytest.raises(MailboxError) as refused:
                await asyncio.wait_for(connect(), timeout=10)
            assert refused.value.kind is MailboxErrorKind.CONNECTION_REFUSED
        finally:
            await asyncio.to_thread(stack.start_dovecot)
    finally:
        await mailbox.close()

    fresh = await connect()
    try:
        await fresh.examine("INBOX")
        fetched = await fresh.fetch(uids)
        assert {message.uid for message in fetched} == set(uids)
        assert any(sent.message_id.encode() in message.raw for message in fetched)
    finally:
        await fresh.close()


async def wait_until_async(produce: Callable[[], Awaitable[list[int]]], *, timeout_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await produce()):
        assert loop.time() < deadline, f"nothing within {timeout_s:.0f} s"
        await asyncio.sleep(0.2)
    return value


@pytest.mark.asyncio
async def test_imap_server_hanging_mid_fetch_times_out_with_our_error_and_a_new_connection_works(
    private_mail_stack: MailStack,
) -> None:
    stack = private_mail_stack
    sent = await submit(stack, "dead@prospect.test")
    connect = ImapConnector(imap_account(stack, timeout_s=2), secret=stack.password)
    mailbox = await connect()
    try:
        await mailbox.examine("INBOX")
        uids = await wait_until_async(lambda: mailbox.uids_after(0), timeout_s=10)
        with stack.frozen_imap_sessions() as frozen:
            assert len(frozen) == 1
            with pytest.raises(MailboxError) as hung:
                await asyncio.wait_for(mailbox.fetch(uids), timeout=15)
            assert hung.value.kind is MailboxErrorKind.TIMEOUT
            assert mailbox.broken

            fresh = await connect()  # while the old session is still frozen
            try:
                await fresh.examine("INBOX")
                fetched = await fresh.fetch(uids)
            finally:
                await fresh.close()
    finally:
        await mailbox.close()
    assert {message.uid for message in fetched} == set(uids)
    assert any(sent.message_id.encode() in message.raw for message in fetched)
