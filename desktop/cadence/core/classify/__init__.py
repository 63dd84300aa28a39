"""Inbound mail → Verdict: bounces (RFC 3464 and free text), complaints (ARF), auto-replies and replies.

`classify(raw)` is pure and thread-safe (no I/O, no shared mutable state) and never raises: input that
cannot be read gives kind OTHER with `error` set. Large batches can run it in a worker thread.

Verdict fields by kind:
* HARD_BOUNCE / SOFT_BOUNCE: `recipients` (failed addresses), `status` (enhanced code, derived from the
  reply code and text when the report has none), `reason`, `address_dead` (True only for 5.x.x that say the
  address itself is gone: user_unknown, host_unknown, disabled, has_moved, syntax; never for 5.7.x),
  `original_message_id`, `delayed` (a delay warning: always SOFT), `throttling` (the provider's throttling
  line: Gmail 4.7.28, Yahoo TSxx, Microsoft 4.7.650/4.7.500, RP-00x...).
  Bounce reasons: user_unknown, host_unknown, disabled, has_moved, syntax, sender_address, mailbox_full,
  message_too_big, virus, spam, auth, relay_denied, throttled, blocked, policy, expired, network, system,
  content.
* COMPLAINT: `recipients` (the complained-about recipient), `reason` (the feedback type: abuse, opt-out...).
* AUTO_REPLY: `return_date` when the text gives one, `reason` "left_company" when the person has left.
* UNSUBSCRIBE / NOT_INTERESTED / REPLY: judged on the new text only (quotes, signatures, footers removed).
Every verdict carries `message_id`, `from_address` and `in_reply_to` (In-Reply-To, then References, newest
first) for threading."""

from __future__ import annotations

from dataclasses import replace

from cadence.core.classify import _mime
from cadence.core.classify._bounce import (
    BounceReport,
    bounce_signals,
    dsn_report,
    ses_candidate,
    ses_report,
    text_bounce,
)
from cadence.core.classify._bounce import _human_text as human_text
from cadence.core.classify._part import MimePart
from cadence.core.classify._reply import classify_reply
from cadence.core.classify._status import address_dead
from cadence.core.model import InboundKind, Verdict

__all__ = ["classify"]

_NOT_FAILED = frozenset({"delivered", "deliverable", "relayed", "expanded", "delayed", "complained"})


def classify(raw: bytes) -> Verdict:
    """Classify one raw RFC 5322 message. Unparseable input gives kind OTHER with `error` set."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return Verdict(kind=InboundKind.OTHER, error=f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        return Verdict(kind=InboundKind.OTHER, error="empty message")
    try:
        message = _mime.parse(raw)
    except Exception as exc:  # the parser is lenient; anything it still cannot take is reported
        return Verdict(kind=InboundKind.OTHER, error=f"unparseable message: {exc}")
    if not message.keys():
        return Verdict(kind=InboundKind.OTHER, error="no header fields: not an RFC 5322 message")
    try:
        return _classify(message)
    except Exception as exc:  # a classifier bug must not take down a batch; say what happened
        return Verdict(kind=InboundKind.OTHER, error=f"classifier error: {type(exc).__name__}: {exc}")


def _threading(message: MimePart) -> tuple[str, ...]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        value = message.get(name)
        if isinstance(value, str):
            found = _mime.message_ids(value)
            if name == "References":
                found.reverse()
            for item in found:
                if item not in ids:
                    ids.append(item)
    return tuple(ids)


def _classify(message: MimePart) -> Verdict:
    sender_name, from_address = _mime.split_address(_mime.header_text(message, "From"))
    sender = from_address or ""
    base = Verdict(
        kind=InboundKind.OTHER,
        message_id=_mime.first_message_id(message),
        from_address=from_address,
        in_reply_to=_threading(message),
    )
    subject = _mime.header_text(message, "Subject")
    report_type = str(message.get_param("report-type") or "").lower()

    complaint = _complaint(message, report_type)
    if complaint is not None:
        return replace(
            base,
            kind=InboundKind.COMPLAINT,
            recipients=complaint[0],
            reason=complaint[2],
            original_message_id=complaint[1],
        )
    if str(message.get("X-Apple-Unsubscribe", "")).strip().lower() == "true":
        # Apple Mail's one-tap unsubscribe: an opt-out report sent on the recipient's behalf
        return replace(
            base,
            kind=InboundKind.COMPLAINT,
            recipients=(from_address,) if from_address else (),
            reason="opt-out",
        )

    signals = bounce_signals(message, subject=subject, sender=sender.lower() or None, sender_name=sender_name)
    # report fields pasted into plain text only count when the sender or subject already says 'bounce'
    report = dsn_report(message, fields_in_text=signals > 0)
    if report is None:
        notification = ses_candidate(message)
        if notification is not None:
            report = ses_report(notification)
    if report is None and signals:
        report = text_bounce(message, human_text=human_text(message), signals=signals)
    if report is not None:
        if report.complaint:
            recipients = tuple(f.address for f in report.failures if f.address)
            return replace(
                base,
                kind=InboundKind.COMPLAINT,
                recipients=recipients,
                original_message_id=report.original_message_id,
            )
        verdict = _bounce_verdict(report, base)
        if verdict is not None:
            return verdict
    return classify_reply(message, subject=subject, base=base)


def _bounce_verdict(report: BounceReport, base: Verdict) -> Verdict | None:
    failed = [
        f for f in report.failures if f.action not in _NOT_FAILED and not (f.status and f.status[0] == "2")
    ]
    delayed = [f for f in report.failures if f.action == "delayed"]
    if failed:
        hard = [f for f in failed if f.status and f.status[0] == "5"]
        primary = hard[0] if hard else failed[0]
        kind = InboundKind.HARD_BOUNCE if hard else InboundKind.SOFT_BOUNCE
        chosen = failed
        is_delayed = False
    elif delayed:
        primary = delayed[0]
        kind = InboundKind.SOFT_BOUNCE
        chosen = delayed
        is_delayed = True
    else:
        return replace(base, kind=InboundKind.OTHER, original_message_id=report.original_message_id)
    recipients: list[str] = []
    for failure in chosen:
        if failure.address and failure.address not in recipients:
            recipients.append(failure.address)
    status = primary.status
    if kind is InboundKind.SOFT_BOUNCE and status and status[0] == "5":
        status = "4" + status[1:]
    return replace(
        base,
        kind=kind,
        recipients=tuple(recipients),
        status=status,
        reason=primary.reason,
        address_dead=address_dead(status, primary.reason) if kind is InboundKind.HARD_BOUNCE else False,
        original_message_id=report.original_message_id,
        delayed=is_delayed,
        throttling=report.throttling,
    )


def _complaint(message: MimePart, report_type: str) -> tuple[tuple[str, ...], str | None, str | None] | None:
    """(complained-about recipients, original Message-ID, feedback type) for ARF and Hotmail JMRP reports."""
    feedback: MimePart | None = None
    original: MimePart | None = None
    headers_text = ""
    is_report = report_type == "feedback-report"
    for part in _mime.walk_leaves(message, limit=40):
        ctype = _mime.content_type(part)
        if ctype == "message/feedback-report":
            feedback = part
        elif ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], MimePart):
                original = payload[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            headers_text = _mime.decode_part(part)
    jmrp = original is not None and original.get("X-HmXmrOriginalRecipient") is not None
    if feedback is None and not is_report and not jmrp:
        return None
    recipients: list[str] = []
    feedback_type: str | None = "abuse" if jmrp else None
    if jmrp and original is not None:
        recipients.extend(
            a.lower() for a in _mime.ADDRESS_RE.findall(str(original["X-HmXmrOriginalRecipient"]))
        )
    if feedback is not None:
        payload = feedback.get_payload()
        text = ""
        if isinstance(payload, list):
            text = "\n".join(
                f"{k}: {v}" for block in payload if isinstance(block, MimePart) for k, v in block.items()
            )
        else:
            text = _mime.decode_part(feedback)
        for line in text.splitlines():
            name, _, value = line.partition(":")
            field_name = name.strip().lower()
            if field_name in ("original-rcpt-to", "removal-recipient"):
                recipients.extend(a.lower() for a in _mime.ADDRESS_RE.findall(value))
            elif field_name == "feedback-type" and feedback_type is None:
                feedback_type = value.strip().lower() or None
    original_id = None
    if original is not None:
        if not recipients:
            recipients = _mime.header_addresses(original, "To")
        original_id = _mime.first_message_id(original)
    elif headers_text:
        parsed = _mime.parse(headers_text.encode("utf-8", "replace"))
        if not recipients:
            recipients = _mime.header_addresses(parsed, "To")
        original_id = _mime.first_message_id(parsed)
    unique: list[str] = []
    for address in recipients:
        if address not in unique:
            unique.append(address)
    return tuple(unique), original_id, feedback_type
