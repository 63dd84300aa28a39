"""The fake internet on its own: each behaviour keyword gets its reply, and everything is recorded."""

from __future__ import annotations

import smtplib
import time
import uuid

import pytest

from tests.stack.stack import HOST, MailStack


def _rcpt(stack: MailStack, *addresses: str) -> list[tuple[int, bytes]]:
    with smtplib.SMTP(HOST, stack.internet_port, timeout=10) as smtp:
        smtp.ehlo("mail.seller.test")
        smtp.mail("probe@seller.test")
        replies = [smtp.rcpt(address) for address in addresses]
        if replies[-1][0] != 421:
            smtp.rset()
    return replies


@pytest.mark.parametrize(
    ("local", "code", "status"),
    [("dead", 550, b"5.1.1"), ("full", 452, b"4.2.2"), ("throttle", 421, b"4.7.0"), ("ok", 250, b"2.1.5")],
)
def test_each_behaviour_answers_rcpt_with_its_reply(
    mail_stack: MailStack, local: str, code: int, status: bytes
) -> None:
    address = f"{local}+{uuid.uuid4().hex[:8]}@prospect.test"
    [(got_code, text)] = _rcpt(mail_stack, address)
    assert (got_code, text.split()[0]) == (code, status)
    [record] = [r for r in mail_stack.attempts() if r["rcpt"] == address]
    assert record["reply"].startswith(f"{code} {status.decode()}")
    assert record["mail_from"] == "probe@seller.test"


def test_grey_refuses_each_address_once_then_accepts_it(mail_stack: MailStack) -> None:
    first, second = (f"Grey+{uuid.uuid4().hex[:8]}@prospect.test" for _ in range(2))
    assert [code for code, _ in _rcpt(mail_stack, first, second)] == [451, 451]
    assert [code for code, _ in _rcpt(mail_stack, first, second)] == [250, 250]
    assert [code for code, _ in _rcpt(mail_stack, first)] == [250]


def test_slow_answers_after_the_configured_delay(mail_stack: MailStack) -> None:
    began = time.monotonic()
    [(code, _)] = _rcpt(mail_stack, f"slow+{uuid.uuid4().hex[:8]}@prospect.test")
    assert code == 250
    assert time.monotonic() - began >= mail_stack.slow_seconds


def test_accepted_data_is_recorded_per_recipient_with_its_message_id(mail_stack: MailStack) -> None:
    tag = uuid.uuid4().hex[:8]
    accepted, refused = f"ok+{tag}@prospect.test", f"dead+{tag}@prospect.test"
    message_id = f"<probe-{tag}@seller.test>"
    body = f"From: probe@seller.test\r\nMessage-ID: {message_id}\r\nSubject: x\r\n\r\nhello\r\n"
    with smtplib.SMTP(HOST, mail_stack.internet_port, timeout=10) as smtp:
        refused_map = smtp.sendmail("probe@seller.test", [accepted, refused], body)
    assert set(refused_map) == {refused}
    records = [r for r in mail_stack.delivered() if tag in str(r["rcpt"])]
    assert [(r["rcpt"], r["message_id"], r["mail_from"]) for r in records] == [
        (accepted, message_id, "probe@seller.test")
    ]


def test_throttle_closes_the_connection_after_its_421(mail_stack: MailStack) -> None:
    with smtplib.SMTP(HOST, mail_stack.internet_port, timeout=10) as smtp:
        smtp.ehlo("mail.seller.test")
        smtp.mail("probe@seller.test")
        assert smtp.rcpt(f"throttle+{uuid.uuid4().hex[:8]}@prospect.test")[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
