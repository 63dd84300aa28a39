"""Delivery failures: RFC 3464 reports, provider JSON notifications and the many free-text bounces."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from cadence.core.classify import _mime
from cadence.core.classify._part import MimePart
from cadence.core.classify._status import address_dead, diagnose, find_enhanced, find_throttling, lowercase_re

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ORIGINAL_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "text/rfc822-header",
        "message/global-headers",
    }
)

DAEMON_LOCAL_RE = re.compile(
    r"^(?:mailer[-_]?daemon|post_?master|mail[-_]?delivery[-_]?(?:system|subsystem)?|mdaemon|"
    r"mail[-_]?system|bounces?|mailadmin|mail[-_]?(?:router|gateway)|microsoftexchange\w*|"
    r"administrator|nobody|double-bounce|root|daemon|smtp|mta|mail|mailer)(?:[-+=.].*)?$",
    re.IGNORECASE,
)
DAEMON_NAME_RE = re.compile(
    r"mailer[- ]?daemon|mail delivery (?:system|subsystem|service)|postmaster|mail system|"
    r"delivery (?:status )?notification|mail administrator|system administrator|mail deliver",
    re.IGNORECASE,
)
BOUNCE_SUBJECT_RE = lowercase_re(
    r"undeliver|undelivered|not (?:be )?deliver|non[- ]?deliver|delivery (?:status notification|failure|"
    r"failed|has failed|problem|report|error|notification|incomplete|unsuccessful)|returned mail|"
    r"return(?:ed)? to sender|failure notice|mail delivery failed|could not (?:be )?(?:deliver|sent)|"
    r"\bndr\b|mail system error|delivery failure|warning: could not send|message not delivered|"
    r"\bbounced?\b|rejected|mail failure|failed mail|delivery notification|nicht zustellbar|"
    r"unzustellbar|non remis|non distribuable|(?:é|e)chec de (?:la )?(?:remise|distribution)|"
    r"no se (?:puede|pudo) entregar|non recapitabile|onbestelbaar|niedostarczon|"
    r"returned message|error sending message|mail could not|delivery status|message you sent|"
    r"permanent error|mail returned|mail delivery|delayed mail|delivery delayed|delivery (?:has been )?"
    r"delayed|delivery warning|non recapitato|não (?:é possível|foi possível) entregar|niedostarczaln|"
    r"olevererbar|kan inte levereras|kon niet worden bezorgd|échec de (?:la )?livraison|"
    r"no se ha podido entregar|zustellung fehlgeschlagen",
)
BODY_FAILURE_RE = lowercase_re(
    r"could not be delivered|couldn'?t be delivered|was(?: not|n'?t) delivered|not (?:be )?delivered|"
    r"delivery (?:has )?failed|permanent (?:fatal )?error|failed permanently|undeliverable|"
    r"did not reach|does not like recipient|unable to deliver|following address(?:es|\(es\))? failed|"
    r"delivery to the following|returned to (?:the )?sender|delivery status notification|"
    r"could not deliver|can ?not be delivered|couldn'?t deliver|rejected|delivery problem|"
    r"undelivered|error delivering|mail delivery failed|message has not been delivered|"
    r"recipient (?:address )?rejected|has not yet been delivered|delivery attempts? |will (?:continue|keep) "
    r"trying|temporary (?:failure|error|problem)|delivery (?:is )?delayed|not yet been delivered|"
    r"could not send|user unknown|no such user|delivery failure|failed to deliver|failed recipient|"
    r"mail system error|had delivery errors|problem delivering|were not delivered|not reachable|"
    r"remote (?:host|server) (?:said|returned)|smtp error|unknown user|mailbox (?:is )?(?:full|unavailable)"
    r"|over quota|unable to (?:relay|forward)|transient (?:failure|error)|nicht zugestellt|"
    r"has failed|failed due to|transcript of session|invalid (?:user|recipient|address|mailbox)|"
    r"no such (?:user|mailbox|address)|"
    r"konnte nicht|n'a pas pu|no (?:se )?(?:ha )?podido|impossibile|kon niet|fehlgeschlagen|"
    r"la remise a échoué|échec de la remise|error en la entrega|niet (?:worden )?(?:afgeleverd|bezorgd)|"
    r"recapito non riuscito|non è stato possibile recapitare|falha na entrega|não (?:foi possível|pôde ser) "
    r"entregue|nie (?:można|udało się) dostarczyć|nie został(?:a|o)? dostarczon|kunde inte levereras|"
    r"leveransen misslyckades",
)
STRONG_TEMPORARY_RE = lowercase_re(
    r"warning message only|(?:do not|don'?t) need to resend|will be retried|will (?:continue|"
    r"keep) (?:to )?try|"
    r"still trying|not a permanent|delivery (?:has been |is )?delayed|could not send (?:mail|"
    r"message) for (?:the )?past|"
    r"^warning|delivery status notification \(delay\)|\(delay\)|no action is required",
    re.MULTILINE,
)
TEMPORARY_TEXT_RE = lowercase_re(
    r"\bwarning\b|will (?:continue|keep) (?:to )?try|still trying|will (?:be )?retr(?:y|ied)|"
    r"has not yet been delivered|not yet been delivered|delivery (?:is |has been )?delayed|"
    r"delayed|temporar(?:y|ily)|this is not a permanent|no action is required|do not need to resend|"
    r"transient",
)
# The last attempts failed temporarily and the server stopped retrying: the address itself was never refused.
GAVE_UP_ON_TEMPORARY_RE = lowercase_re(r"retry timeout exceeded|have been failing for a long time")
PERMANENT_TEXT_RE = lowercase_re(
    r"permanent|gave up|giving up|i've given up|not going to try again|will not (?:try|retry)|"
    r"failed permanently|could not be delivered|undeliverable|fatal",
)
# Substrings every match of the expression above contains: a cheap test first, the expression only if one
# occurs (these run on every free-text bounce).
_STRONG_TEMPORARY_HINTS = (
    "warning",
    "resend",
    "retried",
    "try",
    "permanent",
    "delay",
    "could not send",
    "no action",
)
_TEMPORARY_HINTS = (
    "warning",
    "try",
    "retr",
    "not yet",
    "delay",
    "temporar",
    "permanent",
    "no action",
    "resend",
    "transient",
)
_PERMANENT_HINTS = (
    "permanent",
    "gave up",
    "giving up",
    "given up",
    "try again",
    "will not",
    "could not be",
    "undeliverable",
    "fatal",
)


def _says(pattern: re.Pattern[str], hints: tuple[str, ...], lowered: str) -> bool:
    return any(hint in lowered for hint in hints) and pattern.search(lowered) is not None


# Where the bounce text ends and the returned original starts.
# Starts with a literal newline (searched in "\n" + text) so the engine can jump from line to line.
CUT_RE = lowercase_re(
    r"\n[ \t]*(?:-{2,}[ \t]*)?(?:(?:this is a )?copy of (?:the|your) (?:original )?message|"
    r"below this line is a copy|"
    r"original message (?:follows|headers)|(?:the )?original message:?[ \t]*-*[ \t]*$|unsent message below|"
    r"returned message|undelivered message|[^\n]{0,40}(?:lines|part|headers?) of (?:your|"
    r"the) original message|"
    r"message headers follow|original message (?:was )?attached|"
    r"(?:the )?headers? of (?:the|your) (?:original )?message|the text you sent follows|"
    r"-{3,}[ \t]*original message[ \t]*-{3,}|content-type:[ \t]*message/rfc822|"
    r"(?:return-path|dkim-signature|x-received|arc-seal|authentication-results|"
    r"x-mailer|mime-version|x-original-to|delivered-to):[ \t]|(?:received|message-id):[ \t]?[^\s])",
    re.MULTILINE,
)
HEADER_LINE_RE = re.compile(
    r"^[ \t>]*(?:from|to|cc|bcc|sender|reply-to|return-path|received|message-id|in-reply-to|references|"
    r"subject|date|sent|envelope-from|x-[\w-]+|delivered-to|resent-[\w-]+|mail from|"
    r"reporting-mta|received-from-mta|arrival-date|dkim-signature|authentication-results)[ \t]*:",
    re.IGNORECASE,
)
# A person's answer ('Re: ...'); forwarded bounces ('Fwd: Returned mail') still count as bounces.
REPLY_SUBJECT_RE = re.compile(r"^\s*(?:re|aw|sv|vs|rv|r|rif|odp|antw|res)\s*:", re.IGNORECASE)
NOREPLY_LOCAL_RE = re.compile(r"^(?:no-?reply|do-?not-?reply|notifications?|auto-?reply)\b", re.IGNORECASE)
ROLE_LOCAL_RE = re.compile(
    r"^(?:mailer[-_]?daemon|postmaster|abuse|hostmaster|webmaster|help|helpdesk|support|noreply|no-reply|"
    r"do-not-reply|donotreply|root|daemon|security|double-bounce|mail-daemon|bounces?)(?:[-+.].*)?$",
    re.IGNORECASE,
)
VERP_LOCAL_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-|^[0-9a-f\-]{30,}$|^(?:bounce|prvs|srs\d?|btv1)[=+\-]", re.IGNORECASE
)
RECIPIENT_CONTEXT_RE = re.compile(
    r"(?:rcpt to:?|recipient:?|to:?|for|address:?|delivered to|delivering (?:your )?(?:mail|message) to|"
    r"deliver(?:y)? to|message to|mail to|failed:|destinat\w+:?|an:|à:|a:|expanded from|original-recipient|"
    r"final-recipient|user|mailbox|account|address)\s*[\"']?<?$",
    re.IGNORECASE,
)
SES_TYPE_RE = re.compile(r'\\?"(?:notificationType|eventType)\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)')


EMBEDDED_DSN_RE = re.compile(r"^[ \t]*final-recipient:[^\n]*@", re.IGNORECASE | re.MULTILINE)


EMBEDDED_BOUNCE_RE = re.compile(
    r"^(?:return-path:[ \t]*<>|final-recipient:|x-failed-recipients:|"
    r"from:[^\n]*(?:mailer-daemon|postmaster))",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(slots=True)
class RecipientFailure:
    address: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str | None = None
    reason: str | None = None
    diagnostic: str = ""
    alternates: tuple[str, ...] = ()


@dataclass(slots=True)
class BounceReport:
    failures: list[RecipientFailure] = field(default_factory=list)
    original_message_id: str | None = None
    throttling: str | None = None
    complaint: bool = False


def _clean_address(value: str) -> str | None:
    """The address of a DSN recipient field ('rfc822; user@host'), quoted local parts included."""
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip()
    if 3 <= len(value) <= 254 and "@" in value[1:-1] and not any(c.isspace() for c in value):
        return value.lower()
    found = _mime.ADDRESS_RE.search(value)
    return found.group(1).lower() if found else None


def _fields(block: str) -> dict[str, str]:
    """'Name: value' fields of one DSN block (folded lines joined); first occurrence wins."""
    result: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            result[name] += " " + line.strip()
            continue
        head, sep, value = line.partition(":")
        if not sep or not head or " " in head.strip():
            name = None
            continue
        name = head.strip().lower()
        if name in result:
            name = None
            continue
        result[name] = value.strip()
    return result


def _dsn_text(part: MimePart) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, MimePart):
                blocks.append("\n".join(f"{k}: {v}" for k, v in block.items()))
        text = "\n\n".join(blocks)
        if text.strip():
            return text
    return _mime.decode_part(part)


def parse_dsn_fields(text: str) -> list[RecipientFailure]:
    failures: list[RecipientFailure] = []
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text)
    for block in blocks:
        fields = _fields(block)
        final = _clean_address(fields.get("final-recipient", "")) if "final-recipient" in fields else None
        original = (
            _clean_address(fields.get("original-recipient", "")) if "original-recipient" in fields else None
        )
        actual = (
            _clean_address(fields.get("x-actual-recipient", "")) if "x-actual-recipient" in fields else None
        )
        address = final or original or actual
        if address is None:
            continue
        status_field = fields.get("status", "")
        status = find_enhanced(status_field)
        diagnostic = fields.get("diagnostic-code", "")
        if ";" in diagnostic[:20]:
            diagnostic = diagnostic.split(";", 1)[1].strip()
        action = fields.get("action", "").strip().lower().split(" ")[0]
        if not action:
            action = "failed"
        alternates = tuple(a for a in (original, actual, final) if a and a != address)
        failures.append(RecipientFailure(address, action, status, None, diagnostic, alternates))
    return failures


def _returned_original_id(message: MimePart) -> str | None:
    for part in _mime.walk_leaves(message):
        ctype = _mime.content_type(part)
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], MimePart):
                found = _mime.first_message_id(payload[0])
                if found:
                    return found
        elif ctype in ORIGINAL_TYPES:
            text = _mime.decode_part(part)
            match = re.search(r"^message-id:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
            if match:
                return match.group(1)
    return None


def _original_id_in_text(text: str) -> str | None:
    match = re.search(r"^[ \t]*message-id:[ \t]*(<[^>\s]+@[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


def _original_headers(message: MimePart) -> MimePart | None:
    for part in _mime.walk_leaves(message):
        if _mime.content_type(part) in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], MimePart):
                return payload[0]
    return None


_HUMAN_ATTR = "_cadence_human_text"


def _human_text(message: MimePart) -> str:
    """The readable part of a bounce: text parts before the returned original (memoised on the message)."""
    cached = getattr(message, _HUMAN_ATTR, None)
    if cached is None:
        cached = _compute_human_text(message)
        setattr(message, _HUMAN_ATTR, cached)
    return str(cached)


def _compute_human_text(message: MimePart) -> str:
    texts: list[str] = []
    for part in _mime.walk_leaves(message, limit=30):
        ctype = _mime.content_type(part)
        if ctype in ORIGINAL_TYPES or ctype in DSN_TYPES:
            if texts:
                break
            continue
        if ctype == "text/plain" or (ctype == "text/html" and not texts) or ctype.startswith("multipart/"):
            text = _mime.decode_part(part)
            if ctype == "text/html":
                text = _mime.html_to_text(text)
            texts.append(text)
            if sum(len(t) for t in texts) > 60_000:
                break
        elif texts and part.get_content_maintype() != "text":
            break
    return "\n".join(texts).replace("\r\n", "\n")


def _throttling(text: str) -> str | None:
    return find_throttling(text[:20_000])


def _finish(failure: RecipientFailure, context: str, *, default_class: str | None) -> None:
    diagnosis = diagnose(failure.diagnostic or context, status=failure.status, default_class=default_class)
    if diagnosis.reason is None and failure.diagnostic and context and context is not failure.diagnostic:
        diagnosis = diagnose(context, status=diagnosis.status, default_class=default_class)
    failure.status = diagnosis.status
    failure.reason = diagnosis.reason


# --- free-text bounces -------------------------------------------------------------------------------


def bounce_signals(message: MimePart, *, subject: str, sender: str | None, sender_name: str) -> int:
    """0: nothing says bounce; 1: the sender or the subject does; 2: both, or X-Failed-Recipients."""
    if message.get("X-Failed-Recipients"):
        return 2
    local = (sender or "").partition("@")[0]
    return_path = str(message.get("Return-Path", "")).strip()
    null_sender = return_path in ("<>", "< >")
    daemon = (
        bool(DAEMON_LOCAL_RE.match(local))
        or bool(DAEMON_NAME_RE.search(sender_name))
        or not sender
        or null_sender
    )
    subject_says = bool(BOUNCE_SUBJECT_RE.search(subject.lower()))
    if not daemon and REPLY_SUBJECT_RE.match(subject):
        return 0  # a person answering: whatever their text says, not a delivery report
    if daemon and subject_says:
        return 2
    if daemon or subject_says or NOREPLY_LOCAL_RE.match(local):
        return 1
    return 0


def _cut(text: str) -> tuple[str, str]:
    lowered = text.lower()
    if len(lowered) != len(text):  # rare characters that change length when lower-cased
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    match = CUT_RE.search("\n" + lowered, 40 if len(text) > 40 else 0)
    if match is None:
        return text, ""
    line_start = match.start()  # index of the newline in "\n" + text = start of that line in text
    return text[:line_start], text[line_start:]


def _candidate_addresses(region: str, excluded: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(strong, weak, excluded-but-listed): addresses by how much their position says 'failed recipient'."""
    strong: list[str] = []
    weak: list[str] = []
    listed: list[str] = []
    for line in region.splitlines():
        if "@" not in line:
            continue
        if HEADER_LINE_RE.match(line):
            continue
        lowered = line.lower()
        if "message-id" in lowered or ("http://" in lowered and "mailto:" not in lowered):
            pass
        for match in _mime.ADDRESS_RE.finditer(line):
            address = match.group(1).lower()
            local = address.partition("@")[0]
            before = line[: match.start()]
            after = line[match.end() :]
            if address in excluded:
                if not before.strip(" \t<\"'") and after.lstrip(">").startswith(":"):
                    listed.append(address)
                continue
            if ROLE_LOCAL_RE.match(local) or VERP_LOCAL_RE.search(local):
                continue
            if re.match(r"\s+<[^<>@\s]+@[^<>\s]+>", after):
                continue  # 'name@x <real@y>': the first is a display name
            if re.search(r"(?:message-id|msgid|\bid)[:=]?\s*<?$", before, re.IGNORECASE):
                continue
            if re.search(
                r"(?:contact|email|write to|send (?:mail|email) to|visit|help|please)[^@]{0,30}$",
                before,
                re.IGNORECASE,
            ):
                continue
            rest = _mime.ADDRESS_RE.sub("", line)
            rest = re.sub(
                r"<mailto:[^>]*>|[<>\[\]()\"':;,.\t]|\bon\b.*$|expanded from|rfc822",
                " ",
                rest,
                flags=re.IGNORECASE,
            )
            short_line = len(rest.split()) <= 3
            in_context = bool(RECIPIENT_CONTEXT_RE.search(before.strip(" \t<\"'"))) or bool(
                re.match(r"^[ \t]*(?:<<<|>>>)?[ \t]*[245]\d\d[ \t-]*<?$", before)
            )
            starts_line = not before.strip(" \t<\"'>*-")
            target = strong if (short_line or in_context or starts_line) else weak
            if address not in target:
                target.append(address)
    return strong, weak, listed


def _raw_header_addresses(message: MimePart, name: str) -> list[str]:
    return [
        a.lower()
        for v in (message.get_all(name) or [])
        if isinstance(v, str)
        for a in _mime.ADDRESS_RE.findall(v)
    ]


def _excluded_addresses(message: MimePart, original: MimePart | None, original_text: str) -> set[str]:
    excluded: set[str] = set()
    for name in ("To", "From", "Sender", "Return-Path", "Reply-To"):
        excluded.update(_raw_header_addresses(message, name))
    if original is not None:
        for name in ("From", "Sender", "Return-Path", "Reply-To"):
            excluded.update(_raw_header_addresses(original, name))
    for match in re.finditer(
        r"^(?:from|return-path|sender|reply-to):[^\n]*", original_text[:20_000], re.IGNORECASE | re.MULTILINE
    ):
        excluded.update(a.lower() for a in _mime.ADDRESS_RE.findall(match.group(0)))
    return excluded


def _blocks_for(address: str, region: str) -> str:
    """The lines that talk about one recipient: from its first mention to the next recipient or blank gap."""
    lowered = region.lower()
    index = lowered.find(address)
    if index < 0:
        return region
    start = region.rfind("\n", 0, index) + 1
    end = len(region)
    gap = re.compile(r"\n[ \t]*\n[ \t]*\n|\n[ \t]*\n(?=[ \t]*<?[\w.+\-]+@)")
    match = gap.search(region, index)
    if match:
        end = match.start()
    block = region[start:end]
    if len(block.strip()) < len(address) + 12:
        block = region[start : start + 800]
    return block


def text_bounce(message: MimePart, *, human_text: str, signals: int, depth: int = 0) -> BounceReport | None:
    region, rest = _cut(human_text[:60_000])
    region_lower = region[:20_000].lower()
    if signals < 2 and not BODY_FAILURE_RE.search(region_lower):
        return None
    original = _original_headers(message)
    excluded = _excluded_addresses(message, original, rest)
    failed_header = ",".join(v for v in (message.get_all("X-Failed-Recipients") or []) if isinstance(v, str))
    addresses = [a.lower() for a in _mime.ADDRESS_RE.findall(failed_header)]
    if not addresses:
        strong, weak, listed = _candidate_addresses(region, excluded)
        # 'listed': the failed address is also the bounce's own To (someone who wrote to themselves)
        addresses = strong or weak or listed
    if not addresses and original is not None:
        # the returned original names one recipient: that is who it failed for
        to_addresses = [a for a in _mime.header_addresses(original, "To") if a not in excluded]
        addresses = to_addresses if len(to_addresses) == 1 else []
    if not addresses and depth == 0 and rest and EMBEDDED_BOUNCE_RE.search(rest[:20_000]):
        # a bounce forwarded inside another notice ("From MAILER-DAEMON ..." and the whole original bounce)
        inner = _mime.parse(rest.encode("utf-8", "replace"))
        inner_report = dsn_report(inner) or text_bounce(
            inner, human_text=_human_text(inner), signals=2, depth=1
        )
        if inner_report is not None and any(f.address for f in inner_report.failures):
            return inner_report
    if not addresses:
        match = re.search(r"^to:[^\n]*", rest[:20_000], re.IGNORECASE | re.MULTILINE)
        if match:
            addresses = [
                a.lower() for a in _mime.ADDRESS_RE.findall(match.group(0)) if a.lower() not in excluded
            ]
            addresses = addresses if len(addresses) == 1 else []
    subject = _mime.header_text(message, "Subject").lower()
    temporary = _says(STRONG_TEMPORARY_RE, _STRONG_TEMPORARY_HINTS, subject) or _says(
        STRONG_TEMPORARY_RE, _STRONG_TEMPORARY_HINTS, region_lower
    )
    if not temporary and _says(TEMPORARY_TEXT_RE, _TEMPORARY_HINTS, region_lower):
        temporary = not _says(PERMANENT_TEXT_RE, _PERMANENT_HINTS, region_lower)
    gave_up = _says(GAVE_UP_ON_TEMPORARY_RE, ("retry timeout", "failing for a long"), region_lower)
    default_class = "4" if temporary or gave_up else "5"
    report = BounceReport()
    for address in addresses[:50]:
        block = _blocks_for(address, region) if len(addresses) > 1 else region
        failure = RecipientFailure(address, "delayed" if temporary else "failed")
        failure.diagnostic = block
        _finish(failure, region, default_class=default_class)
        report.failures.append(failure)
    if not report.failures:
        # Clearly a failure notice but no address could be found: still a bounce, recipient unknown.
        failure = RecipientFailure("", "delayed" if temporary else "failed", diagnostic=region)
        _finish(failure, region, default_class=default_class)
        report.failures.append(failure)
    report.original_message_id = _returned_original_id(message) or _original_id_in_text(rest)
    report.throttling = _throttling(region)
    return report


# --- reports ------------------------------------------------------------------------------------------


def dsn_report(message: MimePart, *, fields_in_text: bool = True) -> BounceReport | None:
    dsn_parts = [p for p in _mime.walk_leaves(message, limit=60) if _mime.content_type(p) in DSN_TYPES]
    failures: list[RecipientFailure] = []
    for part in dsn_parts:
        failures.extend(parse_dsn_fields(_dsn_text(part)))
    if not failures and not fields_in_text:
        return None
    human = _human_text(message)
    if not failures and EMBEDDED_DSN_RE.search(human[:60_000]):
        # some servers paste the report fields into the readable text
        region, _ = _cut(human[:60_000])
        failures = [f for f in parse_dsn_fields(region) if f.action != "failed" or f.status or f.diagnostic]
    if not failures:
        return None
    region, _ = _cut(human[:60_000])
    for failure in failures:
        context = _blocks_for(failure.address, region) if failure.address in region.lower() else region
        default_class = "4" if failure.action == "delayed" else "5"
        _finish(failure, context, default_class=default_class)
        if failure.action == "delayed" and failure.status and failure.status[0] == "5":
            failure.status = "4" + failure.status[1:]
    diagnostics = "\n".join(f.diagnostic for f in failures)
    report = BounceReport(failures=failures)
    report.original_message_id = _returned_original_id(message)
    report.throttling = _throttling(diagnostics) or _throttling(region)
    return report


def ses_candidate(message: MimePart) -> str | None:
    """The text of a plain-text part that carries an Amazon SES / SNS notification, if there is one."""
    for part in _mime.walk_leaves(message, limit=10):
        if _mime.content_type(part) == "text/plain":
            text = _mime.decode_part(part)
            if "notificationType" in text or "eventType" in text:
                return text
    return None


def ses_report(text: str) -> BounceReport | None:
    """Amazon SES notifications (JSON, possibly wrapped in an SNS envelope)."""
    if not SES_TYPE_RE.search(text):
        return None
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1], strict=False)
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"], strict=False)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("notificationType") or data.get("eventType")
    report = BounceReport()
    mail = data.get("mail")
    if isinstance(mail, dict):
        common = mail.get("commonHeaders")
        if isinstance(common, dict) and isinstance(common.get("messageId"), str):
            report.original_message_id = common["messageId"]
    if kind == "Complaint":
        report.complaint = True
        complaint = data.get("complaint") or {}
        for entry in complaint.get("complainedRecipients") or []:
            address = _clean_address(str(entry.get("emailAddress", "")))
            if address:
                report.failures.append(RecipientFailure(address, "complained"))
        return report
    if kind == "Delivery":
        delivery = data.get("delivery") or {}
        for address in delivery.get("recipients") or []:
            report.failures.append(RecipientFailure(str(address).lower(), "delivered"))
        return report
    bounce = data.get("bounce") or {}
    transient = str(bounce.get("bounceType", "")).lower() == "transient"
    for entry in bounce.get("bouncedRecipients") or []:
        address = _clean_address(str(entry.get("emailAddress", "")))
        if not address:
            continue
        failure = RecipientFailure(
            address,
            "failed",
            find_enhanced(str(entry.get("status", ""))),
            diagnostic=str(entry.get("diagnosticCode", "")),
        )
        _finish(failure, str(bounce.get("bounceSubType", "")), default_class="4" if transient else "5")
        if transient and failure.status and failure.status[0] == "5":
            failure.status = "4" + failure.status[1:]
        report.failures.append(failure)
    report.throttling = _throttling(json.dumps(bounce))
    return report if report.failures else None


__all__ = ["BounceReport", "RecipientFailure", "address_dead", "dsn_report", "ses_report", "text_bounce"]
