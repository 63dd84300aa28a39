"""Leads CSV parsing: encodings, delimiters, broken rows with line numbers, duplicates, extra fields."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from cadence.core.leads import LeadsFileError, ProblemKind, normalize_address, parse_leads_csv

SAMPLE = (
    "Email;First Name;Last Name;Company;Time Zone;Consent;Role\n"
    "ann@acme.com;Ann;Smith;Acme;Europe/Berlin;yes;CTO\n"
    "björn@exämple.de;Björn;Ås;Exämple;;no;Chef\n"
)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (SAMPLE.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + SAMPLE.encode("utf-8"), "utf-8-sig"),
        (SAMPLE.encode("utf-16"), "utf-16"),
        (SAMPLE.encode("utf-16-be").join([b"\xfe\xff", b""]), "utf-16"),
        (SAMPLE.replace("björn@exämple.de", "bjorn@example.de").encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_are_sniffed(data: bytes, encoding: str) -> None:
    parsed = parse_leads_csv(data)
    assert parsed.encoding == encoding
    assert parsed.problems == ()
    assert [lead.first_name for lead in parsed.leads] == ["Ann", "Björn"]
    ann, bjorn = parsed.leads
    assert (ann.last_name, ann.company, ann.timezone, ann.consent) == ("Smith", "Acme", "Europe/Berlin", True)
    assert ann.fields == {"Role": "CTO"}
    assert bjorn.consent is False and bjorn.timezone is None and bjorn.last_name == "Ås"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_sniffed(delimiter: str) -> None:
    text = (
        delimiter.join(["email", "company"]) + "\n" + delimiter.join(["a@x.com", '"Acme, Inc; Ltd"']) + "\n"
    )
    parsed = parse_leads_csv(text.encode())
    assert parsed.delimiter == delimiter
    assert parsed.leads[0].company == "Acme, Inc; Ltd"


def test_broken_rows_are_reported_with_line_numbers_and_the_rest_is_kept() -> None:
    text = (
        "email,first_name,timezone,consent\n"  # line 1
        "ok1@x.com,A,,\n"  # 2
        "not-an-address,B,,\n"  # 3
        "ok2@x.com,C,Mars/Base,\n"  # 4
        "ok3@x.com,D,,maybe\n"  # 5
        "ok4@x.com,E\n"  # 6
        '"multi@x.com","line\nbreak",,\n'  # 7-8
        ",F,,\n"  # 9
        "OK1@X.com,dup,,\n"  # 10
        "\n"  # 11 (blank, ignored)
        "ok5@x.com,G,UTC,1\n"  # 12
    )
    parsed = parse_leads_csv(text.encode())
    assert [lead.email for lead in parsed.leads] == ["ok1@x.com", "multi@x.com", "ok5@x.com"]
    assert parsed.leads[1].first_name == "line\nbreak"
    problems = [(p.line, p.kind) for p in parsed.problems]
    assert problems == [
        (3, ProblemKind.INVALID_ADDRESS),
        (4, ProblemKind.BAD_TIMEZONE),
        (5, ProblemKind.BAD_CONSENT),
        (6, ProblemKind.COLUMN_COUNT),
        (9, ProblemKind.MISSING_EMAIL),
        (10, ProblemKind.DUPLICATE),
    ]
    assert str(parsed.problems[-1]) == "line 10: OK1@X.com already on line 2"
    assert parsed.problems[0].email == "not-an-address"


def test_trailing_empty_cells_are_not_a_broken_row() -> None:
    parsed = parse_leads_csv(b"email,company\na@x.com,Acme,,\n")
    assert parsed.problems == () and parsed.leads[0].company == "Acme"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"name,company\nAnn,Acme\n", "no email column")],
)
def test_a_file_without_an_email_column_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(LeadsFileError, match=message):
        parse_leads_csv(data)


ADDRESSES = [
    "ann@acme.com", "Ann.Smith+tag@Sub.Example.CO.UK", "a..b@x.com", ".a@x.com", "a.@x.com", "a@x",
    "a@-x.com", "a@x.invalid", "a@localhost", "björn@exämple.de", '"quoted local"@x.com', "a@x.c",
    "x" * 65 + "@x.com", "a@" + "b" * 250 + ".com", "a b@x.com", "a@[127.0.0.1]", "ann@acme.com.",
    "o'brien@x.ie", "user@xn--bcher-kva.de", "a@@x.com", "",
]  # fmt: skip


@pytest.mark.parametrize("address", ADDRESSES)
def test_fast_address_check_agrees_with_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalize_address(address)
    except ValueError:
        got = None
    assert got == expected
