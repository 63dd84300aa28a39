"""Postfix submission as configured by the stack: TLS first, then AUTH, then relaying; checked with the
standard library so that these facts do not depend on Cadence's own adapter."""

from __future__ import annotations

import base64
import smtplib
import ssl

import pytest

from tests.stack.stack import HOST, MailStack


def _tls_context(stack: MailStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.ca_file))


def test_without_tls_auth_is_not_offered_and_mail_is_refused(mail_stack: MailStack) -> None:
    with smtplib.SMTP(HOST, mail_stack.submission_port, timeout=10) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("auth")
        code, text = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0seller@seller.test\0x").decode())
        assert (code, text[:5]) == (530, b"5.7.0")
        code, _ = smtp.mail("seller@seller.test")
        assert code == 530


def test_with_tls_but_no_login_relaying_is_refused(mail_stack: MailStack) -> None:
    with smtplib.SMTP(HOST, mail_stack.submission_port, timeout=10) as smtp:
        smtp.starttls(context=_tls_context(mail_stack))
        smtp.ehlo("client.test")
        assert smtp.has_extn("auth")
        assert smtp.mail("seller@seller.test")[0] == 250
        code, _ = smtp.rcpt("ok@prospect.test")
        assert code == 554


def test_wrong_password_is_refused_and_the_right_one_works_straight_after(mail_stack: MailStack) -> None:
    with smtplib.SMTP(HOST, mail_stack.submission_port, timeout=10) as smtp:
        smtp.starttls(context=_tls_context(mail_stack))
        smtp.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login(mail_stack.user, "wrong-" + mail_stack.password)
        assert refused.value.smtp_code == 535
    # Dovecot's auth penalty is off (anvil-auth-penalty mode 0): no 2-15 s wait after a failure
    with smtplib.SMTP(HOST, mail_stack.submission_port, timeout=1.5) as smtp:  # a penalty would time out
        smtp.starttls(context=_tls_context(mail_stack))
        smtp.ehlo("client.test")
        assert smtp.login(mail_stack.user, mail_stack.password)[0] == 235
