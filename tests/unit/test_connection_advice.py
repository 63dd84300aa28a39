"""cadence.core.connection_advice: naming the problem from what servers say, and the advice for each."""

from __future__ import annotations

import pytest

from cadence.core.connection_advice import (
    Problem,
    advise,
    problem_from_cert_error,
    problem_from_imap_login_text,
    problem_from_smtp_auth_reply,
)


@pytest.mark.parametrize(
    ("code", "text", "problem"),
    [
        (
            534,
            "5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=InvalidSecondFactor",
            Problem.APP_PASSWORD_REQUIRED,
        ),
        (
            535,
            "5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials",
            Problem.WRONG_PASSWORD,
        ),
        (
            534,
            "5.7.14 <https://accounts.google.com/signin/continue> Please log in via your web browser",
            Problem.WEB_SIGN_IN_REQUIRED,
        ),
        (
            535,
            "5.7.139 Authentication unsuccessful, basic authentication is disabled.",
            Problem.BASIC_AUTH_DISABLED,
        ),
        (
            550,
            "5.7.30 Basic authentication is not supported for Client Submission.",
            Problem.BASIC_AUTH_DISABLED,
        ),
        (
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            Problem.SMTP_AUTH_DISABLED,
        ),
        (535, "5.7.3 Authentication unsuccessful", Problem.WRONG_PASSWORD),
        (530, "5.7.0 Must issue a STARTTLS command first", Problem.STARTTLS_MISSING),
        (454, "4.7.0 Too many login attempts, please try again later.", Problem.SERVER_BUSY),
        (421, "4.7.0 Try again later, closing connection.", Problem.SERVER_BUSY),
        (554, "5.5.0 something odd", Problem.SERVER_ERROR),
    ],
)
def test_smtp_auth_replies(code: int, text: str, problem: Problem) -> None:
    assert problem_from_smtp_auth_reply(code, text) is problem


def test_smtp_auth_with_oauth() -> None:
    assert problem_from_smtp_auth_reply(535, "5.7.3 Authentication unsuccessful", oauth=True) is (
        Problem.OAUTH_TOKEN_REFUSED
    )
    # with a token, "basic auth disabled" cannot be the cause: SMTP AUTH itself is off for the mailbox
    assert problem_from_smtp_auth_reply(535, "5.7.139 Authentication unsuccessful", oauth=True) is (
        Problem.SMTP_AUTH_DISABLED
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings page.",
            Problem.IMAP_DISABLED,
        ),
        ("[ALERT] IMAP is disabled for this account (Failure)", Problem.IMAP_DISABLED),
        (
            "[ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833",
            Problem.APP_PASSWORD_REQUIRED,
        ),
        ("[AUTHENTICATIONFAILED] Invalid credentials (Failure)", Problem.WRONG_PASSWORD),
        ("[AUTHENTICATIONFAILED] Authentication failed.", Problem.WRONG_PASSWORD),
        ("[UNAVAILABLE] Temporary authentication failure.", Problem.SERVER_BUSY),
        (
            "[ALERT] Please log in via your web browser: https://support.google.com/mail/accounts/answer/78754",
            Problem.WEB_SIGN_IN_REQUIRED,
        ),
    ],
)
def test_imap_login_texts(text: str, problem: Problem) -> None:
    assert problem_from_imap_login_text(text) is problem


def test_imap_token_refusal() -> None:
    assert problem_from_imap_login_text("AUTHENTICATE failed.", oauth=True) is Problem.OAUTH_TOKEN_REFUSED


@pytest.mark.parametrize(
    ("code", "message", "problem"),
    [
        (20, "unable to get local issuer certificate", Problem.CERT_UNTRUSTED),
        (19, "self-signed certificate in certificate chain", Problem.CERT_UNTRUSTED),
        (18, "self-signed certificate", Problem.CERT_UNTRUSTED),
        (10, "certificate has expired", Problem.CERT_EXPIRED),
        (62, "Hostname mismatch, certificate is not valid for 'x'.", Problem.CERT_HOSTNAME_MISMATCH),
        (
            64,
            "IP address mismatch, certificate is not valid for '127.0.0.1'.",
            Problem.CERT_HOSTNAME_MISMATCH,
        ),
        (None, "The certificate of x is not trusted (certificate has expired)", Problem.CERT_EXPIRED),
    ],
)
def test_certificate_errors(code: int | None, message: str, problem: Problem) -> None:
    assert problem_from_cert_error(code, message) is problem


@pytest.mark.parametrize("problem", list(Problem))
@pytest.mark.parametrize("protocol", ["SMTP", "IMAP"])
def test_every_problem_has_plain_advice(problem: Problem, protocol: str) -> None:
    advice = advise(
        problem, protocol=protocol, host="mail.example.test", port=587, detail="x\n  y", timeout_s=5
    )
    assert advice.problem is problem
    assert advice.summary.endswith(".") and advice.action.endswith(".")
    assert advice.summary[0].isupper()
    assert "None" not in advice.text and "Traceback" not in advice.text
    assert advice.detail == "x y"
    assert advice.text.endswith("(Details: x y)")


def test_advice_is_specific_to_the_provider() -> None:
    gmail = advise(
        Problem.WRONG_PASSWORD, protocol="SMTP", host="smtp.gmail.com", port=587, provider_key="gmail"
    )
    assert "Gmail needs an app password" in gmail.text
    ms = advise(
        Problem.BASIC_AUTH_DISABLED, protocol="SMTP", host="smtp.office365.com", provider_key="microsoft365"
    )
    assert "Sign in with Microsoft" in ms.text
    google = advise(Problem.BASIC_AUTH_DISABLED, protocol="SMTP", host="smtp.gmail.com", provider_key="gmail")
    assert "Sign in with Google" in google.text
    timeout = advise(Problem.TIMEOUT, protocol="IMAP", host="imap.example.test", port=993, timeout_s=20)
    assert "did not answer within 20 seconds" in timeout.text and "993" in timeout.text
    refused = advise(Problem.CONNECTION_REFUSED, protocol="SMTP", host="smtp.example.test", port=25)
    assert "smtp.example.test:25" in refused.text and "587" in refused.text


def test_long_details_are_shortened() -> None:
    advice = advise(Problem.SERVER_ERROR, protocol="SMTP", host="h", detail="z" * 1000)
    assert len(advice.detail) == 300 and advice.detail.endswith("…")
