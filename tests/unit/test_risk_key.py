"""risk_reasons remembers its answer per risk key: it must give exactly what a fresh scan of the text gives,
for texts made of the words, numbers, symbols and odd letters the patterns care about."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cadence.core.model import HoldReason
from cadence.core.risk import risk_key, risk_reasons, risk_reasons_of_parts, scan_risk_reasons

TOKENS = [
    # words the patterns spell out, in several cases
    "price", "Pricing", "PER", "month", "seat", "see", "attached", "Attachment", "terms", "and", "conditions",
    "let", "'", "s", "meet", "ci", "-", "joint", "booked", "nda", "contract", "euro", "euros", "USD", "eur",
    "http", "https", "www", "com", "io", "co", "uk", "href", "a", "<", ">", "=", "pièce", "jointe", "ça",
    "me", "va", "bon", "de", "commande",
    # words they do not, plain and with digits, and words with letters IGNORECASE folds onto ASCII
    "Hello", "Name123", "123abc", "a1b", "Acme", "x", "zz9", "prıce", "uſd", "\u212a", "José", "snake_case",
    # numbers, symbols and separators
    "1", "12", "1,000", "2.50", "$", "€", "£", ".", "/", "://", ":", ",", "!", "(", ")",
    " ", " ", "  ", "\n", "\t", "\u00a0",
]  # fmt: skip

texts = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)
pieces = st.lists(texts, max_size=5)


@settings(max_examples=400, deadline=None)
@given(subject=texts, body=texts, has_attachment=st.booleans())
def test_remembered_reasons_are_the_scanned_reasons(subject: str, body: str, has_attachment: bool) -> None:
    remembered = risk_reasons(subject=subject, body=body, has_attachment=has_attachment)
    assert remembered == scan_risk_reasons(subject=subject, body=body, has_attachment=has_attachment)
    # asked again (now from the memo) the answer is the same
    assert risk_reasons(subject=subject, body=body, has_attachment=has_attachment) == remembered


@settings(max_examples=400, deadline=None)
@given(subject_parts=pieces, body_parts=pieces)
def test_reasons_keyed_piece_by_piece_are_the_scanned_reasons(
    subject_parts: list[str], body_parts: list[str]
) -> None:
    expected = scan_risk_reasons(subject="".join(subject_parts).strip(), body="".join(body_parts))
    assert risk_reasons_of_parts(subject_parts, body_parts) == expected


def test_plain_words_share_a_key_and_the_words_that_matter_keep_theirs() -> None:
    assert risk_key("Hi Ann at Acme 42.") == risk_key("Hi Bartholomew at Zenith 7.") == "x x at x 0."
    assert risk_key("Name12 12Name 1a1") == "x0 0x 0x0"
    assert risk_key("PRICE per Month, see https://Acme.com/x") == "price per month, see https://x.com/x"
    assert risk_key("José prıce") == "José prıce"


def test_a_merge_value_that_adds_a_link_or_a_price_is_held_for_it() -> None:
    literal_subject, literal_body = ["Quick question"], ["Hi ", "{value}", ", see you soon.\n"]

    def reasons(value: str) -> tuple[HoldReason, ...]:
        body = [value if part == "{value}" else part for part in literal_body]
        return risk_reasons_of_parts(literal_subject, body)

    assert reasons("Ann") == ()
    assert reasons("Ann, see www.acme.example/demo") == (HoldReason.LINK,)
    assert reasons("Ann (USD 1,200 per seat)") == (HoldReason.PRICE,)
    # a value glued to the literal text around it is scanned with it
    assert risk_reasons_of_parts(["Our "], ["pri", "cing", " is attached"]) == (
        HoldReason.ATTACHMENT,
        HoldReason.PRICE,
    )
    assert risk_reasons_of_parts(["Our "], ["pri", "celess", " offer"]) == ()
