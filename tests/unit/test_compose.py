"""The exact bytes Cadence submits."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadence.core.compose import ComposeError, OutgoingMessage, compose, new_message_id, normalise_address

WHEN = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
PLAIN_MESSAGE_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)


def _message(**overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "sender": "alice@sender.example",
        "sender_name": "Alice Ström",
        "recipient": "bob@acme.example",
        "recipient_name": "Bob Lee",
        "subject": "Quick question about Acme",
        "text": "Hi Bob,\n.\nA line starting with a dot above.\n",
        "message_id": "<cad-0123456789abcdef@sender.example>",
        "date": WHEN,
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _content(part: EmailMessage) -> str:
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def test_headers_and_crlf() -> None:
    raw = compose(_message())
    assert b"\n" not in raw.replace(b"\r\n", b"")  # every line ends in CRLF
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    mail = _parse(raw)
    assert mail["From"].addresses[0].display_name == "Alice Ström"
    assert mail["From"].addresses[0].addr_spec == "alice@sender.example"
    assert str(mail["To"]) == "Bob Lee <bob@acme.example>"
    assert str(mail["Subject"]) == "Quick question about Acme"
    assert mail["Message-ID"] == "<cad-0123456789abcdef@sender.example>"
    assert mail["Date"].datetime == WHEN
    assert mail["List-Unsubscribe"] == "<mailto:alice@sender.example?subject=unsubscribe>"
    assert mail["MIME-Version"] == "1.0"
    assert mail.get_content_type() == "text/plain"
    assert _content(mail) == "Hi Bob,\n.\nA line starting with a dot above.\n"


def test_no_automation_or_tracking_headers() -> None:
    raw = compose(_message(html="<p>Hi</p>"))
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    for name in (b"auto-submitted", b"precedence", b"x-mailer", b"x-auto-response-suppress", b"in-reply-to"):
        assert name not in head
    assert b"<img" not in raw.lower()


def test_html_alternative() -> None:
    mail = _parse(compose(_message(html="<p>Hi <b>Bob</b></p>")))
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert isinstance(parts[1], EmailMessage)
    assert _content(parts[1]) == "<p>Hi <b>Bob</b></p>\n"
    assert all(p["MIME-Version"] is None for p in parts)


def test_non_ascii_body_and_long_lines_are_encoded() -> None:
    text = "Grüße aus Köln — " + "x" * 1200 + "\n"
    raw = compose(_message(text=text))
    assert raw.isascii()
    assert _content(_parse(raw)) == text


def test_follow_up_threads() -> None:
    mail = _parse(
        compose(
            _message(
                in_reply_to="<cad-2@sender.example>",
                references=("<cad-1@sender.example>",),
                message_id="<cad-3@sender.example>",
            )
        )
    )
    assert mail["In-Reply-To"] == "<cad-2@sender.example>"
    assert mail["References"] == "<cad-1@sender.example> <cad-2@sender.example>"
    only_reply = _parse(compose(_message(in_reply_to="<cad-2@sender.example>")))
    assert only_reply["References"] == "<cad-2@sender.example>"


def test_message_id_is_passed_in_so_retries_are_identical() -> None:
    first = compose(_message())
    again = compose(_message())
    assert _parse(first)["Message-ID"] == _parse(again)["Message-ID"]


def test_new_message_id_shape() -> None:
    one = new_message_id("Alice@Sender.Example")
    two = new_message_id("alice@sender.example")
    assert re.fullmatch(r"<cad-[0-9a-f]{32}@sender\.example>", one)
    assert one != two
    assert new_message_id("a@bücher.example", token="t1") == "<cad-t1@xn--bcher-kva.example>"


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hi\r\nBcc: victim@example.org"},
        {"subject": "Hi\nthere"},
        {"sender_name": "Alice\r\nBcc: x@y.example"},
        {"recipient_name": "Bob\x00"},
        {"recipient": "bob@acme.example\r\nBcc: x@y.example"},
        {"recipient": "bob@acme.example, eve@evil.example"},
        {"recipient": "not-an-address"},
        {"recipient": "bob@localhost"},
        {"sender": "ü@sender.example"},
        {"message_id": "<no-at-sign>"},
        {"message_id": "<a@b>\r\nBcc: x@y.example"},
        {"in_reply_to": "not a message id"},
        {"date": datetime(2026, 1, 1, 9, 0)},
    ],
)
def test_bad_input_is_refused_with_a_clear_error(overrides: dict[str, object]) -> None:
    with pytest.raises(ComposeError) as info:
        compose(_message(**overrides))
    assert str(info.value)


def test_date_keeps_its_offset() -> None:
    cet = timezone(timedelta(hours=1))
    mail = _parse(compose(_message(date=datetime(2026, 1, 2, 10, 0, tzinfo=cet))))
    assert str(mail["Date"]).endswith("+0100")


def test_address_normalisation() -> None:
    assert normalise_address(" Bob@ACME.Example ") == "Bob@acme.example"
    assert normalise_address("bob@münchen.example") == "bob@xn--mnchen-3ya.example"


@settings(max_examples=300, deadline=None)
@given(subject=st.text(max_size=200), name=st.text(max_size=60))
def test_any_subject_and_name_round_trip_or_are_refused(subject: str, name: str) -> None:
    try:
        raw = compose(_message(subject=subject, recipient_name=name))
    except ComposeError:
        controls = [
            ch for ch in subject + name if ch in "\r\n\u2028\u2029" or unicodedata.category(ch) == "Cc"
        ]
        assert [ch for ch in controls if ch != "\t"]
        return
    assert raw.isascii()
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert sorted(names) == sorted(PLAIN_MESSAGE_HEADERS)
    mail = _parse(raw)
    # Equal up to white space: CPython's address parser adds a blank between adjacent encoded words
    # (RFC 2047 says to ignore it; mail clients do), so only the non-blank characters are compared.
    assert str(mail["Subject"]).split() == subject.split()
    assert "".join(mail["To"].addresses[0].display_name.split()) == "".join(name.split())
    assert mail["To"].addresses[0].addr_spec == "bob@acme.example"
