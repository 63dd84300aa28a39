"""Leads from a CSV file's bytes: encoding and delimiter sniffed, broken rows reported, the rest kept.

Recognised columns (header names are matched loosely: case, spaces and dashes do not matter):
email (required), first_name, last_name, company, timezone (IANA name), consent (yes/no/true/false/1/0).
Any other column is kept in `Lead.fields` under its header as written.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from cadence.core.model import Lead
from cadence.core.pacing import is_valid_timezone

_LOCAL_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


@lru_cache(maxsize=65536)
def _checked_domain(domain: str) -> str:
    """The normalised domain, or ValueError. Cached: a leads file repeats few domains many times."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def normalize_address(address: str) -> str:
    """A syntactically valid address in normal form (domain lower-cased), or ValueError saying why.

    Same verdicts as email-validator (`check_deliverability=False`); plain ASCII addresses take a fast path
    that checks the local part by pattern and each distinct domain only once.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if (
        at
        and len(local) <= _MAX_LOCAL
        and len(address) <= _MAX_ADDRESS
        and _LOCAL_CHARS.fullmatch(local)
        and local[0] != "."
        and local[-1] != "."
        and ".." not in local
    ):
        try:
            return f"{local}@{_checked_domain(domain)}"
        except ValueError:
            pass
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


class ProblemKind(StrEnum):
    COLUMN_COUNT = "column_count"
    MISSING_EMAIL = "missing_email"
    INVALID_ADDRESS = "invalid_address"
    BAD_TIMEZONE = "bad_timezone"
    BAD_CONSENT = "bad_consent"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int  # 1-based line of the file where the row starts (the header is line 1)
    kind: ProblemKind
    message: str
    email: str | None = None  # the address as written, when the row had one

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class LeadsFile:
    leads: tuple[Lead, ...]
    problems: tuple[RowProblem, ...]
    columns: tuple[str, ...]  # the header as written
    delimiter: str
    encoding: str


class LeadsFileError(ValueError):
    """The file as a whole cannot be read as leads (no header, no email column, undecodable)."""


_ALIASES = {
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "e_mail_address": "email",
    "mail": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "company": "company",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "timezone": "timezone",
    "time_zone": "timezone",
    "tz": "timezone",
    "consent": "consent",
}
_CONSENT_VALUES = {
    "yes": True,
    "y": True,
    "true": True,
    "1": True,
    "no": False,
    "n": False,
    "false": False,
    "0": False,
}


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used: BOMs first (UTF-8, UTF-16), then UTF-8, then Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise LeadsFileError(f"the file starts like UTF-16 but is not: {exc.reason}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(header_line: str) -> str:
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _known_zone(name: str, cache: dict[str, bool]) -> bool:
    known = cache.get(name)
    if known is None:
        known = cache[name] = is_valid_timezone(name)
    return known


def _column_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_leads_csv(data: bytes) -> LeadsFile:
    """Parse a leads CSV. Broken rows are reported (with line numbers) and skipped; duplicates after the
    first (case-insensitive) are reported. Raises LeadsFileError only when the file has no usable header."""
    text, encoding = decode(data)
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise LeadsFileError("the file is empty") from None
    except csv.Error as exc:
        raise LeadsFileError(f"the header cannot be read: {exc}") from None
    header = [cell.strip() for cell in header]
    roles: dict[str, int] = {}
    extras: list[tuple[int, str]] = []
    for position, name in enumerate(header):
        role = _ALIASES.get(_column_key(name))
        if role is not None and role not in roles:
            roles[role] = position
        elif name:
            extras.append((position, name))
    if "email" not in roles:
        raise LeadsFileError(f"no email column in the header ({', '.join(header) or 'empty'})")
    width = len(header)
    email_at = roles["email"]
    first_at, last_at, company_at = roles.get("first_name"), roles.get("last_name"), roles.get("company")
    tz_at, consent_at = roles.get("timezone"), roles.get("consent")

    leads: list[Lead] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    zone_ok: dict[str, bool] = {}
    consent_values = _CONSENT_VALUES
    previous_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(previous_end + 1, ProblemKind.COLUMN_COUNT, f"unreadable row: {exc}"))
            previous_end = reader.line_num
            continue
        line = previous_end + 1
        previous_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            if len(row) > width and not any(cell.strip() for cell in row[width:]):
                row = row[:width]
            else:
                problems.append(
                    RowProblem(
                        line,
                        ProblemKind.COLUMN_COUNT,
                        f"{len(row)} columns where the header has {width}",
                        row[email_at].strip() if email_at < len(row) else None,
                    )
                )
                continue
        raw_email = row[email_at].strip()
        if not raw_email:
            problems.append(RowProblem(line, ProblemKind.MISSING_EMAIL, "no email address"))
            continue
        try:
            email = normalize_address(raw_email)
        except ValueError as exc:
            problems.append(
                RowProblem(
                    line, ProblemKind.INVALID_ADDRESS, f"invalid address {raw_email!r}: {exc}", raw_email
                )
            )
            continue
        timezone: str | None = None
        if tz_at is not None:
            timezone = row[tz_at].strip() or None
            if timezone is not None and not (zone_ok.get(timezone) or _known_zone(timezone, zone_ok)):
                problems.append(
                    RowProblem(line, ProblemKind.BAD_TIMEZONE, f"unknown time zone {timezone!r}", raw_email)
                )
                continue
        consent: bool | None = None
        if consent_at is not None:
            raw_consent = row[consent_at].strip().lower()
            if raw_consent:
                consent = consent_values.get(raw_consent)
                if consent is None:
                    problems.append(
                        RowProblem(
                            line,
                            ProblemKind.BAD_CONSENT,
                            f"consent must be yes/no/true/false/1/0, not {row[consent_at].strip()!r}",
                            raw_email,
                        )
                    )
                    continue
        key = email.lower()
        first_line_of_address = seen.get(key)
        if first_line_of_address is not None:
            problems.append(
                RowProblem(
                    line,
                    ProblemKind.DUPLICATE,
                    f"{raw_email} already on line {first_line_of_address}",
                    raw_email,
                )
            )
            continue
        seen[key] = line
        leads.append(
            Lead(
                email=email,
                first_name=row[first_at].strip() if first_at is not None else "",
                last_name=row[last_at].strip() if last_at is not None else "",
                company=row[company_at].strip() if company_at is not None else "",
                timezone=timezone,
                consent=consent,
                fields={name: row[position] for position, name in extras},
            )
        )
    return LeadsFile(tuple(leads), tuple(problems), tuple(header), delimiter, encoding)
