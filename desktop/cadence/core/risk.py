"""Drafts that should be read by the user before they go: links, attachments, prices, contracts, meetings.

`find_risks` returns every finding with the text that triggered it (the GUI shows them as warnings);
`risk_reasons` is the de-duplicated list of reasons the policy holds a draft for.
Keyword sets cover English, German, French, Spanish, Italian, Dutch and Portuguese.

`risk_reasons` runs for every draft of an import (100,000 leads), and the patterns cost 0.1-2 ms per draft.
A campaign's drafts differ only in their merge values, so the reasons are remembered per *risk key*: the
text with every plain ASCII word the patterns cannot tell apart replaced by one stand-in (see `risk_key`).
Two texts with the same key get the same reasons, so each template is scanned about once per shape of
merge values rather than once per lead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from cadence.core.model import HoldReason

_URL = re.compile(
    r"(?:\bhttps?://|\bwww\.)\S+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|de|fr|es|it|nl|uk|eu|ly|me|app|ai|info|biz)/\S*",
    re.IGNORECASE,
)
_HTML_LINK = re.compile(r"<a\s[^>]*href\s*=", re.IGNORECASE)

_CURRENCY_AMOUNT = re.compile(
    r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|cad|aud|sek|nok|dkk)\b)\s?\d[\d.,'\u00a0 ]*"
    r"|\d[\d.,'\u00a0]*\s?(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|cad|aud|sek|nok|dkk|euros?|dollars?|pounds?)\b)",
    re.IGNORECASE,
)


def _words(*phrases: str) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(phrase).replace(r"\ ", r"\s+") for phrase in phrases)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


_ATTACHMENT_WORDS = _words(
    "attached", "attachment", "see attached", "enclosed",
    "anbei", "im anhang", "anhang", "beigefügt",
    "ci-joint", "pièce jointe", "en pièce jointe",
    "adjunto", "archivo adjunto", "allegato", "in allegato",
    "bijgevoegd", "bijlage", "em anexo", "anexo",
)  # fmt: skip
_PRICE_WORDS = _words(
    "price", "prices", "pricing", "quote", "quotation", "discount", "invoice", "per month", "per seat",
    "preis", "preise", "angebot", "kostenvoranschlag", "rabatt", "rechnung",
    "prix", "tarif", "tarifs", "devis", "remise", "facture",
    "precio", "precios", "presupuesto", "cotización", "descuento", "factura",
    "prezzo", "prezzi", "preventivo", "sconto", "fattura",
    "prijs", "prijzen", "offerte", "korting", "factuur",
    "preço", "preços", "orçamento", "desconto", "fatura",
)  # fmt: skip
_CONTRACT_WORDS = _words(
    "contract", "agreement", "nda", "terms and conditions", "sign here", "signature", "purchase order",
    "vertrag", "vereinbarung", "unterschrift", "unterschreiben", "auftrag", "agb",
    "contrat", "signature", "bon de commande",
    "contrato", "acuerdo", "firma", "firmar",
    "contratto", "accordo", "firmare",
    "contract", "overeenkomst", "handtekening", "ondertekenen",
    "contrato", "assinatura", "assinar",
)  # fmt: skip
_MEETING_WORDS = _words(
    "meeting confirmed", "confirm the meeting", "see you on", "see you then", "works for me",
    "i accept", "accepted", "calendar invite", "invitation accepted", "let's meet", "booked",
    "termin bestätigt", "bis dann", "passt mir", "zusage", "ich nehme an", "wir sehen uns",
    "rendez-vous confirmé", "à bientôt le", "ça me va", "j'accepte",
    "reunión confirmada", "nos vemos", "me viene bien", "acepto",
    "riunione confermata", "ci vediamo", "va bene per me", "accetto",
    "afspraak bevestigd", "tot dan", "komt mij goed uit",
    "reunião confirmada", "até lá", "aceito",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RiskFinding:
    reason: HoldReason
    evidence: str  # the text that triggered it, or a short description


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(0).strip() if match else None


def find_risks(*, subject: str, body: str, has_attachment: bool = False) -> tuple[RiskFinding, ...]:
    """Every risky element of a draft, in a stable order (link, attachment, price, contract, meeting)."""
    text = f"{subject}\n{body}"
    findings: list[RiskFinding] = []
    link = _first(_URL, text) or _first(_HTML_LINK, text)
    if link:
        findings.append(RiskFinding(HoldReason.LINK, link))
    if has_attachment:
        findings.append(RiskFinding(HoldReason.ATTACHMENT, "the draft has a file attached"))
    else:
        mention = _first(_ATTACHMENT_WORDS, text)
        if mention:
            findings.append(RiskFinding(HoldReason.ATTACHMENT, mention))
    price = _first(_CURRENCY_AMOUNT, text) or _first(_PRICE_WORDS, text)
    if price:
        findings.append(RiskFinding(HoldReason.PRICE, price))
    contract = _first(_CONTRACT_WORDS, text)
    if contract:
        findings.append(RiskFinding(HoldReason.CONTRACT, contract))
    meeting = _first(_MEETING_WORDS, text)
    if meeting:
        findings.append(RiskFinding(HoldReason.MEETING, meeting))
    return tuple(findings)


def scan_risk_reasons(*, subject: str, body: str, has_attachment: bool = False) -> tuple[HoldReason, ...]:
    """The reasons of `find_risks`, scanned afresh (what `risk_reasons` remembers)."""
    return tuple(f.reason for f in find_risks(subject=subject, body=body, has_attachment=has_attachment))


# --- the risk key -----------------------------------------------------------------------------------------
# Why two texts with the same key get the same reasons: every pattern above sees a maximal run of word
# characters only through (1) its characters' classes (\w, \S, [a-z0-9-], \d), (2) the exact words it spells
# out (phrases, currency codes, "http", "www", top-level domains, "a" and "href"), and (3) for the digit parts
# of _CURRENCY_AMOUNT, whether the run starts with a digit (after a symbol or code) and whether it ends with
# one (before a symbol or code); a digit in the middle of a run is never followed by what a price needs.
# A plain ASCII letters-and-digits run that is none of those words is therefore interchangeable with any
# other run of the same digit shape: "x", "0", "0x", "x0" or "0x0". Phrases begin and end on whole runs
# ((?<!\w) … (?!\w)) and so do codes, schemes and top-level domains (\b or a following ':', '.' or '/'),
# except "href", which may end any run inside an <a> tag: a run containing it is kept. Runs with other
# characters (accents, '_', the letters ı, İ, ſ and K that IGNORECASE folds onto ASCII) are kept as written,
# and ASCII letters are lower-cased (every pattern ignores case).

_PATTERNS = (
    _URL, _HTML_LINK, _CURRENCY_AMOUNT, _ATTACHMENT_WORDS, _PRICE_WORDS, _CONTRACT_WORDS, _MEETING_WORDS
)  # fmt: skip


def _spelled_words(pattern: re.Pattern[str]) -> set[str]:
    """Every letters-and-digits word in a pattern's source, and without its last letter where a '?' makes
    that optional ("https?" spells "http" and "https"). A superset of what it matches literally."""
    words: set[str] = set()
    source = re.sub(r"\\.", " ", pattern.pattern)  # escapes (\b, \s, \d) are not words
    for word, optional in re.findall(r"([A-Za-z0-9]+)(\??)", source):
        words.add(word.lower())
        if optional:
            words.add(word[:-1].lower())
    return words


_SPELLED = frozenset(chain.from_iterable(_spelled_words(pattern) for pattern in _PATTERNS))
_WORD_RUN = re.compile(r"\w+")
_WORD_CHAR = re.compile(r"\w")
_RUN_KEYS: dict[str, str] = {}
_PIECE_KEYS: dict[str, tuple[str, bool, bool]] = {}
_REASONS: dict[tuple[str, bool], tuple[HoldReason, ...]] = {}
_MEMO_LIMIT = 16_384


def _run_key(run: str) -> str:
    if not (run.isascii() and run.isalnum()):
        return run
    lowered = run.lower()
    if lowered in _SPELLED or "href" in lowered:
        return lowered
    if lowered.isdigit():
        return "0"
    return ("0" if lowered[0].isdigit() else "") + "x" + ("0" if lowered[-1].isdigit() else "")


def _cached_run_key(match: re.Match[str]) -> str:
    run = match.group(0)
    key = _RUN_KEYS.get(run)
    if key is None:
        if len(_RUN_KEYS) >= _MEMO_LIMIT:
            _RUN_KEYS.clear()
        key = _RUN_KEYS[run] = _run_key(run)
    return key


def risk_key(text: str) -> str:
    """`text` with each plain word the risk patterns cannot tell from another replaced by a stand-in."""
    return _WORD_RUN.sub(_cached_run_key, text)


def _piece_entry(piece: str) -> tuple[str, bool, bool]:
    """A piece's risk key, and whether it starts and ends with a word character."""
    entry = _PIECE_KEYS.get(piece)
    if entry is None:
        key = _run_key(piece) if piece.isascii() and piece.isalnum() else risk_key(piece)
        starts = _WORD_CHAR.match(piece) is not None
        entry = (key, starts, _WORD_CHAR.match(piece, len(piece) - 1) is not None)
        if len(_PIECE_KEYS) >= _MEMO_LIMIT:
            _PIECE_KEYS.clear()
        _PIECE_KEYS[piece] = entry
    return entry


def _joined_key(pieces: Iterable[str]) -> str | None:
    """risk_key of the joined pieces, from each piece's own key (a template's literal text is keyed once,
    not per lead); None when a word runs across two pieces, as in "{first_name}son"."""
    keys: list[str] = []
    word_before = False
    for piece in pieces:
        if not piece:
            continue
        key, starts_with_word, ends_with_word = _PIECE_KEYS.get(piece) or _piece_entry(piece)
        if word_before and starts_with_word:
            return None
        keys.append(key)
        word_before = ends_with_word
    return "".join(keys)


def risk_reasons_of_parts(
    subject_parts: Sequence[str], body_parts: Sequence[str], *, has_attachment: bool = False
) -> tuple[HoldReason, ...]:
    """`risk_reasons` of subject "".join(subject_parts).strip() and body "".join(body_parts), the parts being
    what templates.render_parts gives: the same answer, cheaper for a long template."""
    subject_key = _joined_key(subject_parts)
    body_key = _joined_key(body_parts)
    if subject_key is None or body_key is None:
        return risk_reasons(
            subject="".join(subject_parts).strip(), body="".join(body_parts), has_attachment=has_attachment
        )
    # risk_key leaves white space alone and never puts it at either end of a word, so strip commutes with it
    return _reasons_for_key(f"{subject_key.strip()}\n{body_key}", has_attachment)


def risk_reasons(*, subject: str, body: str, has_attachment: bool = False) -> tuple[HoldReason, ...]:
    """The reasons of `find_risks`, remembered per risk key (the same answer, computed once per shape)."""
    return _reasons_for_key(risk_key(f"{subject}\n{body}"), has_attachment)


def _reasons_for_key(text_key: str, has_attachment: bool) -> tuple[HoldReason, ...]:
    key = (text_key, has_attachment)
    reasons = _REASONS.get(key)
    if reasons is None:
        if len(_REASONS) >= _MEMO_LIMIT:
            _REASONS.clear()
        subject_key, _newline, body_key = key[0].partition("\n")
        reasons = _REASONS[key] = tuple(
            f.reason for f in find_risks(subject=subject_key, body=body_key, has_attachment=has_attachment)
        )
    return reasons
