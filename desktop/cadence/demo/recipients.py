"""Simulated recipients: what each address of the sample list does with a message it receives, and the
mail it sends back (real RFC 3464 DSNs, auto-replies, replies threaded on our Message-ID)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid, parseaddr
from enum import StrEnum

SANDBOX_MTA = "mx.sandbox.example"


class Behaviour(StrEnum):
    SILENT = "silent"  # reads it, or not; never answers
    HARD_BOUNCE = "hard_bounce"  # the mailbox does not exist: 5.1.1 DSN
    SOFT_BOUNCE = "soft_bounce"  # mailbox full: 4.2.2 DSN, every time
    OUT_OF_OFFICE = "out_of_office"  # auto-reply with a return date, then silent
    UNSUBSCRIBE = "unsubscribe"  # asks to be removed
    NOT_INTERESTED = "not_interested"
    REPLY = "reply"  # a person answers the first message


# The sample list's special cases (resources/demo/leads.csv); everyone else stays silent.
BEHAVIOURS: Mapping[str, Behaviour] = {
    "m.okafor@brightwell-logistics.example": Behaviour.HARD_BOUNCE,
    "j.lindqvist@harborline.example": Behaviour.HARD_BOUNCE,
    "info@oldmill-bakery.example": Behaviour.HARD_BOUNCE,
    "t.reyes@quarrystone.example": Behaviour.HARD_BOUNCE,
    "s.nakamura@tidewater-analytics.example": Behaviour.SOFT_BOUNCE,
    "p.adeyemi@fernbrook.example": Behaviour.SOFT_BOUNCE,
    "l.moreau@copperleaf-studio.example": Behaviour.OUT_OF_OFFICE,
    "d.kowalski@northgate-supply.example": Behaviour.OUT_OF_OFFICE,
    "a.haddad@lumen-dental.example": Behaviour.OUT_OF_OFFICE,
    "r.fischer@pinecrest-legal.example": Behaviour.UNSUBSCRIBE,
    "c.obrien@saltmarsh-media.example": Behaviour.NOT_INTERESTED,
    "e.santos@ridgeway-labs.example": Behaviour.REPLY,
    "k.jensen@bluefin-marine.example": Behaviour.REPLY,
    "h.patel@orchardview.example": Behaviour.REPLY,
    "g.mensah@stonebridge-capital.example": Behaviour.REPLY,
    "y.tanaka@amberfield.example": Behaviour.REPLY,
}


def behaviour_of(address: str) -> Behaviour:
    return BEHAVIOURS.get(address.strip().lower(), Behaviour.SILENT)


@dataclass(frozen=True, slots=True)
class Reaction:
    """Mail a recipient sends back, `delay` (simulated time) after our message arrived."""

    delay: timedelta
    kind: Behaviour
    recipient: str
    raw: bytes


def _header(original: Message, name: str) -> str:
    return " ".join(str(original.get(name, "")).split())


def _name_of(address: str) -> str:
    local = address.partition("@")[0]
    return local.split(".")[-1].replace("-", " ").title()


def hard_bounce(original_raw: bytes, *, recipient: str, our_address: str, at: datetime) -> bytes:
    return _dsn(
        original_raw,
        recipient=recipient,
        our_address=our_address,
        at=at,
        action="failed",
        status="5.1.1",
        diagnostic="smtp; 550 5.1.1 <{0}>: Recipient address rejected: User unknown in virtual mailbox table",
        summary="Your message could not be delivered to {0}: the mailbox does not exist.",
        subject="Undelivered Mail Returned to Sender",
    )


def soft_bounce(original_raw: bytes, *, recipient: str, our_address: str, at: datetime) -> bytes:
    return _dsn(
        original_raw,
        recipient=recipient,
        our_address=our_address,
        at=at,
        action="failed",
        status="4.2.2",
        diagnostic="smtp; 452 4.2.2 <{0}>: Mailbox full, over quota",
        summary="Your message to {0} could not be delivered for now: the recipient's mailbox is full.",
        subject="Delivery Status Notification (Delay)",
    )


def _dsn(
    original_raw: bytes,
    *,
    recipient: str,
    our_address: str,
    at: datetime,
    action: str,
    status: str,
    diagnostic: str,
    summary: str,
    subject: str,
) -> bytes:
    """A multipart/report (RFC 3464) as Postfix writes it: text, message/delivery-status, and the
    original message as message/rfc822 (which carries our Message-ID)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{SANDBOX_MTA}>"
    report["To"] = our_address
    report["Subject"] = subject
    report["Date"] = format_datetime(at)
    report["Message-ID"] = make_msgid(domain=SANDBOX_MTA)
    report["Auto-Submitted"] = "auto-replied"
    report.attach(
        MIMEText(f"This is the mail system at host {SANDBOX_MTA}.\n\n{summary.format(recipient)}\n")
    )
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {SANDBOX_MTA}"
    per_message["Arrival-Date"] = format_datetime(at)
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = f"dns; {recipient.partition('@')[2]}"
    per_recipient["Diagnostic-Code"] = diagnostic.format(recipient)
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    report.attach(MIMEMessage(BytesParser(policy=compat32).parsebytes(original_raw)))
    return report.as_bytes()


def _reply(
    original: Message,
    *,
    recipient: str,
    our_address: str,
    at: datetime,
    text: str,
    subject_prefix: str = "Re: ",
    extra: Mapping[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{_name_of(recipient)} <{recipient}>"
    message["To"] = our_address
    message["Subject"] = subject_prefix + _header(original, "Subject")
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain=recipient.partition("@")[2])
    our_id = _header(original, "Message-ID")
    if our_id:
        message["In-Reply-To"] = our_id
        message["References"] = our_id
    for name, value in (extra or {}).items():
        message[name] = value
    quoted = "\n".join("> " + line for line in str(original.get_payload(decode=False) or "").splitlines()[:8])
    message.set_content(f"{text}\n\nOn {_header(original, 'Date')}, {our_address} wrote:\n{quoted}\n")
    return message.as_bytes()


_REPLIES = (
    "Hi,\n\nThanks for reaching out, this is timely. Could we have a call on Thursday afternoon?\n\nBest",
    "Hello,\n\nInteresting. Can you send me pricing for a team of about 20 people?\n\nThanks",
    "Hi there,\n\nWe looked at something like this last quarter. Happy to talk next week.\n\nCheers",
    "Hello,\n\nPlease loop in my colleague who runs operations; I've copied her here.\n\nRegards",
    "Hi,\n\nSounds good. What does onboarding usually look like?\n\nThanks",
)


def react(
    original_raw: bytes,
    *,
    recipient: str,
    our_address: str,
    at: datetime,
    rng: random.Random,
    already_replied: bool,
) -> Reaction | None:
    """What `recipient` sends back after receiving `original_raw` at `at` (None: nothing)."""
    behaviour = behaviour_of(recipient)
    original = BytesParser(policy=compat32).parsebytes(original_raw)
    sender = parseaddr(_header(original, "From"))[1] or our_address
    minutes = timedelta(minutes=1)
    if behaviour is Behaviour.HARD_BOUNCE:
        delay = minutes * rng.uniform(0.5, 3)
        raw = hard_bounce(original_raw, recipient=recipient, our_address=sender, at=at + delay)
    elif behaviour is Behaviour.SOFT_BOUNCE:
        delay = minutes * rng.uniform(30, 240)
        raw = soft_bounce(original_raw, recipient=recipient, our_address=sender, at=at + delay)
    elif behaviour is Behaviour.OUT_OF_OFFICE:
        if already_replied:
            return None
        delay = minutes * rng.uniform(0.2, 2)
        back = (at + timedelta(days=4)).strftime("%A %d %B %Y")
        raw = _reply(
            original,
            recipient=recipient,
            our_address=sender,
            at=at + delay,
            text=(
                "Thank you for your message. I am out of the office with limited access to email "
                f"and will be back on {back}. For urgent matters please contact the front desk."
            ),
            subject_prefix="Out of Office: ",
            extra={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes", "Precedence": "auto_reply"},
        )
    elif behaviour is Behaviour.UNSUBSCRIBE:
        delay = minutes * rng.uniform(20, 180)
        raw = _reply(
            original,
            recipient=recipient,
            our_address=sender,
            at=at + delay,
            text="Please unsubscribe me and remove me from your mailing list.",
        )
    elif behaviour is Behaviour.NOT_INTERESTED:
        delay = minutes * rng.uniform(30, 300)
        raw = _reply(
            original,
            recipient=recipient,
            our_address=sender,
            at=at + delay,
            text="Thanks for thinking of us, but we are not interested at the moment. We have a provider.",
        )
    elif behaviour is Behaviour.REPLY:
        if already_replied:
            return None
        delay = minutes * rng.uniform(45, 8 * 60)
        raw = _reply(
            original,
            recipient=recipient,
            our_address=sender,
            at=at + delay,
            text=rng.choice(_REPLIES),
        )
    else:
        return None
    return Reaction(delay=delay, kind=behaviour, recipient=recipient, raw=raw)
