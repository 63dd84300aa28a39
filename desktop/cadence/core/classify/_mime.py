"""Tolerant MIME helpers: parse anything, decode text parts, turn HTML into quotable text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from html.parser import HTMLParser

from cadence.core.classify._part import MimePart

# Parsing stops here: the verdict lives in the first part of a message (headers, report, reply text);
# what follows is returned originals and attachments.
MAX_PARSE_BYTES = 1_000_000
MAX_PART_CHARS = 200_000

ADDRESS_RE = re.compile(
    r"(?<![\w.+\-=/])([A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w\-])"
)
_ANGLE_ADDRESS_RE = re.compile(r"<\s*([^<>\s@]+@[^<>\s]+?)\s*>")
MESSAGE_ID_RE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def parse(raw: bytes) -> MimePart:
    if len(raw) > MAX_PARSE_BYTES:
        raw = raw[:MAX_PARSE_BYTES]
    return MimePart(raw)


def header_text(message: MimePart, name: str) -> str:
    """A header decoded to text (RFC 2047 words included); '' when absent or undecodable."""
    values = message.get_all(name)
    if not values:
        return ""
    value = values[0]
    if not isinstance(value, str):
        try:
            return str(value)
        except Exception:
            return ""
    if "=?" not in value:
        return " ".join(value.split())
    try:
        return " ".join(str(make_header(decode_header(value))).split())
    except Exception:
        return " ".join(value.split())


def header_address(message: MimePart, name: str) -> str | None:
    value = header_text(message, name)
    if not value:
        return None
    return split_address(value)[1]


def header_addresses(message: MimePart, name: str) -> list[str]:
    found: list[str] = []
    for value in message.get_all(name) or []:
        found.extend(address.lower() for address in ADDRESS_RE.findall(value))
    return found


def split_address(value: str) -> tuple[str, str | None]:
    """(display name, lower-cased address) of one From-style value; quick and tolerant."""
    angle = _ANGLE_ADDRESS_RE.search(value)
    if angle:
        name = value[: angle.start()].strip().strip('"').strip()
        return name, angle.group(1).lower()
    found = ADDRESS_RE.search(value)
    if not found:
        return value.strip(), None
    rest = (value[: found.start()] + value[found.end() :]).strip()
    return rest.strip('()" ').strip(), found.group(1).lower()


def message_ids(value: str) -> list[str]:
    return [f"<{m}>" for m in MESSAGE_ID_RE.findall(value)]


def first_message_id(message: MimePart, name: str = "Message-ID") -> str | None:
    value = message.get(name)
    if not isinstance(value, str):
        return None
    ids = message_ids(value)
    if ids:
        return ids[0]
    value = value.strip()
    return value or None


def decode_part(part: MimePart) -> str:
    """A leaf part's payload as text, tolerant of wrong charsets and broken transfer encodings."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw[:MAX_PART_CHARS] if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[: MAX_PART_CHARS * 2]
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)[:MAX_PART_CHARS]
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")[:MAX_PART_CHARS]


_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/feedback-report",
        "message/disposition-notification",
    }
)


# Per-message memo attributes. Each parsed message belongs to one classify() call, so keeping derived values
# on it is thread-safe and spares walking the MIME tree and re-parsing Content-Type many times.
_CTYPE_ATTR = "_cadence_ctype"
_LEAVES_ATTR = "_cadence_leaves"


def content_type(part: MimePart) -> str:
    """The content type, tolerant of folded or garbled values ('text/plain\\n charset=...')."""
    cached = getattr(part, _CTYPE_ATTR, None)
    if cached is not None:
        return str(cached)
    value = part.get_content_type()
    result = value.split()[0].rstrip(";").lower() if value else "text/plain"
    setattr(part, _CTYPE_ATTR, result)
    return result


def leaves(message: MimePart) -> list[MimePart]:
    """Leaf parts in order (at most 200); message/rfc822 parts and report parts are leaves."""
    cached = getattr(message, _LEAVES_ATTR, None)
    if cached is not None:
        return list(cached)
    result: list[MimePart] = []
    stack: list[MimePart] = [message]
    seen = 0
    while stack and seen < 200:
        part = stack.pop(0)
        seen += 1
        ctype = content_type(part)
        if ctype in _REPORT_TYPES or ctype in ("message/rfc822", "message/global"):
            result.append(part)
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[0:0] = [p for p in payload if isinstance(p, MimePart)]
            continue
        result.append(part)
    setattr(message, _LEAVES_ATTR, result)
    return list(result)


_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/feedback-report",
        "message/disposition-notification",
    }
)


def walk_leaves(message: MimePart, *, limit: int = 200) -> Iterator[MimePart]:
    yield from leaves(message)[:limit]


class _HtmlText(HTMLParser):
    """HTML to plain text; quoted blocks (blockquote, gmail_quote, Outlook reply header) become '> ' lines."""

    _BLOCK = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "pre"}
    )
    _SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.stack: list[tuple[str, bool]] = []
        self.quote_depth = 0
        self.skip_depth = 0
        self.quoted_rest = False

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        self.current = []
        if self.quote_depth > 0 or self.quoted_rest:
            self.lines.append("> " + text)
        else:
            self.lines.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip_depth += 1
            return
        attributes = {k: (v or "") for k, v in attrs}
        classes = attributes.get("class", "")
        quoting = (
            tag == "blockquote"
            or "gmail_quote" in classes
            or "moz-cite-prefix" in classes
            or attributes.get("id", "") in ("divRplyFwdMsg", "appendonsend")
            or "yahoo_quoted" in classes
        )
        if tag in self._BLOCK:
            self._flush()
        if attributes.get("id", "") in ("divRplyFwdMsg", "appendonsend"):
            self.quoted_rest = True
        if tag in ("br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"):
            return
        self.stack.append((tag, quoting))
        if quoting:
            self.quote_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in self._BLOCK or tag == "blockquote":
            self._flush()
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                for _, quoting in self.stack[index:]:
                    if quoting:
                        self.quote_depth -= 1
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.current.append(data)


_HTML_NOISE_RE = re.compile(r"<(style|script|head|title)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        # style sheets and conditional comments (Outlook writes kilobytes of them) never hold text
        parser.feed(_HTML_NOISE_RE.sub(" ", html[:MAX_PART_CHARS]))
        parser.close()
    except Exception:
        return re.sub(r"<[^>]+>", " ", html)
    parser._flush()
    return "\n".join(line for line in parser.lines)
