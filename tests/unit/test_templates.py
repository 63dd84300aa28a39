"""Merge fields, fallbacks, escaping and header-injection safety."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadence.core.model import Lead, Step
from cadence.core.templates import (
    HeaderInjectionError,
    TemplateError,
    check_header_text,
    missing_values,
    parse_template,
    render_body,
    render_step,
    render_subject,
    template_fields,
    unknown_fields,
)

ANN = Lead(
    email="ann@acme.example", first_name="Ann", last_name="Lee", company="Acme", fields={"Role": "CTO"}
)
NAMELESS = Lead(email="x@corp.example")


def test_fields_and_fallbacks() -> None:
    template = "Hi {first_name|there}, how is {company|your team}? {role}"
    assert render_body(template, lead=ANN) == "Hi Ann, how is Acme? CTO"
    assert render_body(template, lead=NAMELESS) == "Hi there, how is your team? "


def test_whitespace_only_value_takes_the_fallback() -> None:
    lead = Lead(email="a@b.example", first_name="   ")
    assert render_body("Hi {first_name|there}", lead=lead) == "Hi there"


def test_builtin_fields() -> None:
    body = render_body("{full_name} <{email}> at {domain}", lead=ANN)
    assert body == "Ann Lee <ann@acme.example> at acme.example"


def test_field_names_ignore_case_spaces_and_dashes() -> None:
    lead = Lead(email="a@b.example", fields={"Deal Size": "big", "lead-source": "fair"})
    assert render_body("{deal size}/{DEAL_SIZE}/{Lead-Source}", lead=lead) == "big/big/fair"


def test_double_braces_are_literal() -> None:
    assert render_body('{{first_name}} is {first_name}; json: {{"a": 1}}', lead=ANN) == (
        '{first_name} is Ann; json: {"a": 1}'
    )


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("Hi {first_name", "unclosed"),
        ("Hi first_name}", "stray"),
        ("Hi {}", "not a merge field"),
        ("Hi {first {name}}", "unclosed"),
        ("Hi {1abc}", "not a merge field"),
    ],
)
def test_syntax_errors_say_where(template: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment) as info:
        parse_template(template)
    assert "position" in str(info.value)


def test_unknown_fields_are_listed_once_in_order() -> None:
    templates = ["Hi {first_name}, {favourite_colour}", "{Favourite Colour} {budget|?} {Role}"]
    assert unknown_fields(templates, columns=["role", "email"]) == ("favourite_colour", "budget")
    assert unknown_fields("{company}", columns=[]) == ()


def test_missing_values_flags_fields_without_fallback() -> None:
    template = "Hi {first_name}, {company|your team} {last_name}"
    assert missing_values(template, lead=NAMELESS) == ("first_name", "last_name")
    assert missing_values(template, lead=ANN) == ()
    assert [f.name for f in template_fields(template)] == ["first_name", "company", "last_name"]


@pytest.mark.parametrize(
    "evil", ["Ann\r\nBcc: all@victim.example", "Ann\nX: y", "Ann\rX", "A\x00nn", "A\u2028nn"]
)
def test_merge_values_cannot_inject_a_header(evil: str) -> None:
    lead = Lead(email="a@b.example", first_name=evil)
    with pytest.raises(HeaderInjectionError, match="the subject contains"):
        render_subject("Hello {first_name}", lead=lead)
    # the same value is harmless in the body
    assert evil in render_body("Hello {first_name}", lead=lead)


def test_subject_template_itself_with_a_newline_is_refused() -> None:
    with pytest.raises(HeaderInjectionError):
        render_step(Step(index=1, subject="Hi\nBcc: x@y.example", body="b"), lead=ANN)


def test_render_step_escapes_values_in_html_only() -> None:
    lead = Lead(email="a@b.example", company="<b>Smith & Sons</b>")
    step = Step(index=1, subject="About {company}", body="Hi {company}", html_body="<p>Hi {company}</p>")
    rendered = render_step(step, lead=lead)
    assert rendered.subject == "About <b>Smith & Sons</b>"
    assert rendered.body == "Hi <b>Smith & Sons</b>"
    assert rendered.html_body == "<p>Hi &lt;b&gt;Smith &amp; Sons&lt;/b&gt;</p>"
    assert render_step(Step(index=1, subject="s", body="b"), lead=lead).html_body is None


def test_tab_is_allowed_in_headers() -> None:
    assert check_header_text("a\tb", what="x") == "a\tb"


@given(st.text(max_size=40))
def test_a_rendered_subject_never_carries_a_line_break(value: str) -> None:
    lead = Lead(email="a@b.example", first_name=value)
    try:
        subject = render_subject("Hi {first_name|there} from {company|us}", lead=lead)
    except HeaderInjectionError:
        assert any(ch in value for ch in "\r\n\u2028\u2029") or any(
            ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in value if ch != "\t"
        )
        return
    assert "\r" not in subject and "\n" not in subject


@given(st.text(max_size=80))
def test_any_template_parses_or_gives_a_template_error(template: str) -> None:
    try:
        parts = parse_template(template)
    except TemplateError as exc:
        assert "position" in str(exc)
        return
    rendered = render_body(template, lead=ANN)
    assert isinstance(rendered, str)
    assert all(isinstance(part, str) or part.name for part in parts)
