"""cadence.core.oauth: client configuration, token arithmetic, token responses, XOAUTH2 strings."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadence.core.oauth import (
    GOOGLE,
    MICROSOFT,
    AccessToken,
    OAuthError,
    OAuthErrorKind,
    OAuthProvider,
    expiry_from,
    parse_token_response,
    parse_xoauth2_error,
    provider_for_key,
    refresh_form,
    resolve_client_config,
    xoauth2_base64,
    xoauth2_string,
)

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_xoauth2_string_matches_the_sasl_format() -> None:
    assert xoauth2_string("a@b.test", "tok") == "user=a@b.test\x01auth=Bearer tok\x01\x01"
    assert base64.b64decode(xoauth2_base64("a@b.test", "tok")) == b"user=a@b.test\x01auth=Bearer tok\x01\x01"


@pytest.mark.parametrize(("user", "token"), [("", "t"), ("a@b", ""), ("a\x01@b", "t"), ("a@b", "t\r\nQUIT")])
def test_xoauth2_string_refuses_empty_or_control_characters(user: str, token: str) -> None:
    with pytest.raises(ValueError):
        xoauth2_string(user, token)


@given(st.text(min_size=1).filter(lambda s: not any(c in s for c in "\x01\r\n\x00")))
def test_xoauth2_string_round_trips(token: str) -> None:
    fields = xoauth2_string("u@x.test", token).split("\x01")
    assert fields[0] == "user=u@x.test" and fields[1] == f"auth=Bearer {token}" and fields[2:] == ["", ""]


def test_access_token_refresh_skew() -> None:
    token = AccessToken("t", NOW + timedelta(hours=1))
    assert not token.needs_refresh(NOW + timedelta(minutes=54, seconds=59))
    assert token.needs_refresh(NOW + timedelta(minutes=55))
    assert token.needs_refresh(NOW + timedelta(hours=2))
    assert not token.needs_refresh(NOW + timedelta(minutes=58), skew=timedelta(minutes=1))
    assert "t'" not in repr(token)  # the value is kept out of repr


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (3599, 3599),
        ("3599", 3599),
        (" 60 ", 60),
        (None, 3600),
        ("soon", 3600),
        (-5, 3600),
        (True, 3600),
        (1e12, 31536000),
    ],
)
def test_expiry_from_provider_values(expires_in: object, seconds: int) -> None:
    assert expiry_from(NOW, expires_in) == NOW + timedelta(seconds=seconds)


def test_resolve_client_config_prefers_the_setting_over_the_environment() -> None:
    env = {"CADENCE_MS_CLIENT_ID": "from-env"}
    assert resolve_client_config(OAuthProvider.MICROSOFT, environ=env).client_id == "from-env"
    assert resolve_client_config(OAuthProvider.MICROSOFT, environ=env, client_id="set").client_id == "set"
    config = resolve_client_config(
        OAuthProvider.MICROSOFT, environ=env, authority="https://login.example/tenant"
    )
    assert config.effective_token_url == "https://login.example/tenant/oauth2/v2.0/token"
    assert config.effective_authority == "https://login.example/tenant"


def test_missing_client_ids_are_explained() -> None:
    with pytest.raises(OAuthError) as caught:
        resolve_client_config(OAuthProvider.MICROSOFT, environ={})
    assert caught.value.kind is OAuthErrorKind.NOT_CONFIGURED
    assert "CADENCE_MS_CLIENT_ID" in str(caught.value)
    with pytest.raises(OAuthError) as caught:
        resolve_client_config(OAuthProvider.GOOGLE, environ={"CADENCE_GOOGLE_CLIENT_ID": "g"})
    assert "CADENCE_GOOGLE_CLIENT_SECRET" in str(caught.value)


def test_google_client_secret_stays_out_of_repr() -> None:
    config = resolve_client_config(
        OAuthProvider.GOOGLE,
        environ={"CADENCE_GOOGLE_CLIENT_ID": "g", "CADENCE_GOOGLE_CLIENT_SECRET": "shh-123"},
    )
    assert config.client_secret == "shh-123"
    assert "shh-123" not in repr(config)
    assert config.effective_token_url == GOOGLE.token_url


def test_refresh_forms_per_provider() -> None:
    ms = resolve_client_config(OAuthProvider.MICROSOFT, environ={"CADENCE_MS_CLIENT_ID": "m"})
    form = refresh_form(ms, "rt")
    assert (
        form["grant_type"] == "refresh_token" and form["refresh_token"] == "rt" and form["client_id"] == "m"
    )
    assert set(form["scope"].split()) == {*MICROSOFT.scopes, "offline_access"}
    google = resolve_client_config(
        OAuthProvider.GOOGLE, environ={"CADENCE_GOOGLE_CLIENT_ID": "g", "CADENCE_GOOGLE_CLIENT_SECRET": "s"}
    )
    assert refresh_form(google, "rt") == {
        "grant_type": "refresh_token",
        "refresh_token": "rt",
        "client_id": "g",
        "client_secret": "s",
    }
    with pytest.raises(ValueError):
        refresh_form(google, "")


def test_provider_keys_map_to_oauth_providers() -> None:
    assert provider_for_key("microsoft365") is OAuthProvider.MICROSOFT
    assert provider_for_key("outlook_com") is OAuthProvider.MICROSOFT
    assert provider_for_key("gmail") is OAuthProvider.GOOGLE
    assert provider_for_key("google_workspace") is OAuthProvider.GOOGLE
    assert provider_for_key("fastmail") is None and provider_for_key(None) is None


def _body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_good_token_response() -> None:
    grant = parse_token_response(
        200,
        _body({"access_token": "AT", "token_type": "Bearer", "expires_in": 3599, "refresh_token": "RT2"}),
        now=NOW,
        provider_name="Microsoft",
    )
    assert grant.access_token.value == "AT"
    assert grant.access_token.expires_at == NOW + timedelta(seconds=3599)
    assert grant.refresh_token == "RT2"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            "sign_in_required",
        ),
        (
            400,
            {"error": "interaction_required", "error_description": "AADSTS50076: MFA required"},
            "sign_in_required",
        ),
        (
            400,
            {"error": "invalid_grant", "error_description": "AADSTS65001: not consented"},
            "consent_required",
        ),
        (401, {"error": "invalid_client"}, "client_rejected"),
        (400, {"error": "unauthorized_client"}, "client_rejected"),
        (503, {"error": "temporarily_unavailable"}, "server"),
        (200, {"token_type": "Bearer"}, "server"),
        (200, {"access_token": "AT", "token_type": "MAC"}, "server"),
    ],
)
def test_failed_token_responses(status: int, body: dict[str, str], kind: str) -> None:
    with pytest.raises(OAuthError) as caught:
        parse_token_response(status, _body(body), now=NOW, provider_name="Microsoft")
    assert caught.value.kind.value == kind
    assert "Microsoft" in str(caught.value)


def test_non_json_answers_are_explained() -> None:
    with pytest.raises(OAuthError) as caught:
        parse_token_response(502, b"<html>Bad gateway</html>", now=NOW, provider_name="Google")
    assert "not JSON" in str(caught.value) and "502" in str(caught.value)


def test_parse_xoauth2_error_challenge() -> None:
    payload = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    assert parse_xoauth2_error(encoded) == payload
    assert parse_xoauth2_error(json.dumps(payload)) == payload
    assert parse_xoauth2_error("garbage") == {}
