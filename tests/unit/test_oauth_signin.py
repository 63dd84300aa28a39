"""What can be checked of the browser sign-in without a browser or the providers: the Google flow asks
for PKCE, offline access and mail scope; msal answers are read into a SignInResult or a clear OAuthError."""

from __future__ import annotations

import logging
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from cadence.adapters.oauth import (
    SignInResult,
    _msal_result,
    google_authorization_options,
    google_flow,
    store_sign_in,
)
from cadence.adapters.secrets import SecretRedactingFilter
from cadence.core.oauth import (
    AccessToken,
    OAuthError,
    OAuthErrorKind,
    OAuthProvider,
    TokenGrant,
    resolve_client_config,
)
from cadence.core.ports import SecretKind

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Clock:
    def now(self) -> datetime:
        return NOW


def test_google_flow_uses_pkce_offline_access_and_the_mail_scope() -> None:
    config = resolve_client_config(
        OAuthProvider.GOOGLE,
        environ={"CADENCE_GOOGLE_CLIENT_ID": "g-id", "CADENCE_GOOGLE_CLIENT_SECRET": "g-s"},
    )
    flow = google_flow(config)
    flow.redirect_uri = "http://localhost:54321/"
    url, _state = flow.authorization_url(**google_authorization_options("alice@gmail.com"))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith("https://accounts.google.com/o/oauth2/auth?")
    assert query["client_id"] == "g-id"
    assert query["scope"] == "https://mail.google.com/"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["login_hint"] == "alice@gmail.com"
    assert query["redirect_uri"] == "http://localhost:54321/"
    assert "g-s" not in url  # the client secret is only sent to the token endpoint
    assert "login_hint" not in google_authorization_options("")


def test_msal_success_becomes_a_sign_in_result() -> None:
    result = _msal_result(
        {
            "access_token": "AT",
            "refresh_token": "RT",
            "expires_in": 4000,
            "token_type": "Bearer",
            "id_token_claims": {"preferred_username": "alice@contoso.com"},
        },
        clock=Clock(),
    )
    assert result.provider is OAuthProvider.MICROSOFT
    assert result.username == "alice@contoso.com"
    assert result.grant.refresh_token == "RT"
    assert result.grant.access_token.expires_at == NOW + timedelta(seconds=4000)
    assert "RT" not in repr(result) and "AT" not in repr(result)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (None, OAuthErrorKind.CANCELLED),
        ({"error": "access_denied", "error_description": "The user cancelled."}, OAuthErrorKind.CANCELLED),
        (
            {"error": "invalid_grant", "error_description": "AADSTS65001: admin consent needed"},
            OAuthErrorKind.CONSENT_REQUIRED,
        ),
        ({"error": "server_error", "error_description": "AADSTS90033: busy"}, OAuthErrorKind.SERVER),
        ({"access_token": "AT", "expires_in": 3600}, OAuthErrorKind.SERVER),  # no refresh token
    ],
)
def test_msal_failures_are_explained(answer: dict[str, object] | None, kind: OAuthErrorKind) -> None:
    with pytest.raises(OAuthError) as caught:
        _msal_result(answer, clock=Clock())
    assert caught.value.kind is kind
    assert "Microsoft" in str(caught.value)


class _Secrets:
    def __init__(self) -> None:
        self.values: dict[tuple[str, SecretKind], str] = {}

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        return self.values.get((account, kind))

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.values[(account, kind)] = secret

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.values.pop((account, kind), None)

    async def delete_account(self, account: str) -> None:
        self.values.clear()


def _signed_in_as(username: str) -> SignInResult:
    return SignInResult(
        provider=OAuthProvider.MICROSOFT,
        username=username,
        grant=TokenGrant(
            access_token=AccessToken("access-AT-456", NOW + timedelta(hours=1)),
            refresh_token="refresh-RT-123",
        ),
    )


@pytest.mark.asyncio
async def test_store_sign_in_keeps_the_refresh_token_in_the_secret_store_only() -> None:
    secrets = _Secrets()
    redaction = SecretRedactingFilter()
    await store_sign_in(
        _signed_in_as("Alice@Contoso.com"), account="alice@contoso.com", secrets=secrets, redaction=redaction
    )
    assert secrets.values == {("alice@contoso.com", SecretKind.OAUTH_REFRESH_TOKEN): "refresh-RT-123"}
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "tokens %s %s", ("refresh-RT-123", "access-AT-456"), None
    )
    redaction.filter(record)
    assert record.getMessage() == "tokens [redacted] [redacted]"


@pytest.mark.asyncio
async def test_store_sign_in_refuses_another_account() -> None:
    secrets = _Secrets()
    with pytest.raises(OAuthError) as caught:
        await store_sign_in(_signed_in_as("bob@contoso.com"), account="alice@contoso.com", secrets=secrets)
    assert caught.value.kind is OAuthErrorKind.WRONG_ACCOUNT
    assert "bob@contoso.com" in str(caught.value) and "alice@contoso.com" in str(caught.value)
    assert secrets.values == {}
