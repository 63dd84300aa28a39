"""Legal basis for cold mail from the recipient's top-level domain.

Regions whose law asks for prior consent to commercial e-mail to individuals (EU/EEA ePrivacy rules and
GDPR, Switzerland, the UK's PECR, Canada's CASL, Australia's Spam Act, New Zealand's UEMA) map to
CONSENT; everywhere else Cadence records legitimate interest. This is a conservative default, not advice.
"""

from __future__ import annotations

from cadence.core.model import LegalBasis

EU_TLDS = frozenset(
    {
        "at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie", "it", "lv",
        "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se", "eu",
    }
)  # fmt: skip
EEA_EXTRA_TLDS = frozenset({"is", "li", "no"})
OTHER_CONSENT_TLDS = frozenset({"ch", "uk", "gb", "ca", "au", "nz"})
CONSENT_TLDS = EU_TLDS | EEA_EXTRA_TLDS | OTHER_CONSENT_TLDS


def top_level_domain(address_or_domain: str) -> str:
    domain = address_or_domain.rpartition("@")[2]
    return domain.strip().rstrip(".").rpartition(".")[2].lower()


def legal_basis_for(address_or_domain: str) -> LegalBasis:
    """CONSENT for consent regions (.de, .co.uk, .com.au, .co.nz, …), else legitimate interest."""
    if top_level_domain(address_or_domain) in CONSENT_TLDS:
        return LegalBasis.CONSENT
    return LegalBasis.LEGITIMATE_INTEREST


def needs_consent_hold(*, address: str, consent: bool | None) -> bool:
    """A lead in a consent region without recorded consent is never mailed automatically."""
    return legal_basis_for(address) is LegalBasis.CONSENT and consent is not True
