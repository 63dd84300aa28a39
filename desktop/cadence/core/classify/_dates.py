"""Return dates in auto-replies ('back on 9 November', 'bis 4. Dezember', '04/01/2027', '11月13日')."""

from __future__ import annotations

import re
from datetime import date, timedelta

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "january jan januar jänner janvier enero januari gennaio janeiro stycznia styczeń styczen januari "
        "ene gen",
        "february feb februar février fevrier febrero februari febbraio fevereiro lutego luty fev",
        "march mar märz maerz mars marzo maart março marco marca marzec mrt",
        "april apr avril abril aprile kwietnia kwiecień abr",
        "may mai mayo mei maggio maio maja maj",
        "june jun juni juin junio giugno junho czerwca czerwiec",
        "july jul juli juillet julio luglio julho lipca lipiec lug",
        "august aug août aout agosto augustus sierpnia sierpień augusti ago",
        "september sep sept septembre septiembre settembre setembro września wrzesień set",
        "october oct oktober octobre octubre ottobre outubro października październik okt out ott",
        "november nov novembre noviembre novembro listopada listopad",
        "december dec dezember décembre decembre diciembre dicembre dezembro grudnia grudzień dic dez",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS.setdefault(_name, _number)

_MONTH_ALT = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DAY = r"(\d{1,2})(?:st|nd|rd|th|er|e|º|\.)?"
# "9 November", "9-13 November", "9. Dezember", "8 de enero", "6 januari 2027"
DAY_MONTH_RE = re.compile(
    _DAY
    + r"(?:\s*(?:-|–|to|bis|au|al|a|t/m|tot)\s*"
    + _DAY
    + r")?\s+(?:de\s+|of\s+)?("
    + _MONTH_ALT
    + r")\.?(?:\s*,?\s*(?:de\s+)?(\d{4}))?(?![a-zà-ž])",
)
# "November 9", "December 14th, 2026"
MONTH_DAY_RE = re.compile(r"(?<![a-zà-ž])(" + _MONTH_ALT + r")\.?\s+" + _DAY + r"(?:,?\s*(\d{4}))?(?!\d)")
NUMERIC_RE = re.compile(r"(?<![\d/.])(\d{1,2})[./](\d{1,2})(?:[./](\d{2,4}))?(?![\d/])")
ISO_RE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
JA_RE = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})日(?:[^\d]{0,6}(\d{1,2})日)?")
RETURN_CUE_RE = re.compile(
    r"until|till|through|back|return|returning|from|bis|zurück|wieder|jusqu|retour|hasta|regres|vuelv|"
    r"t/m|tot|terug|fino|rientr|torn|até|volto|regress|do\b|wracam|powrót|t\.o\.m|tillbaka|åter|まで|戻",
    re.IGNORECASE,
)


def _make(year: int | None, month: int, day: int, sent_on: date | None) -> date | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if year is not None and year < 100:
        year += 2000
    if year is None:
        base = sent_on or date(2000, 1, 1)
        year = base.year
        try:
            candidate = date(year, month, day)
        except ValueError:
            return None
        if sent_on is not None and candidate < sent_on - timedelta(days=7):
            year += 1
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_return_date(text: str, *, sent_on: date | None) -> date | None:
    """The date the person is back: a date after a return cue ('until', 'bis', ...), else the latest one."""
    text = text.lower()  # the month expressions are compiled for lower-case text
    found: list[tuple[int, date]] = []
    for match in DAY_MONTH_RE.finditer(text):
        day = int(match.group(2) or match.group(1))
        month = _MONTHS.get(match.group(3).lower().rstrip("."))
        year = int(match.group(4)) if match.group(4) else None
        if month:
            made = _make(year, month, day, sent_on)
            if made:
                found.append((match.start(), made))
    for match in MONTH_DAY_RE.finditer(text):
        month = _MONTHS.get(match.group(1).lower())
        year = int(match.group(3)) if match.group(3) else None
        if month and match.group(1).lower() not in ("may", "mar", "jun", "set", "out", "ago"):
            made = _make(year, month, int(match.group(2)), sent_on)
            if made:
                found.append((match.start(), made))
    for match in ISO_RE.finditer(text):
        made = _make(int(match.group(1)), int(match.group(2)), int(match.group(3)), sent_on)
        if made:
            found.append((match.start(), made))
    for match in NUMERIC_RE.finditer(text):
        first, second = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
        # day first everywhere but the US; take month/day only when day-first is impossible
        made = _make(year, second, first, sent_on) or _make(year, first, second, sent_on)
        if made:
            found.append((match.start(), made))
    for match in JA_RE.finditer(text):
        year = int(match.group(1)) if match.group(1) else None
        day = int(match.group(4) or match.group(3))
        made = _make(year, int(match.group(2)), day, sent_on)
        if made:
            found.append((match.start(), made))
    if sent_on is not None:
        found = [
            (pos, d) for pos, d in found if sent_on - timedelta(days=1) <= d <= sent_on + timedelta(days=400)
        ]
    if not found:
        return None
    found.sort()
    cued = [d for pos, d in found if RETURN_CUE_RE.search(text[max(0, pos - 40) : pos])]
    return max(cued) if cued else max(d for _, d in found)
