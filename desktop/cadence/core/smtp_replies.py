"""Classify what a submission server said (or failed to say) into a SendResult.

Pure: the decision rests on the reply code, the enhanced status (RFC 3463) and known provider texts, plus
the SMTP step the reply answered. Library exception types never matter here; the adapter reads the code.

What Cadence talks to is the user's own submission server, so most non-2xx replies are about the account
(login, quota, throttling, policy), not about the recipient.
"""

from __future__ import annotations

import re
from enum import StrEnum

from cadence.core.model import SendOutcome, SendResult


class SmtpStage(StrEnum):
    """The step of one SMTP session a reply or a failure belongs to."""

    CONNECT = "connect"  # TCP connect and TLS handshake (implicit TLS)
    GREETING = "greeting"  # the 220 banner
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the DATA command, answered by 354 before any content is sent
    DATA_END = "data_end"  # content sent; the reply to the final dot (the message may have gone out)


class FailureKind(StrEnum):
    """A failure without an SMTP reply."""

    UNREACHABLE = "unreachable"  # connection refused, DNS failure, network down
    DISCONNECTED = "disconnected"  # the server closed the connection without a reply
    TIMEOUT = "timeout"  # no reply within the time allowed
    TLS = "tls"  # certificate not trusted, wrong host name, handshake failure
    STARTTLS_MISSING = "starttls_missing"  # the server did not offer STARTTLS (possibly stripped)
    NO_AUTH_MECHANISM = "no_auth_mechanism"  # no usable AUTH mechanism over TLS
    LOCAL = "local"  # the message or an address could not be put on the wire


# Stages before the transaction: a 5xx there is about the account or the server, never one message.
_SESSION_STAGES = frozenset(
    {SmtpStage.CONNECT, SmtpStage.GREETING, SmtpStage.EHLO, SmtpStage.STARTTLS, SmtpStage.AUTH}
)

_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_RETRY_AFTER = re.compile(
    r"(?:try\s+again|retry|wait)\s+(?:in|after|for)\s+(\d+(?:\.\d+)?)\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}

_DO_NOT_RETRY = re.compile(
    r"\bTS03\b|retrying will not succeed|permanently deferred|\bdo not (?:retry|resend)\b",
    re.IGNORECASE,
)
_THROTTLING = re.compile(
    r"\b4\.7\.(?:28|500|650|651)\b|\bRP-00\d\b|\bTS0[12]\b|\bTSS04\b|\btoo many (?:connections|messages|"
    r"login attempts)\b|\brate limit|\bthrottl|\btemporarily deferred\b|\bsender thread limit\b",
    re.IGNORECASE,
)
_QUOTA = re.compile(
    r"\bsending (?:limit|quota) exceeded\b|\bSubmissionQuotaExceeded|\bquota exceeded\b.*\bsend|"
    r"\bdaily (?:user )?(?:sending )?limit\b|\bmessage submission rate\b",
    re.IGNORECASE,
)
_BASIC_AUTH_DISABLED = re.compile(r"basic auth\w* (?:is )?(?:disabled|not supported)", re.IGNORECASE)
_DEAD_RECIPIENT_TEXT = re.compile(
    r"\buser unknown\b|\bunknown user\b|\bno such (?:user|mailbox|recipient)\b|\bdoes not exist\b|"
    r"\brecipient not found\b|\binvalid recipient\b|\bunknown recipient\b|\bmailbox not found\b|"
    r"\baddress rejected\b",
    re.IGNORECASE,
)
_QUOTA_STATUSES = frozenset({"5.4.5", "5.2.251", "5.2.252", "5.2.253", "5.2.254", "5.2.255"})


def parse_enhanced_status(text: str) -> str | None:
    """The first RFC 3463 status (`5.1.1`) in a reply text, if any."""
    match = _ENHANCED_STATUS.search(text)
    return ".".join(match.groups()) if match else None


def parse_retry_after(text: str) -> float | None:
    """Seconds from phrases like "try again in 30 seconds" / "retry after 5 minutes"; None if absent."""
    match = _RETRY_AFTER.search(text)
    if match is None:
        return None
    amount = float(match.group(1))
    unit = match.group(2).lower()[0]
    return amount * _UNIT_SECONDS[unit]


def classify_reply(code: int, text: str, *, stage: SmtpStage) -> SendResult:
    """Turn one SMTP reply into a SendResult (outcome, code, enhanced status, text, retry-after)."""
    status = parse_enhanced_status(text)
    outcome = _outcome(code, status, text, stage)
    retry_after = parse_retry_after(text) if 400 <= code < 500 else None
    return SendResult(
        outcome=outcome,
        code=code,
        enhanced_status=status,
        text=text,
        retry_after_s=retry_after,
        stage=stage.value,
    )


def classify_failure(kind: FailureKind, *, stage: SmtpStage, detail: str = "") -> SendResult:
    """A failure without a reply: a drop or timeout once content was sent leaves the message in doubt."""
    if kind in {FailureKind.TLS, FailureKind.STARTTLS_MISSING, FailureKind.NO_AUTH_MECHANISM}:
        # Fail closed and pause the account: retrying cannot fix a certificate or a stripped STARTTLS.
        outcome = SendOutcome.POLICY
    elif kind is FailureKind.LOCAL:
        outcome = SendOutcome.PERMANENT
    elif stage is SmtpStage.DATA_END:
        outcome = SendOutcome.IN_DOUBT
    else:
        outcome = SendOutcome.DEFERRED
    return SendResult(
        outcome=outcome, text=f"{kind.value}: {detail}" if detail else kind.value, stage=stage.value
    )


def is_account_level(outcome: SendOutcome) -> bool:
    """Outcomes that stop the whole account rather than one message (pause or back off, then tell)."""
    return outcome in {
        SendOutcome.THROTTLED,
        SendOutcome.QUOTA,
        SendOutcome.POLICY,
        SendOutcome.AUTH_FAILED,
        SendOutcome.DO_NOT_RETRY,
    }


def _outcome(code: int, status: str | None, text: str, stage: SmtpStage) -> SendOutcome:
    if code < 400:
        return SendOutcome.DELIVERED
    if _DO_NOT_RETRY.search(text):
        return SendOutcome.DO_NOT_RETRY
    if _is_quota(code, status, text):
        return SendOutcome.QUOTA
    if code < 500:
        return _temporary(code, status, text)
    if code >= 600:
        return SendOutcome.PERMANENT
    return _permanent(code, status, text, stage)


def _is_quota(code: int, status: str | None, text: str) -> bool:
    if status in _QUOTA_STATUSES:
        return True
    if status == "5.2.0" and "quota" in text.lower():
        return True
    return bool(_QUOTA.search(text))


def _temporary(code: int, status: str | None, text: str) -> SendOutcome:
    if code in {421, 432}:
        return SendOutcome.THROTTLED
    if status is not None and status.startswith("4.7."):
        return SendOutcome.THROTTLED
    if _THROTTLING.search(text):
        return SendOutcome.THROTTLED
    return SendOutcome.DEFERRED


def _permanent(code: int, status: str | None, text: str, stage: SmtpStage) -> SendOutcome:
    if status in {"5.7.30", "5.7.139"} or _BASIC_AUTH_DISABLED.search(text):
        return SendOutcome.POLICY
    if code in {534, 535} or status == "5.7.8":
        return SendOutcome.AUTH_FAILED
    if code == 530 and stage in {SmtpStage.AUTH, SmtpStage.MAIL, SmtpStage.RCPT, SmtpStage.DATA}:
        return SendOutcome.AUTH_FAILED  # "authentication required": the session is not logged in
    if status is not None and status.startswith("5.7."):
        return SendOutcome.POLICY
    if stage in _SESSION_STAGES:
        return SendOutcome.POLICY
    if stage is SmtpStage.MAIL:
        # The sender address is the same for every message: anything but a size refusal is account-wide.
        return SendOutcome.PERMANENT if status == "5.3.4" or code == 552 else SendOutcome.POLICY
    if status == "5.2.2":
        return SendOutcome.RECIPIENT_SOFT
    if stage in {SmtpStage.RCPT, SmtpStage.DATA_END}:
        if status is not None and (status.startswith("5.1.") or status == "5.2.1"):
            return SendOutcome.RECIPIENT_DEAD
        if stage is SmtpStage.RCPT and status is None and _DEAD_RECIPIENT_TEXT.search(text):
            return SendOutcome.RECIPIENT_DEAD
    return SendOutcome.PERMANENT
