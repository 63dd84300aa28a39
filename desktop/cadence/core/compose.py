"""Build the exact bytes of one outgoing message (standard library `email` only, CRLF line endings).

What goes in: From (with display name), To, Subject, Date, Message-ID, MIME-Version, List-Unsubscribe
(mailto, RFC 2369), In-Reply-To/References for follow-ups in a thread, a plain text part and optionally an
HTML alternative. What never goes in: Auto-Submitted (this is a person writing, RFC 3834), Precedence,
tracking pixels or rewritten links, X-Mailer. The Message-ID is generated once per message and passed in
again on every retry: it is the idempotency key.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from cadence.core.templates import HeaderInjectionError, check_header_text

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_MESSAGE_ID = re.compile(
    r"<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f\x41-\x7e]+>\Z"
)  # no <, >, @, space
_SMTP_POLICY = policy.SMTP.clone(max_line_length=78)


class ComposeError(ValueError):
    """The message cannot be built as asked (bad address, header value, Message-ID or date)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    sender: str
    recipient: str
    subject: str
    text: str
    message_id: str  # from new_message_id(), stored with the outbox row, reused on retries
    date: datetime  # timezone-aware
    sender_name: str = ""
    recipient_name: str = ""
    html: str | None = None
    in_reply_to: str | None = None  # Message-ID of the previous message in the thread
    references: tuple[str, ...] = ()  # earlier Message-IDs of the thread, oldest first
    unsubscribe_address: str | None = None  # defaults to the sender


def normalise_address(address: str, *, what: str = "address") -> str:
    """A plain ASCII addr-spec (IDN domains in punycode); raise ComposeError for anything else."""
    try:
        check_header_text(address, what=what)
    except HeaderInjectionError as exc:
        raise ComposeError(str(exc)) from None
    candidate = address.strip()
    local, at, domain = candidate.rpartition("@")
    if not at or not local or not domain:
        raise ComposeError(f"{what} {candidate!r} is not an email address")
    if not _LOCAL_PART.match(local):
        raise ComposeError(f"{what} {candidate!r}: the part before '@' is not a plain ASCII address")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ComposeError(f"{what} {candidate!r}: the domain is not valid") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ComposeError(f"{what} {candidate!r}: the domain is not valid")
    return f"{local}@{ascii_domain}"


def new_message_id(sender: str, *, token: str | None = None) -> str:
    """`<cad-{random}@{sender-domain}>`: make it once per message and keep it for every retry."""
    domain = normalise_address(sender, what="sender").rpartition("@")[2]
    return f"<cad-{token or secrets.token_hex(16)}@{domain}>"


def check_message_id(message_id: str, *, what: str = "Message-ID") -> str:
    if not _MESSAGE_ID.match(message_id):
        raise ComposeError(f"{what} {message_id!r} is not of the form <local@domain>")
    return message_id


def compose(message: OutgoingMessage) -> bytes:
    """The bytes to hand to the Mailer: headers and MIME body with CRLF line endings."""
    if message.date.tzinfo is None or message.date.utcoffset() is None:
        raise ComposeError("the Date must be timezone-aware")
    sender = normalise_address(message.sender, what="sender")
    recipient = normalise_address(message.recipient, what="recipient")
    unsubscribe = normalise_address(message.unsubscribe_address or sender, what="unsubscribe address")
    try:
        subject = _header_text(message.subject, what="the subject")
        sender_name = _display_name(message.sender_name, what="the sender name")
        recipient_name = _display_name(message.recipient_name, what="the recipient name")
    except HeaderInjectionError as exc:
        raise ComposeError(str(exc)) from None
    message_id = check_message_id(message.message_id)
    thread = [check_message_id(ref, what="reference") for ref in message.references]
    in_reply_to = check_message_id(message.in_reply_to, what="In-Reply-To") if message.in_reply_to else None
    if in_reply_to and (not thread or thread[-1] != in_reply_to):
        thread.append(in_reply_to)

    mail = EmailMessage(policy=_SMTP_POLICY)
    mail["From"] = _address_header(sender_name, sender)
    mail["To"] = _address_header(recipient_name, recipient)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(message.date)
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if thread:
        mail["References"] = " ".join(thread)
    mail["List-Unsubscribe"] = f"<mailto:{unsubscribe}?subject=unsubscribe>"
    _set_text(mail, message.text, subtype="plain")
    if message.html is not None:
        _add_html(mail, message.html)
    return mail.as_bytes(policy=_SMTP_POLICY)


def _header_text(value: str, *, what: str) -> str:
    # A tab would be folded into a space on the wire anyway; doing it here keeps what we store exact.
    return check_header_text(value, what=what).replace("\t", " ").strip()


def _display_name(value: str, *, what: str) -> str:
    # Parsers collapse runs of blanks in a display name; collapsing them here keeps what we store exact.
    return re.sub(r"[ \t]+", " ", _header_text(value, what=what))


def _address_header(name: str, address: str) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def _transfer_encoding(text: str) -> str:
    plain = text.isascii() and all(len(line) <= 998 for line in text.splitlines())
    return "7bit" if plain else "quoted-printable"


def _normalised_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _set_text(mail: EmailMessage, text: str, *, subtype: str) -> None:
    text = _normalised_text(text)
    mail.set_content(text, subtype=subtype, charset="utf-8", cte=_transfer_encoding(text))


def _add_html(mail: EmailMessage, html: str) -> None:
    html = _normalised_text(html)
    mail.add_alternative(html, subtype="html", charset="utf-8", cte=_transfer_encoding(html))
    for part in mail.iter_parts():
        del part["MIME-Version"]  # the email package repeats it on converted parts; only the top needs it
