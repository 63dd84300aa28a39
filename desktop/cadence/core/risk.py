"""Drafts that should be read by the user before they go: links, attachments, prices, contracts, meetings.

`find_risks` returns every finding with the text that triggered it (the GUI shows them as warnings);
`risk_reasons` is the de-duplicated list of reasons the policy holds a draft for.
Keyword sets cover English, German, French, Spanish, Italian, Dutch and Portuguese.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def risk_reasons(*, subject: str, body: str, has_attachment: bool = False) -> tuple[HoldReason, ...]:
    return tuple(f.reason for f in find_risks(subject=subject, body=body, has_attachment=has_attachment))
