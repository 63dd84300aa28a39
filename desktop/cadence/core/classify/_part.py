"""A small, tolerant MIME reader: the few things the classifier needs, several times faster than the
standard library's feed parser (which compiles a regular expression for every boundary it meets).

It never raises on malformed input: a missing boundary makes the body one text part, a broken
transfer encoding decodes as far as it can, an unknown charset is left to the caller's fallbacks."""

from __future__ import annotations

import binascii
import re

MAX_DEPTH = 8
MAX_PARTS = 200

_HEADER_NAME_RE = re.compile(rb"[!-9;-~]+[ \t]*:")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})


def _decode_header_bytes(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _split_head_by_line(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Header fields (unfolded, in order) and the body. Parsing stops at the first line that is not a
    header field, as mail readers do with a missing blank line."""
    start = 0
    if raw.startswith(b"From "):  # mbox separator line
        newline = raw.find(b"\n")
        start = newline + 1 if newline >= 0 else len(raw)
    blank = _BLANK_LINE_RE.search(raw, start)
    head_end, body_start = (blank.start(), blank.end()) if blank else (len(raw), len(raw))
    lines = raw[start:head_end].split(b"\n")
    headers: list[tuple[str, str]] = []
    name: bytes | None = None
    value_lines: list[bytes] = []
    consumed = start
    for line in lines:
        stripped = line[:-1] if line.endswith(b"\r") else line
        if stripped[:1] in (b" ", b"\t") and name is not None:
            value_lines.append(stripped)
            consumed += len(line) + 1
            continue
        colon = stripped.find(b":")
        if colon <= 0 or not _HEADER_NAME_RE.match(stripped):
            # the body starts without a blank line
            if name is not None:
                headers.append((_decode_header_bytes(name), _decode_header_bytes(b"\n".join(value_lines))))
            return headers, raw[consumed:]
        if name is not None:
            headers.append((_decode_header_bytes(name), _decode_header_bytes(b"\n".join(value_lines))))
        name = stripped[:colon].strip()
        value_lines = [stripped[colon + 1 :].lstrip(b" \t")]
        consumed += len(line) + 1
    if name is not None:
        headers.append((_decode_header_bytes(name), _decode_header_bytes(b"\n".join(value_lines))))
    return headers, raw[body_start:]


_FIELD_BREAK_RE = re.compile(rb"\r?\n(?![ \t])")


def _split_head(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Fast path: one split per field. Anything unusual (a body without a blank line, a first line that
    is a continuation) goes to the careful line-by-line reader."""
    start = 0
    if raw.startswith(b"From "):
        newline = raw.find(b"\n")
        start = newline + 1 if newline >= 0 else len(raw)
    blank = _BLANK_LINE_RE.search(raw, start)
    if blank is None or raw[start : start + 1] in (b" ", b"\t", b"\r", b"\n"):
        return _split_head_by_line(raw)
    headers: list[tuple[str, str]] = []
    for field in _FIELD_BREAK_RE.split(raw[start : blank.start()]):
        colon = field.find(b":")
        if colon <= 0:
            return _split_head_by_line(raw)
        name = field[:colon].rstrip(b" \t")
        if not name or b" " in name or b"\t" in name:
            return _split_head_by_line(raw)
        value = field[colon + 1 :].lstrip(b" \t").rstrip(b"\r")
        if b"\n" in value:
            value = value.replace(b"\r\n", b"\n")
        headers.append((_decode_header_bytes(name), _decode_header_bytes(value)))
    return headers, raw[blank.end() :]


class MimePart:
    """One entity: header fields, and either a body, sub-parts (multipart) or an enclosed message."""

    def __init__(
        self, raw: bytes, *, depth: int = 0, budget: list[int] | None = None, default_type: str = "text/plain"
    ) -> None:
        self._headers, self._body = _split_head(raw)
        self._index: dict[str, list[str]] = {}
        for field, value in self._headers:
            self._index.setdefault(field.lower(), []).append(value)
        self._depth = depth
        self._budget = budget if budget is not None else [MAX_PARTS]
        self._default_type = default_type
        self._children: list[MimePart] | None = None
        self._content_type: tuple[str, str] | None = None

    # --- header access (the email.message.Message subset the classifier uses) ---

    def keys(self) -> list[str]:
        return [name for name, _ in self._headers]

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def get(self, name: str, failobj: str | None = None) -> str | None:
        values = self._index.get(name.lower())
        return values[0] if values else failobj

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def get_all(self, name: str) -> list[str] | None:
        values = self._index.get(name.lower())
        return list(values) if values else None

    def _type_and_params(self) -> tuple[str, str]:
        if self._content_type is None:
            value = self.get("Content-Type") or ""
            main, _, params = value.partition(";")
            words = main.strip().lower().split()
            ctype = words[0] if words and "/" in words[0] else self._default_type
            self._content_type = (ctype, ";" + params if params else "")
        return self._content_type

    def get_content_type(self) -> str:
        return self._type_and_params()[0]

    def get_content_maintype(self) -> str:
        return self.get_content_type().partition("/")[0]

    def get_param(self, name: str) -> str | None:
        params = self._type_and_params()[1]
        if not params:
            return None
        wanted = name.lower()
        for match in _PARAM_RE.finditer(params):
            key = match.group(1).lower().rstrip("*")
            if key == wanted or key.startswith(wanted + "*"):
                if match.group(2) is not None:
                    return match.group(2).replace('\\"', '"')
                return (match.group(3) or "").strip()
        return None

    def get_content_charset(self) -> str | None:
        charset = self.get_param("charset")
        return charset.strip().lower() if charset else None

    # --- body ---

    def _parse_children(self) -> list[MimePart]:
        if self._children is not None:
            return self._children
        children: list[MimePart] = []
        ctype = self.get_content_type()
        if self._depth < MAX_DEPTH and self._budget[0] > 0:
            if ctype.startswith("multipart/"):
                boundary = self.get_param("boundary")
                if boundary:
                    subtype_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                    for chunk in _split_multipart(self._body, boundary.encode("utf-8", "replace")):
                        if self._budget[0] <= 0:
                            break
                        self._budget[0] -= 1
                        children.append(
                            MimePart(
                                chunk,
                                depth=self._depth + 1,
                                budget=self._budget,
                                default_type=subtype_default,
                            )
                        )
            elif ctype in _MESSAGE_TYPES and self._body.strip():
                self._budget[0] -= 1
                children.append(MimePart(self._decoded_bytes(), depth=self._depth + 1, budget=self._budget))
        self._children = children
        return children

    def is_multipart(self) -> bool:
        return bool(self._parse_children())

    def get_payload(self, decode: bool = False) -> list[MimePart] | str | bytes:
        children = self._parse_children()
        if children and not decode:
            return children
        if decode:
            return self._decoded_bytes()
        return self._body.decode("latin-1")

    def _decoded_bytes(self) -> bytes:
        encoding = (self.get("Content-Transfer-Encoding") or "").strip().lower()
        body = self._body
        if encoding == "base64":
            return _decode_base64(body)
        if encoding == "quoted-printable":
            try:
                return binascii.a2b_qp(body)
            except (binascii.Error, ValueError):
                return body
        return body


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = b"\n--" + boundary
    pieces = (b"\n" + body).split(delimiter)
    if len(pieces) == 1:
        return []  # no delimiter at all: the caller keeps the body as one text leaf
    # A line that merely starts with the boundary (an inner boundary that extends ours) is content.
    chunks: list[bytes] = []
    for piece in pieces[1:]:
        newline = piece.find(b"\n")
        first_line = piece[: newline if newline >= 0 else len(piece)].strip()
        if chunks and first_line and not first_line.startswith(b"--"):
            chunks[-1] += delimiter + piece
        else:
            chunks.append(piece)
    parts: list[bytes] = []
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break  # the close delimiter; what follows is the epilogue
        newline = chunk.find(b"\n")
        if newline < 0:
            continue
        part = chunk[newline + 1 :]
        if part.endswith(b"\r"):
            part = part[:-1]
        parts.append(part)
    return parts


def _decode_base64(body: bytes) -> bytes:
    try:
        return binascii.a2b_base64(body)
    except (binascii.Error, ValueError):
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            return binascii.a2b_base64(cleaned)
        except (binascii.Error, ValueError):
            return body


def parse_bytes(raw: bytes) -> MimePart:
    return MimePart(raw)
