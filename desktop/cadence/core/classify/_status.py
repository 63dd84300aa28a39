"""Status codes, reason words and what they mean for the address."""

from __future__ import annotations

import re
from typing import NamedTuple

_UPPER_ESCAPES = re.compile(r"\\[SWDBAZ]")


def lowercase_re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile a case-insensitive pattern for use on lower-cased text: much faster in CPython than
    re.IGNORECASE on long alternations. Callers lower-case the text they search."""
    assert not _UPPER_ESCAPES.search(pattern), pattern
    return re.compile(pattern.lower(), flags)


# Cheap substring tests before the throttling expression runs (most mail has none of them).
_THROTTLING_HINTS = ("4.7.", "ts0", "tss0", "rp-00", "5.7.515", "rate", "too many", "throttl", "temporarily")


def find_throttling(text: str) -> str | None:
    """The line of `text` with a provider throttling signal (Gmail 4.7.28, Yahoo TSxx, Microsoft 4.7.650,
    RP-00x, ...), or None."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _THROTTLING_HINTS):
        return None
    match = THROTTLING_RE.search(lowered)
    if not match:
        return None
    source = text if len(text) == len(lowered) else lowered
    start = source.rfind("\n", 0, match.start()) + 1
    end = source.find("\n", match.end())
    line = " ".join(source[start : end if end >= 0 else len(source)].split())
    return line[:240] or match.group(0)


# Both start with a character class so the regex engine can skip ahead; the look-behinds that keep IP
# addresses and version numbers out come right after the first character.
ENHANCED_RE = re.compile(r"([245])(?<![\d.][245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
REPLY_CODE_RE = re.compile(
    r"([245](?<![\d.\-/\[][245])(?<!\d:[245])[0-5]\d)(?=[ \-,]|\.(?!\d)|$)", re.MULTILINE
)

THROTTLING_RE = lowercase_re(
    r"4\.7\.28|4\.7\.32\b|\[?\bTSS?0\d\b\]?|4\.7\.(?:650|651|500)\b|\bRP-00\d\b|5\.7\.515\b"
    r"|\b(?:rate limit(?:ed)?|too many (?:messages|connections|recipients)|temporarily (?:deferred|rate)"
    r"|unusual rate|throttl\w*)",
)

# (reason word, pattern). Order matters: the first match wins.
_REASON_PATTERNS: list[tuple[str, str]] = [
    (
        "mailbox_full",
        r"mailbox (?:is |was )?full|mail ?box full|over ?quota|quota (?:exceeded|exceed)"
        r"|exceeded (?:the )?(?:storage|quota)|(?:mailbox|disk) (?:size )?(?:quota|limit) (?:exceeded|"
        r"reached)"
        r"|insufficient (?:system |disk )?(?:storage|space)|full mailbox|(?:is|was) full\b|too much mail"
        r"|out of (?:storage|space)|mailbox has exceeded|exceeds? (?:his|her|their|its|the)? ?(?:storage|"
        r"quota)"
        r"|user(?:'s)? (?:is )?over|storage (?:space|limit)|mailbox size|MailboxFull|\bquota\b",
    ),
    (
        "user_unknown",
        r"user(?:name)? (?:is )?unknown|unknown (?:user|recipient|mailbox|local[- ]?part|address)"
        r"|no such (?:user|mailbox|recipient|account|person|address|local user)"
        r"|user (?:not found|doesn'?t exist|does not exist)|recipient (?:not found|unknown|does not exist)"
        r"|(?:address|mailbox|account|recipient|user) (?:does not|doesn'?t|did not) exist"
        r"|does not exist|doesn'?t exist|not listed in (?:the )?(?:domino directory|public name|address book)"
        r"|recipient name is not recognized|recipnotfound|invalid (?:recipient|mailbox|address|user)"
        r"|mailbox (?:not found|unavailable|not available|does not exist)|couldn'?t be found"
        r"|no mailbox (?:here|by that name)|unrouteable address|bad destination mailbox|address unknown"
        r"|not a valid (?:user|recipient|mailbox)|no account by that name|undeliverable address"
        r"|is not a known user|unknown or illegal alias|addressee unknown|user not exist|no such address"
        r"|recipient rejected|recipient address rejected|(?<!sender )address rejected|not our customer"
        r"|account (?:that you tried to reach )?does not exist|is not a valid mailbox|mailbox unknown"
        r"|destin\w* (?:address|mailbox) (?:is )?(?:invalid|unknown)|invalid address|user invalid"
        r"|user doesn't have|unknown email address|no valid recipients|not a registered user"
        r"|(?:empfänger|benutzer|postfach)[^.\n]{0,30}(?:nicht gefunden|unbekannt|existiert nicht)"
        r"|destinataire inconnu|adresse[^.\n]{0,20}(?:introuvable|inconnue|n'existe pas)|usuario desconocido"
        r"|onbekende (?:ontvanger|gebruiker)|utente sconosciuto|usuário desconhecido|"
        r"destinatário desconhecido"
        r"|nieznany (?:odbiorca|użytkownik|adresat)|okänd mottagare",
    ),
    (
        "disabled",
        r"(?:account|mailbox|user|address) (?:has been |is |was )?(?:disabled|inactive|suspended"
        r"|deactivated|locked|frozen|closed|expired|terminated|deleted|removed|blocked by the owner)"
        r"|(?:disabled|inactive|suspended|deactivated|expired) (?:account|mailbox|user)"
        r"|no longer (?:active|in use|available|valid|used|exists?)",
    ),
    ("has_moved", r"has moved|moved permanently|address (?:has )?changed"),
    (
        "host_unknown",
        r"host (?:or domain name )?(?:not found|unknown)|unknown host|domain (?:name )?(?:not found"
        r"|does not exist|unknown)|no such domain|unrouteable (?:mail )?domain|name service error"
        r"|name or service not known|nxdomain|no mx|null mx|domain (?:is )?invalid|invalid domain"
        r"|host not found|bad destination host|unknown domain|no dns|dns (?:error|lookup failed)"
        r"|domain (?:has )?no (?:mail|mx)|could not be resolved|nodename nor servname",
    ),
    (
        "message_too_big",
        r"(?:message|mail) (?:size )?(?:is )?(?:too (?:big|large)|exceeds)|size limit|too large"
        r"|message length exceeds|exceeds (?:the )?maximum (?:message )?size|mesgtoobig",
    ),
    ("virus", r"virus|malware|infected|trojan"),
    (
        "spam",
        r"\bspam|blacklist|blocklist|\brbl\b|\bdnsbl|listed (?:at|in|on|by)|spamhaus|spamcop|junk mail"
        r"|bulk mail|unsolicited|reputation|sorbs|barracudacentral|looks like spam|content filter",
    ),
    (
        "auth",
        r"\bspf\b|\bdkim\b|\bdmarc\b|unauthenticated|not authenticated|authentication (?:failed|required)"
        r"|sender (?:address )?verif|5\.7\.26|5\.7\.27|reverse dns|\bptr\b|rdns|reverse (?:lookup|mapping)"
        r"|(?:tls|starttls)(?: is)? required|must (?:use|issue a) starttls|encryption required",
    ),
    (
        "relay_denied",
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)"
        r"|not permitted to relay|unable to relay|we do not relay|relaying denied|not (?:a )?(?:local|"
        r"our) domain"
        r"|no relay",
    ),
    (
        "throttled",
        r"too many (?:messages|connections|recipients|concurrent)|rate limit|try (?:again )?later"
        r"|temporarily (?:deferred|rejected|blocked|rate)|throttl|exceeded .*(?:limit|rate)|sending limit"
        r"|4\.7\.28|4\.7\.650|4\.7\.500|\bTSS?0\d\b|\bRP-00\d\b|unusual rate",
    ),
    (
        "blocked",
        r"\bblock(?:ed|ing)?\b|refused|\bdenied\b|banned|not allowed|access denied|blacklisted"
        r"|client host rejected|sender (?:address )?rejected|rejected (?:by|due|for)|not accepted"
        r"|policy|prohibited|not authorized|unauthori[sz]ed|forbidden|firewall",
    ),
    (
        "expired",
        r"expired|have been failing for a long time|retry time not reached|too long in (?:the )?queue|"
        r"been in the queue too long|retry time(?:out)? (?:not )?"
        r"(?:exceeded|reached)|could not be delivered (?:with)?in|not (?:been )?delivered for|delivery time"
        r"|timed? ?out|giving up|gave up|retry timeout|maximum (?:delivery )?time|message will be retried"
        r"|has not yet been delivered|delayed|deferred|will (?:continue|keep) trying|still trying"
        r"|could not be delivered for",
    ),
    (
        "network",
        r"connection (?:refused|timed out|reset|closed|lost|dropped)|network|unreachable|not reachable|"
        r"no route"
        r"|could not connect|connect to .* failed|cannot connect|lost connection|tls (?:handshake|"
        r"negotiation)"
        r"|broken pipe|conversation with|while talking to|temporary failure",
    ),
    (
        "system",
        r"system error|internal (?:server )?error|local error|loop|hop count|mailer error|configuration"
        r"|server error|system (?:is )?(?:down|unavailable)|resources|out of memory|disk full|i/o error"
        r"|service (?:is )?(?:not available|unavailable)|transaction failed",
    ),
    ("content", r"content|header|message rejected|rejected as|malformed|syntax|encoding|attachment|\bmime\b"),
]
# Matched against lower-cased text: IGNORECASE makes Python's engine several times slower on alternations.
_REASON_RES = [(word, re.compile(pattern.lower())) for word, pattern in _REASON_PATTERNS]
MAX_REASON_TEXT = 6000

_STATUS_REASON = {
    "1.1": "user_unknown",
    "1.0": "user_unknown",
    "1.2": "host_unknown",
    "1.3": "syntax",
    "1.6": "has_moved",
    "1.7": "sender_address",  # 5.1.7 / 5.1.8: the sender's address is refused, not the recipient's
    "1.8": "sender_address",
    "1.10": "user_unknown",  # RFC 7505 null MX, but Microsoft sends it for RecipientNotFound
    "2.1": "disabled",
    "2.2": "mailbox_full",
    "2.3": "message_too_big",
    "3.4": "message_too_big",
    "4.4": "host_unknown",
    "4.7": "expired",
    "7.26": "auth",
    "7.1": "blocked",
}

REASON_STATUS = {
    "user_unknown": "1.1",
    "host_unknown": "1.2",
    "syntax": "1.3",
    "has_moved": "1.6",
    "disabled": "2.1",
    "mailbox_full": "2.2",
    "message_too_big": "3.4",
    "virus": "7.1",
    "spam": "7.1",
    "auth": "7.26",
    "relay_denied": "7.1",
    "blocked": "7.1",
    "throttled": "7.0",
    "expired": "4.7",
    "network": "4.1",
    "system": "3.0",
    "content": "6.0",
}

# Reasons that say the address itself cannot receive mail.
DEAD_REASONS = frozenset({"user_unknown", "host_unknown", "syntax", "has_moved", "disabled"})


class Diagnosis(NamedTuple):
    status: str | None
    reason: str | None
    reply_code: str | None


def find_enhanced(text: str) -> str | None:
    match = ENHANCED_RE.search(text)
    if match is None:
        return None
    return f"{match.group(1)}.{int(match.group(2))}.{int(match.group(3))}"


def find_reply_code(text: str) -> str | None:
    match = REPLY_CODE_RE.search(text)
    return match.group(1) if match else None


def _split_alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern (escapes, classes and groups respected)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


_LOOKAROUND_START = re.compile(r"^(?:\\b|\(\?<?[!=][^()]*\))+")
_WORD_GROUP_START = re.compile(r"^\(\?:([^\\()\[\]{}.*+?^$]+)\)(?![?*{])")


def _anchors(alternative: str) -> tuple[str, ...] | None:
    """Literals one of which every match of `alternative` contains; None when none can be read off."""
    text = _LOOKAROUND_START.sub("", alternative)
    group = _WORD_GROUP_START.match(text)
    if group:
        words = tuple(group.group(1).split("|"))
        return words if all(len(word) >= 2 for word in words) else None
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in ".-/:'\"":
            literal.append(text[index + 1])
            index += 2
            continue
        if char in "\\()[]{}|.*+?^$":
            if char in "?*{" and literal:
                literal.pop()  # the character before is optional
            break
        literal.append(char)
        index += 1
    prefix = "".join(literal)
    return (prefix,) if len(prefix.strip()) >= 2 else None


def _gate(pattern: str) -> tuple[str, ...] | None:
    """Substrings one of which any match contains (None: no cheap test possible)."""
    found: list[str] = []
    for alternative in _split_alternatives(pattern):
        anchors = _anchors(alternative)
        if anchors is None:
            return None
        found.extend(anchors)
    return tuple(dict.fromkeys(found))


# A substring test in C before each expression: most texts state one reason, so most expressions are skipped.
_REASON_GATES = [_gate(pattern.pattern) for _, pattern in _REASON_RES]


def reason_from_text(text: str) -> str | None:
    """The first reason, in priority order (see _REASON_PATTERNS), that the text states."""
    lowered = text[:MAX_REASON_TEXT].lower()
    for (word, pattern), gate in zip(_REASON_RES, _REASON_GATES, strict=True):
        if gate is not None and not any(anchor in lowered for anchor in gate):
            continue
        if pattern.search(lowered):
            return word
    return None


def reason_from_status(status: str | None) -> str | None:
    if not status:
        return None
    _, _, detail = status.partition(".")
    if detail in _STATUS_REASON:
        return _STATUS_REASON[detail]
    subject = detail.partition(".")[0]
    return {"7": "policy", "5": "system", "3": "system", "4": "network", "6": "content"}.get(subject)


def is_generic_status(status: str) -> bool:
    """x.0.0 and the like say nothing beyond the class."""
    _, _, detail = status.partition(".")
    return detail in ("0.0", "0.1", "0.2", "0.3", "0.9")


def diagnose(text: str, *, status: str | None = None, default_class: str | None = "5") -> Diagnosis:
    """Status and reason from a status field (if any) and the diagnostic text.

    When no enhanced status is given, one is taken from the text, else derived from the reply code and
    the reason (550 'user unknown' → 5.1.1). `default_class` is used when nothing gives a class."""
    reply_code = find_reply_code(text)
    text_status = find_enhanced(text)
    if status and is_generic_status(status) and text_status and text_status[0] == status[0]:
        status = text_status
    status = status or text_status
    status_reason = reason_from_status(status) if status and not is_generic_status(status) else None
    if status_reason in _DEFINITIVE_REASONS and status is not None and status.split(".")[1] != "7":
        reason: str | None = status_reason  # the code says it all; the text cannot change the verdict
    else:
        reason = _combine_reason(status, status_reason, reason_from_text(text))
    if status is None or is_generic_status(status):
        klass = (status[0] if status else None) or (reply_code[0] if reply_code else None) or default_class
        if klass is None:
            return Diagnosis(status, reason, reply_code)
        if reason in REASON_STATUS and (klass == "5" or reason not in ("user_unknown", "host_unknown")):
            derived = f"{klass}.{REASON_STATUS[reason]}"
            if status is None or derived[0] == status[0]:
                status = derived
        elif status is None:
            status = f"{klass}.0.0"
    return Diagnosis(status, reason, reply_code)


# Status-derived reasons the text never overrides (see _combine_reason).
_DEFINITIVE_REASONS = frozenset(
    {"host_unknown", "mailbox_full", "has_moved", "message_too_big", "syntax", "sender_address"}
)


def _combine_reason(status: str | None, status_reason: str | None, text_reason: str | None) -> str | None:
    if status_reason is None:
        return text_reason or ("policy" if status and status[2:4] == "7." else None)
    if status and status.split(".")[1] == "7":
        # x.7.x is about the sender or the message: let the text say which (spam, auth, blocked...)
        if text_reason in ("spam", "virus", "auth", "relay_denied", "throttled", "blocked"):
            return text_reason
        return status_reason if status_reason != "policy" else "policy"
    if status_reason == "user_unknown" and text_reason == "host_unknown":
        return text_reason
    if status_reason in (
        "user_unknown",
        "host_unknown",
        "mailbox_full",
        "disabled",
        "has_moved",
        "message_too_big",
        "syntax",
    ):
        if status_reason == "disabled" and text_reason == "user_unknown":
            return "user_unknown"
        return status_reason
    return text_reason or status_reason


def address_dead(status: str | None, reason: str | None) -> bool:
    if not status or status[0] != "5":
        return False
    if status.startswith("5.7."):
        return False
    return reason in DEAD_REASONS
