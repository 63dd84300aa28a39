"""SMTP reply classification, with reply texts as providers send them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadence.core.model import SendOutcome
from cadence.core.smtp_replies import (
    FailureKind,
    SmtpStage,
    classify_failure,
    classify_reply,
    is_account_level,
    parse_enhanced_status,
    parse_retry_after,
)

S = SmtpStage
Out = SendOutcome

CASES = [
    # success
    (250, "2.0.0 OK  1700000000 a1-20020a05.12 - gsmtp", S.DATA_END, Out.DELIVERED),
    # plain temporary failures
    (
        450,
        "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents",
        S.RCPT,
        Out.DEFERRED,
    ),
    (451, "4.3.0 Mail server temporarily rejected message.", S.DATA_END, Out.DEFERRED),
    (452, "4.5.3 Too many recipients", S.RCPT, Out.DEFERRED),
    (451, "Temporary local problem - please try later", S.MAIL, Out.DEFERRED),
    (454, "TLS not available due to temporary reason", S.STARTTLS, Out.DEFERRED),
    # throttling: the account backs off
    (421, "4.7.0 Try again later, closing connection. (EHLO) gsmtp", S.EHLO, Out.THROTTLED),
    (
        421,
        "4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your DKIM domain",
        S.DATA_END,
        Out.THROTTLED,
    ),
    (432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", S.DATA_END, Out.THROTTLED),
    (451, "4.7.500 Server busy. Please try again later from [203.0.113.5]. (S77719)", S.RCPT, Out.THROTTLED),
    (
        451,
        "4.7.650 The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation.",
        S.MAIL,
        Out.THROTTLED,
    ),
    (451, "4.7.651 The mail server [203.0.113.5] has been temporarily rate limited", S.RCPT, Out.THROTTLED),
    (
        421,
        "RP-001 (COL004-MC1F40) Unfortunately, some messages from 203.0.113.5 weren't sent.",
        S.MAIL,
        Out.THROTTLED,
    ),
    (
        421,
        "4.7.0 [TS01] Messages from 203.0.113.5 temporarily deferred due to user complaints",
        S.GREETING,
        Out.THROTTLED,
    ),
    (
        421,
        "4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume",
        S.MAIL,
        Out.THROTTLED,
    ),
    (454, "4.7.0 Too many login attempts, please try again later.", S.AUTH, Out.THROTTLED),
    (450, "Requested action aborted: rate limit exceeded for this sender", S.MAIL, Out.THROTTLED),
    # do not retry
    (
        554,
        "5.7.9 [TS03] All messages from 203.0.113.5 will be permanently deferred; Retrying will NOT succeed.",
        S.DATA_END,
        Out.DO_NOT_RETRY,
    ),
    (421, "4.7.1 [TS03] Messages from 203.0.113.5 permanently deferred", S.GREETING, Out.DO_NOT_RETRY),
    # recipients
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try double-checking",
        S.RCPT,
        Out.RECIPIENT_DEAD,
    ),
    (
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        S.RCPT,
        Out.RECIPIENT_DEAD,
    ),
    (550, "5.2.1 The email account that you tried to reach is disabled.", S.RCPT, Out.RECIPIENT_DEAD),
    (550, "Recipient address rejected: User unknown in virtual mailbox table", S.RCPT, Out.RECIPIENT_DEAD),
    (552, "5.2.2 The email account that you tried to reach is over quota.", S.RCPT, Out.RECIPIENT_SOFT),
    (550, "5.1.1 user unknown", S.DATA_END, Out.RECIPIENT_DEAD),
    # sending quota at the provider
    (
        550,
        "5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to",
        S.DATA_END,
        Out.QUOTA,
    ),
    (550, "5.4.5 Daily SMTP relay sending limit exceeded for customer C01abc", S.MAIL, Out.QUOTA),
    (
        554,
        "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
        S.DATA_END,
        Out.QUOTA,
    ),
    (550, "5.2.252 Too many errors from this sender; sending suspended", S.DATA_END, Out.QUOTA),
    (550, "5.2.254 Account sending limit exceeded", S.MAIL, Out.QUOTA),
    # policy on the sender's side: pause and tell, never blame the recipient
    (550, "5.7.26 This mail has been blocked because the sender is unauthenticated.", S.DATA_END, Out.POLICY),
    (550, "5.7.30 Basic authentication is not supported for Client Submission.", S.AUTH, Out.POLICY),
    (535, "5.7.139 Authentication unsuccessful, basic authentication is disabled.", S.AUTH, Out.POLICY),
    (
        550,
        "5.7.515 Access denied, sending domain example.com doesn't meet the required authentication level.",
        S.DATA_END,
        Out.POLICY,
    ),
    (554, "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using Spamhaus", S.RCPT, Out.POLICY),
    (553, "5.7.1 Sender address rejected: not owned by user alice@example.com", S.MAIL, Out.POLICY),
    (530, "5.7.0 Must issue a STARTTLS command first.", S.AUTH, Out.AUTH_FAILED),
    (554, "No SMTP service here", S.GREETING, Out.POLICY),
    (553, "5.1.8 Domain of sender address does not exist", S.MAIL, Out.POLICY),
    # login
    (
        535,
        "5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=Bad",
        S.AUTH,
        Out.AUTH_FAILED,
    ),
    (534, "5.7.9 Application-specific password required.", S.AUTH, Out.AUTH_FAILED),
    (535, "5.7.3 Authentication unsuccessful", S.AUTH, Out.AUTH_FAILED),
    (530, "5.7.0 Authentication required", S.MAIL, Out.AUTH_FAILED),
    # other permanent failures of this message
    (552, "5.3.4 Message size exceeds fixed maximum message size", S.DATA_END, Out.PERMANENT),
    (552, "5.3.4 Message size exceeds fixed limit", S.MAIL, Out.PERMANENT),
    (554, "5.6.0 Message contains invalid header", S.DATA_END, Out.PERMANENT),
    (500, "5.5.2 Syntax error", S.RCPT, Out.PERMANENT),
]


@pytest.mark.parametrize(("code", "text", "stage", "expected"), CASES, ids=lambda v: str(v)[:30])
def test_reply_classification(code: int, text: str, stage: SmtpStage, expected: SendOutcome) -> None:
    result = classify_reply(code, text, stage=stage)
    assert result.outcome is expected
    assert result.code == code
    assert result.text == text
    assert result.stage == stage.value


def test_enhanced_status_is_parsed_from_the_text() -> None:
    assert parse_enhanced_status("5.1.1 The email account does not exist") == "5.1.1"
    assert parse_enhanced_status("4.7.650 rate limited") == "4.7.650"
    assert parse_enhanced_status("Requested action aborted") is None
    assert parse_enhanced_status("queued as 1.2.3.4") is None  # an IP-like token is not a status
    assert classify_reply(550, "5.2.1 disabled", stage=S.RCPT).enhanced_status == "5.2.1"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.0 Try again in 30 seconds", 30.0),
        ("Please try again in 5 minutes", 300.0),
        ("retry after 2 hours", 7200.0),
        ("Greylisted, please retry in 90s", 90.0),
        ("4.7.0 Try again later, closing connection.", None),
    ],
)
def test_retry_after_hint(text: str, seconds: float | None) -> None:
    assert parse_retry_after(text) == seconds


def test_retry_after_is_carried_on_temporary_results_only() -> None:
    assert (
        classify_reply(451, "4.7.1 greylisted, try again in 300 seconds", stage=S.RCPT).retry_after_s == 300
    )
    assert classify_reply(421, "4.7.0 try again in 10 minutes", stage=S.MAIL).retry_after_s == 600
    assert classify_reply(550, "5.7.1 blocked, try again in 10 minutes", stage=S.MAIL).retry_after_s is None


@pytest.mark.parametrize(
    ("kind", "stage", "expected"),
    [
        (FailureKind.UNREACHABLE, S.CONNECT, Out.DEFERRED),
        (FailureKind.TIMEOUT, S.GREETING, Out.DEFERRED),
        (FailureKind.DISCONNECTED, S.RCPT, Out.DEFERRED),
        (FailureKind.DISCONNECTED, S.DATA, Out.DEFERRED),  # no content sent yet
        (FailureKind.DISCONNECTED, S.DATA_END, Out.IN_DOUBT),
        (FailureKind.TIMEOUT, S.DATA_END, Out.IN_DOUBT),
        (FailureKind.TLS, S.CONNECT, Out.POLICY),
        (FailureKind.STARTTLS_MISSING, S.STARTTLS, Out.POLICY),
        (FailureKind.NO_AUTH_MECHANISM, S.AUTH, Out.POLICY),
        (FailureKind.LOCAL, S.MAIL, Out.PERMANENT),
    ],
)
def test_failures_without_reply(kind: FailureKind, stage: SmtpStage, expected: SendOutcome) -> None:
    result = classify_failure(kind, stage=stage, detail="detail text")
    assert result.outcome is expected
    assert result.code is None
    assert "detail text" in result.text


def test_account_level_outcomes() -> None:
    for outcome in (Out.THROTTLED, Out.AUTH_FAILED, Out.QUOTA, Out.POLICY, Out.DO_NOT_RETRY):
        assert is_account_level(outcome)
    assert not is_account_level(Out.RECIPIENT_DEAD)
    assert not is_account_level(Out.DELIVERED)


@given(code=st.integers(min_value=200, max_value=599), text=st.text(max_size=120), stage=st.sampled_from(S))
def test_only_class_5_is_permanent(code: int, text: str, stage: SmtpStage) -> None:
    outcome = classify_reply(code, text, stage=stage).outcome
    if code < 400:
        assert outcome is Out.DELIVERED
    elif code < 500:
        assert outcome in {Out.DEFERRED, Out.THROTTLED, Out.QUOTA, Out.DO_NOT_RETRY}
    else:
        assert outcome not in {Out.DELIVERED, Out.DEFERRED, Out.THROTTLED, Out.IN_DOUBT}
