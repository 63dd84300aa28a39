"""Legal basis from the recipient's top-level domain, and risk findings in drafts."""

from __future__ import annotations

import pytest

from cadence.core.legal import legal_basis_for, needs_consent_hold
from cadence.core.model import HoldReason, LegalBasis
from cadence.core.risk import find_risks, risk_reasons

CONSENT_ADDRESSES = [
    "a@firma.de", "a@societe.fr", "a@empresa.es", "a@azienda.it", "a@bedrijf.nl", "a@firma.pl", "a@x.se",
    "a@x.at", "a@x.be", "a@x.bg", "a@x.hr", "a@x.cy", "a@x.cz", "a@x.dk", "a@x.ee", "a@x.fi", "a@x.gr",
    "a@x.hu", "a@x.ie", "a@x.lv", "a@x.lt", "a@x.lu", "a@x.mt", "a@x.pt", "a@x.ro", "a@x.sk", "a@x.si",
    "a@x.eu", "a@x.is", "a@x.li", "a@x.no", "a@x.ch", "a@x.uk", "a@company.co.uk", "a@x.ca",
    "a@x.au", "a@company.com.au", "a@x.nz", "a@company.co.nz", "a@Company.DE", "a@sub.domain.de.",
]  # fmt: skip
OTHER_ADDRESSES = ["a@x.com", "a@x.us", "a@x.io", "a@x.jp", "a@x.br", "a@x.in", "a@x.org", "a@x.de.com"]


@pytest.mark.parametrize("address", CONSENT_ADDRESSES)
def test_consent_regions(address: str) -> None:
    assert legal_basis_for(address) is LegalBasis.CONSENT


@pytest.mark.parametrize("address", OTHER_ADDRESSES)
def test_everywhere_else_is_legitimate_interest(address: str) -> None:
    assert legal_basis_for(address) is LegalBasis.LEGITIMATE_INTEREST


def test_consent_hold_needs_recorded_consent() -> None:
    assert needs_consent_hold(address="a@x.de", consent=None)
    assert needs_consent_hold(address="a@x.de", consent=False)
    assert not needs_consent_hold(address="a@x.de", consent=True)
    assert not needs_consent_hold(address="a@x.com", consent=None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Have a look at www.acme.io/demo", HoldReason.LINK),
        ('<a href="https://x.example">here</a>', HoldReason.LINK),
        ("Details anbei im Anhang.", HoldReason.ATTACHMENT),
        ("Veuillez trouver ci-joint notre brochure.", HoldReason.ATTACHMENT),
        ("It comes to 1.200 EUR a month.", HoldReason.PRICE),
        ("Ich schicke Ihnen gern ein Angebot.", HoldReason.PRICE),
        ("Le devis suit demain.", HoldReason.PRICE),
        ("Our $99 plan", HoldReason.PRICE),
        ("Den Vertrag unterschreiben wir morgen.", HoldReason.CONTRACT),
        ("Please sign the NDA first.", HoldReason.CONTRACT),
        ("Thursday works for me, see you then.", HoldReason.MEETING),
        ("Der Termin bestätigt: bis dann!", HoldReason.MEETING),
        ("Perfecto, nos vemos el lunes.", HoldReason.MEETING),
    ],
)
def test_risky_text_is_found(text: str, reason: HoldReason) -> None:
    assert reason in risk_reasons(subject="Hello", body=text)


def test_plain_text_has_no_risk_and_findings_carry_evidence() -> None:
    assert (
        risk_reasons(subject="Quick question", body="Hi Ann, are you the right person for logistics?") == ()
    )
    findings = find_risks(subject="Offer", body="See https://acme.example/x for pricing", has_attachment=True)
    assert [f.reason for f in findings] == [HoldReason.LINK, HoldReason.ATTACHMENT, HoldReason.PRICE]
    assert findings[0].evidence == "https://acme.example/x"
    assert findings[2].evidence.lower() == "pricing"
