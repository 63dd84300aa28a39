"""What went wrong when connecting to a mail server, and what the user should do about it.

Pure: adapters name the problem (from exception types, reply codes, server texts) with the helpers here, and
`advise` turns it into a sentence a salesperson can act on. No traceback or library name reaches the user;
the server's own words are kept as `detail` for the curious.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Problem(StrEnum):
    HOST_NOT_FOUND = "host_not_found"
    CONNECTION_REFUSED = "connection_refused"
    NETWORK_UNREACHABLE = "network_unreachable"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    TLS_FAILED = "tls_failed"  # no TLS on that port, or no common protocol version
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_HOSTNAME_MISMATCH = "cert_hostname_mismatch"
    CERT_EXPIRED = "cert_expired"
    CA_FILE_UNREADABLE = "ca_file_unreadable"  # the extra CA certificate file in the settings
    STARTTLS_MISSING = "starttls_missing"
    IMAP_STARTTLS_UNSUPPORTED = "imap_starttls_unsupported"  # Cadence speaks IMAPS (993) only
    WRONG_PASSWORD = "wrong_password"
    APP_PASSWORD_REQUIRED = "app_password_required"
    WEB_SIGN_IN_REQUIRED = "web_sign_in_required"  # Google 5.7.14: confirm the sign-in in a browser
    BASIC_AUTH_DISABLED = "basic_auth_disabled"  # Microsoft 5.7.30 / 5.7.139: passwords refused, use OAuth
    SMTP_AUTH_DISABLED = "smtp_auth_disabled"  # Microsoft: SMTP AUTH switched off for the mailbox/tenant
    IMAP_DISABLED = "imap_disabled"
    NO_AUTH_MECHANISM = "no_auth_mechanism"
    OAUTH_TOKEN_REFUSED = "oauth_token_refused"
    OAUTH_SIGN_IN_REQUIRED = "oauth_sign_in_required"
    OAUTH_NOT_CONFIGURED = "oauth_not_configured"
    MISSING_SECRET = "missing_secret"
    KEYRING_UNAVAILABLE = "keyring_unavailable"
    SENT_FOLDER_MISSING = "sent_folder_missing"
    SERVER_BUSY = "server_busy"  # 4xx / [UNAVAILABLE]: try again later
    SERVER_ERROR = "server_error"
    BAD_SETTINGS = "bad_settings"


class ProbeFailure(Exception):
    """A connection step failed for a known reason. Raised by the connection probe adapter; `detail` is
    what the server or the system said (never a secret)."""

    def __init__(self, problem: Problem, detail: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Advice:
    problem: Problem
    summary: str  # what is wrong, one sentence
    action: str  # what to do about it
    detail: str = ""  # the server's or system's own words

    @property
    def text(self) -> str:
        said = f" (Details: {self.detail})" if self.detail else ""
        return f"{self.summary} {self.action}{said}".strip()


# --- what the connection test passes around -----------------------------------------------------------

TokenProvider = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class TestCredentials:
    """What to sign in with. With `token_provider` (OAuth: XOAUTH2 on both servers) the passwords are unused;
    `imap_password` falls back to `password`. `username` defaults to the account's address."""

    __test__ = False  # not a pytest class

    password: str | None = field(default=None, repr=False)
    imap_password: str | None = field(default=None, repr=False)
    token_provider: TokenProvider | None = field(default=None, repr=False)
    username: str | None = None

    @property
    def oauth(self) -> bool:
        return self.token_provider is not None


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str  # e.g. "TLSv1.3"
    certificate_problem: Problem | None = None  # None: verified against the system store (+ CA file)
    certificate_detail: str = ""
    subject: str = ""  # the certificate's common name or first DNS name, when verified
    expires: str = ""


@dataclass(frozen=True, slots=True)
class LoginInfo:
    mechanism: str = ""
    note: str = ""


_GOOGLE_KEYS = frozenset({"gmail", "google_workspace"})
_MICROSOFT_KEYS = frozenset({"microsoft365", "outlook_com"})


def advise(
    problem: Problem,
    *,
    protocol: str,
    host: str,
    port: int | None = None,
    provider_key: str | None = None,
    detail: str = "",
    timeout_s: float | None = None,
) -> Advice:
    """The advice for `problem` while talking `protocol` ("SMTP" or "IMAP") to host:port."""
    where = f"{host}:{port}" if port else host
    server = f"the {protocol} server {where}"
    google = provider_key in _GOOGLE_KEYS
    microsoft = provider_key in _MICROSOFT_KEYS
    waited = f" within {timeout_s:g} seconds" if timeout_s else ""
    usual_port = "587 (STARTTLS) or 465 (SSL/TLS)" if protocol.upper() == "SMTP" else "993 (SSL/TLS)"

    summary, action = {
        Problem.HOST_NOT_FOUND: (
            f"The server name {host} could not be found.",
            "Check the spelling of the server name and that this computer is online.",
        ),
        Problem.CONNECTION_REFUSED: (
            f"{_cap(server)} refused the connection.",
            f"Check the port: it is usually {usual_port}. A firewall or antivirus may also block it.",
        ),
        Problem.NETWORK_UNREACHABLE: (
            f"{_cap(server)} cannot be reached from this network.",
            "Check your internet connection, VPN or firewall.",
        ),
        Problem.TIMEOUT: (
            f"{_cap(server)} did not answer{waited}.",
            f"Check the port (usually {usual_port}) and the security setting; a firewall that silently drops "
            "mail traffic, or a slow network, also causes this. Try again in a moment.",
        ),
        Problem.CONNECTION_LOST: (
            f"{_cap(server)} closed the connection unexpectedly.",
            "Try again; if it keeps happening, check the port and security settings.",
        ),
        Problem.TLS_FAILED: (
            f"A secure (TLS) connection to {where} could not be set up.",
            f"Check the security setting: port 465 and 993 use SSL/TLS from the start, port 587 uses "
            f"STARTTLS. The usual port here is {usual_port}.",
        ),
        Problem.CERT_UNTRUSTED: (
            f"The certificate of {host} is not trusted, so Cadence stopped before sending any password.",
            "If this is your company's own server, add its CA certificate in the account settings. "
            "Otherwise something between you and the server may be intercepting the connection.",
        ),
        Problem.CERT_HOSTNAME_MISMATCH: (
            f"The certificate presented at {where} is not for the name {host}.",
            "Use the server name exactly as your provider publishes it (the name on its certificate).",
        ),
        Problem.CERT_EXPIRED: (
            f"The certificate of {host} has expired or is not valid yet.",
            "Check this computer's date and time; if they are right, tell the server's administrator.",
        ),
        Problem.CA_FILE_UNREADABLE: (
            "The CA certificate file chosen in the account settings cannot be used.",
            "Choose the file again: it must be a PEM certificate "
            "(text starting with “-----BEGIN CERTIFICATE”).",
        ),
        Problem.STARTTLS_MISSING: (
            f"{_cap(server)} did not offer STARTTLS, so the connection could not be encrypted.",
            "Cadence never sends a password unencrypted. Try port 465 with SSL/TLS; if STARTTLS should "
            "be there, a firewall or antivirus may be removing it.",
        ),
        Problem.IMAP_STARTTLS_UNSUPPORTED: (
            "Cadence reads mail over IMAP with SSL/TLS only (port 993), not STARTTLS.",
            "Set the IMAP security to SSL/TLS and the port to 993.",
        ),
        Problem.WRONG_PASSWORD: (
            f"{_cap(server)} did not accept the user name or password.",
            "Check both."
            + (
                " Gmail needs an app password instead of your normal password."
                if google
                else " Many providers need an app password when two-step verification is on."
            ),
        ),
        Problem.APP_PASSWORD_REQUIRED: (
            "This account needs an app password, not your normal password.",
            "Create one (Google Account → Security → 2-Step Verification → App passwords) and enter it "
            "here, or sign in with Google instead."
            if google or not microsoft
            else "Create an app password in your Microsoft account's security settings, or sign in with "
            "Microsoft instead.",
        ),
        Problem.WEB_SIGN_IN_REQUIRED: (
            "The provider blocked this sign-in until you confirm it in a web browser.",
            "Sign in to your mailbox in a browser, confirm the security alert, then test again (or use an "
            "app password or OAuth sign-in).",
        ),
        Problem.BASIC_AUTH_DISABLED: (
            "This mailbox no longer accepts passwords for sending (basic authentication is turned off).",
            "Choose “Sign in with Microsoft” (OAuth) in the account settings."
            if microsoft or not google
            else "Choose “Sign in with Google” (OAuth) in the account settings.",
        ),
        Problem.SMTP_AUTH_DISABLED: (
            "Sending through SMTP is switched off for this mailbox by your organisation.",
            "Ask your Microsoft 365 administrator to enable “Authenticated SMTP” for your mailbox "
            "(Microsoft 365 admin center → Users → Mail → Manage email apps).",
        ),
        Problem.IMAP_DISABLED: (
            "IMAP access is switched off for this mailbox.",
            "Turn it on in the mailbox settings (Gmail: Settings → See all settings → Forwarding and "
            "POP/IMAP → Enable IMAP); in a company, your administrator may have to do it.",
        ),
        Problem.NO_AUTH_MECHANISM: (
            f"{_cap(server)} offers no sign-in method Cadence can use over an encrypted connection.",
            "Check the server name, port and security setting; for OAuth accounts the server must offer "
            "XOAUTH2.",
        ),
        Problem.OAUTH_TOKEN_REFUSED: (
            f"{_cap(server)} did not accept the sign-in token, even after renewing it.",
            "Sign in again from the account settings. For Microsoft 365, SMTP AUTH must also be enabled "
            "for your mailbox, and the sign-in must be with the same address.",
        ),
        Problem.OAUTH_SIGN_IN_REQUIRED: (
            "This account needs you to sign in again (the saved sign-in expired or was revoked).",
            "Use “Sign in” in the account settings.",
        ),
        Problem.OAUTH_NOT_CONFIGURED: (
            "OAuth sign-in is not set up in this copy of Cadence.",
            "Enter the OAuth client id in the settings, or use an app password.",
        ),
        Problem.MISSING_SECRET: (
            "No password is saved for this account.",
            "Enter the password (or app password) in the account settings.",
        ),
        Problem.KEYRING_UNAVAILABLE: (
            "The saved sign-in could not be read from the system keyring.",
            "Unlock the keyring (look for an unlock prompt) and test again.",
        ),
        Problem.SENT_FOLDER_MISSING: (
            "No Sent folder was found in this mailbox.",
            "Choose the folder for sent mail in the account settings, or create a folder named “Sent”.",
        ),
        Problem.SERVER_BUSY: (
            f"{_cap(server)} is busy or temporarily unavailable.",
            "Try again in a few minutes.",
        ),
        Problem.SERVER_ERROR: (
            f"{_cap(server)} answered in an unexpected way.",
            "Check the server settings; if they are right, try again later or ask the provider.",
        ),
        Problem.BAD_SETTINGS: (
            "The account settings are incomplete.",
            "Fill in the server name and port.",
        ),
    }[problem]
    return Advice(problem=problem, summary=summary, action=action, detail=_clean(detail))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clean(detail: str, limit: int = 300) -> str:
    text = " ".join(detail.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- naming the problem -------------------------------------------------------------------------------------

_APP_PASSWORD = re.compile(r"\b5\.7\.9\b|application-specific password", re.IGNORECASE)
_WEB_SIGN_IN = re.compile(r"\b5\.7\.14\b|log ?in via your web browser|web login required", re.IGNORECASE)
_SMTP_AUTH_DISABLED = re.compile(r"SmtpClientAuthentication is disabled|SMTP AUTH is disabled", re.IGNORECASE)
_BASIC_AUTH = re.compile(
    r"\b5\.7\.30\b|\b5\.7\.139\b|basic auth\w* (?:is )?(?:disabled|not supported|blocked)", re.IGNORECASE
)
_IMAP_DISABLED = re.compile(
    r"IMAP (?:access )?(?:is )?(?:disabled|not enabled|turned off)|not enabled for IMAP|IMAP use",
    re.IGNORECASE,
)
_STARTTLS_FIRST = re.compile(r"STARTTLS", re.IGNORECASE)
_BUSY = re.compile(r"\[UNAVAILABLE\]|\[INUSE\]|too many (?:login attempts|connections)|try again later", re.I)


def problem_from_smtp_auth_reply(code: int | None, text: str, *, oauth: bool = False) -> Problem:
    """The problem behind a refused SMTP AUTH (or a refusal right before it)."""
    if _APP_PASSWORD.search(text):
        return Problem.APP_PASSWORD_REQUIRED
    if _SMTP_AUTH_DISABLED.search(text):
        return Problem.SMTP_AUTH_DISABLED
    if _BASIC_AUTH.search(text):
        return Problem.SMTP_AUTH_DISABLED if oauth else Problem.BASIC_AUTH_DISABLED
    if _WEB_SIGN_IN.search(text):
        return Problem.WEB_SIGN_IN_REQUIRED
    if code == 530 and _STARTTLS_FIRST.search(text):
        return Problem.STARTTLS_MISSING
    if code is not None and 400 <= code < 500:
        return Problem.SERVER_BUSY
    if code in {535, 534, 530, 454, 500, 501} or code is None:
        return Problem.OAUTH_TOKEN_REFUSED if oauth else Problem.WRONG_PASSWORD
    return Problem.SERVER_ERROR


def problem_from_imap_login_text(text: str, *, oauth: bool = False) -> Problem:
    """The problem behind a refused IMAP LOGIN / AUTHENTICATE, from the server's words."""
    if _IMAP_DISABLED.search(text):
        return Problem.IMAP_DISABLED
    if _APP_PASSWORD.search(text):
        return Problem.APP_PASSWORD_REQUIRED
    if _WEB_SIGN_IN.search(text):
        return Problem.WEB_SIGN_IN_REQUIRED
    if _BASIC_AUTH.search(text):
        return Problem.BASIC_AUTH_DISABLED
    if _BUSY.search(text):
        return Problem.SERVER_BUSY
    return Problem.OAUTH_TOKEN_REFUSED if oauth else Problem.WRONG_PASSWORD


# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code)
_CERT_EXPIRED_CODES = frozenset({9, 10, 13, 14})  # not yet valid, expired, bad notBefore/notAfter
_CERT_NAME_CODES = frozenset({62, 64})  # hostname mismatch, IP address mismatch


def problem_from_cert_error(verify_code: int | None, message: str = "") -> Problem:
    if verify_code in _CERT_NAME_CODES or "mismatch" in message.lower():
        return Problem.CERT_HOSTNAME_MISMATCH
    if verify_code in _CERT_EXPIRED_CODES or "expired" in message.lower():
        return Problem.CERT_EXPIRED
    return Problem.CERT_UNTRUSTED
