"""Merge fields with fallbacks, rendering for a lead, and header-injection safety.

Syntax: `{first_name}` inserts a field, `{first_name|there}` falls back to "there" when the lead has no
value, `{{` and `}}` write literal braces. Field names are matched without regard to case, spaces or
dashes (`{First Name}` is `first_name`). Anything that ends up in a header (subject, display names) may
not contain CR, LF or other control characters: such a value is refused, never cleaned up silently.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cadence.core.model import Lead, Step

BUILTIN_FIELDS = ("email", "first_name", "last_name", "full_name", "company", "domain")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]*\Z")


class TemplateError(ValueError):
    """A template cannot be parsed or rendered; the message says where and why."""


class HeaderInjectionError(TemplateError):
    """A value bound for a mail header contains a line break or another control character."""


@dataclass(frozen=True, slots=True)
class MergeField:
    name: str  # normalised (lower case, underscores)
    fallback: str | None  # None when the template gives none
    start: int  # offset of the opening brace in the template


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    body: str
    html_body: str | None = None


@functools.lru_cache(maxsize=4096)
def normalise_field_name(name: str) -> str:
    return re.sub(r"[\s.-]+", "_", name.strip()).lower()


# Every character check_header_text refuses: CR/LF, the other C0/C1 control characters (category Cc) except
# tab, and the Unicode line and paragraph separators. One search instead of a category lookup per character.
_HEADER_REFUSED = re.compile(
    "["
    + "".join(
        re.escape(chr(code))
        for code in range(0x100)
        if unicodedata.category(chr(code)) == "Cc" and chr(code) != "\t"
    )
    + "\u2028\u2029]"
)


def check_header_text(value: str, *, what: str) -> str:
    """Return `value` unchanged, or raise HeaderInjectionError if it holds CR/LF or a control character."""
    if _HEADER_REFUSED.search(value) is None:
        return value
    for index, char in enumerate(value):
        if char in "\r\n" or (unicodedata.category(char) == "Cc" and char != "\t") or char in "\u2028\u2029":
            kind = "a line break" if char in "\r\n\u2028\u2029" else f"control character U+{ord(char):04X}"
            raise HeaderInjectionError(f"{what} contains {kind} at position {index}; refused")
    return value


@functools.lru_cache(maxsize=256)  # a campaign renders the same few templates for every lead
def parse_template(template: str) -> tuple[str | MergeField, ...]:
    """Split a template into literal text and merge fields; raise TemplateError on bad syntax."""
    parts: list[str | MergeField] = []
    literal: list[str] = []
    index = 0
    length = len(template)
    while index < length:
        char = template[index]
        if char == "{":
            if template.startswith("{{", index):
                literal.append("{")
                index += 2
                continue
            close = template.find("}", index + 1)
            nested = template.find("{", index + 1)
            if close == -1 or (nested != -1 and nested < close):
                raise TemplateError(f"unclosed '{{' at position {index}; write '{{{{' for a literal brace")
            inner = template[index + 1 : close]
            name, bar, fallback = inner.partition("|")
            if not _NAME.match(name.strip()):
                raise TemplateError(f"'{{{inner}}}' at position {index} is not a merge field name")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(MergeField(normalise_field_name(name), fallback if bar else None, index))
            index = close + 1
        elif char == "}":
            if template.startswith("}}", index):
                literal.append("}")
                index += 2
                continue
            raise TemplateError(f"stray '}}' at position {index}; write '}}}}' for a literal brace")
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def template_fields(template: str) -> tuple[MergeField, ...]:
    return tuple(part for part in parse_template(template) if isinstance(part, MergeField))


def unknown_fields(templates: str | Iterable[str], *, columns: Iterable[str]) -> tuple[str, ...]:
    """Merge fields used by the templates that are neither built in nor among the lead columns."""
    if isinstance(templates, str):
        templates = (templates,)
    known = {normalise_field_name(column) for column in columns} | set(BUILTIN_FIELDS)
    unknown: list[str] = []
    for template in templates:
        for merge_field in template_fields(template):
            if merge_field.name not in known and merge_field.name not in unknown:
                unknown.append(merge_field.name)
    return tuple(unknown)


def lead_values(lead: Lead) -> dict[str, str]:
    """Every merge value of a lead: custom columns first, built-in fields win over same-named columns."""
    first_name, last_name = lead.first_name, lead.last_name
    if first_name.strip():
        full_name = f"{first_name} {last_name}" if last_name.strip() else first_name
    else:
        full_name = last_name if last_name.strip() else ""
    fields = lead.fields
    values = dict(zip(_normalised_names(tuple(fields)), fields.values(), strict=True)) if fields else {}
    values.update(
        email=lead.email,
        first_name=first_name,
        last_name=last_name,
        full_name=full_name,
        company=lead.company or values.get("company", ""),
        domain=lead.domain,
    )
    return values


@functools.lru_cache(maxsize=256)  # every lead of an import has the same columns
def _normalised_names(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalise_field_name(name) for name in names)


def missing_values(template: str, *, lead: Lead) -> tuple[str, ...]:
    """Fields without a fallback that would render empty for this lead (worth a look before sending)."""
    values = lead_values(lead)
    return tuple(
        merge_field.name
        for merge_field in template_fields(template)
        if merge_field.fallback is None and not values.get(merge_field.name, "").strip()
    )


def render(template: str, *, values: Mapping[str, str]) -> str:
    """Fill a template from normalised values; an empty or absent value takes the fallback (or "")."""
    return "".join(render_parts(template, values=values))


def render_parts(template: str, *, values: Mapping[str, str]) -> list[str]:
    """The pieces `render` joins, in order: each literal run of the template and each field's text."""
    out: list[str] = []
    for part in parse_template(template):
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.name, "")
        if not value.strip():
            value = part.fallback or ""
        out.append(value)
    return out


def render_subject(template: str, *, lead: Lead) -> str:
    subject = render(template, values=lead_values(lead)).strip()
    return check_header_text(subject, what="the subject")


def render_body(template: str, *, lead: Lead) -> str:
    return render(template, values=lead_values(lead))


def render_step(step: Step, *, lead: Lead) -> RenderedMessage:
    """Subject (header-safe), plain text and optional HTML of one campaign step for one lead."""
    values = lead_values(lead)
    subject = check_header_text(render(step.subject, values=values).strip(), what="the subject")
    body = render(step.body, values=values)
    html = render(step.html_body, values=_html_escaped(values)) if step.html_body is not None else None
    return RenderedMessage(subject=subject, body=body, html_body=html)


def _html_escaped(values: Mapping[str, str]) -> dict[str, str]:
    return {key: html.escape(value) for key, value in values.items()}
