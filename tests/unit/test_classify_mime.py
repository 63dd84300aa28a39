"""The classifier's own tolerant MIME reader (cadence.core.classify._part)."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from cadence.core.classify import _mime, classify
from cadence.core.classify._part import MimePart
from cadence.core.model import InboundKind


def test_headers_unfold_and_lookup_is_case_insensitive() -> None:
    part = MimePart(b"Subject: one\r\n two\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody\r\n")
    assert part.get("subject") == "one\n two"
    assert part.get_all("X-A") == ["1", "2"]
    assert part.get("missing") is None
    assert part.get_payload() == "body\r\n"


def test_mbox_from_line_and_missing_blank_line() -> None:
    part = MimePart(b"From someone Tue Nov 3 10:00:00 2026\nSubject: hi\nThis line starts the body.\nmore\n")
    assert part.keys() == ["Subject"]
    assert part.get_payload() == "This line starts the body.\nmore\n"


def test_headers_only_and_no_headers() -> None:
    assert MimePart(b"Subject: only headers").get("Subject") == "only headers"
    assert MimePart(b"just some text\nwithout headers\n").keys() == []


def test_nested_multipart_whose_inner_boundary_extends_the_outer_one() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\n"
        b'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n'
        b"--b2\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--b2\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
        b"--b2--\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"%PDF-1.4")
        + b"--b--\r\n"
    )
    leaves = _mime.leaves(MimePart(raw))
    assert [_mime.content_type(p) for p in leaves] == ["text/plain", "text/html", "application/pdf"]
    assert leaves[2].get_payload(decode=True) == b"%PDF-1.4"
    assert _mime.decode_part(leaves[0]) == "plain"


def test_missing_boundary_keeps_the_body_as_text() -> None:
    part = MimePart(b'Content-Type: multipart/mixed; boundary="nope"\r\n\r\nall the text\r\n')
    assert not part.is_multipart()
    assert "all the text" in _mime.decode_part(part)


def test_broken_encodings_decode_as_far_as_possible() -> None:
    part = MimePart(
        b"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"SGVsbG8g!!d29ybGQ=\r\n"
    )
    assert _mime.decode_part(part) == "Hello world"
    qp = MimePart(
        b"Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=latin-1"
        b"\r\n\r\nCaf=E9 =\r\nau lait"
    )
    assert _mime.decode_part(qp) == "Café au lait"


def test_encoded_words_in_headers() -> None:
    part = MimePart(b"Subject: =?UTF-8?B?QWJ3ZXNlbmhlaXQ=?= =?ISO-8859-1?Q?_bis_M=E4rz?=\r\n\r\n")
    assert _mime.header_text(part, "Subject") == "Abwesenheit bis März"


def test_enclosed_message_is_parsed() -> None:
    raw = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <orig@x.test>\r\nTo: a@b.test\r\n\r\nhi\r\n"
        b"--r--\r\n"
    )
    enclosed = _mime.leaves(MimePart(raw))[0]
    payload = enclosed.get_payload()
    assert isinstance(payload, list) and payload[0].get("Message-ID") == "<orig@x.test>"


_SAMPLE = (
    b"From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered Mail\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\n<a@b.test>: 550 5.1.1 user unknown\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\n"
    b"Action: failed\r\nStatus: 5.1.1\r\n--B--\r\n"
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_break_the_classifier(raw: bytes) -> None:
    verdict = classify(raw)
    assert isinstance(verdict.kind, InboundKind)
    assert not (verdict.error or "").startswith("classifier error"), verdict.error


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(_SAMPLE)), st.binary(max_size=40), st.integers(0, 2))
def test_mangled_reports_never_break_the_classifier(position: int, junk: bytes, mode: int) -> None:
    if mode == 0:
        raw = _SAMPLE[:position]
    elif mode == 1:
        raw = _SAMPLE[:position] + junk + _SAMPLE[position:]
    else:
        raw = _SAMPLE[:position] + junk
    verdict = classify(raw)
    assert not (verdict.error or "").startswith("classifier error"), verdict.error
