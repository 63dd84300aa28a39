"""OAuth2 for mail (XOAUTH2 over SMTP and IMAP): providers, client configuration, token arithmetic.

Pure: no I/O, the clock is passed in. The browser sign-in and the HTTPS calls live in
`cadence.adapters.oauth`. Refresh tokens belong in the OS keyring (SecretKind.OAUTH_REFRESH_TOKEN); access
tokens live in memory only and are refreshed `REFRESH_SKEW` before they expire.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

REFRESH_SKEW = timedelta(minutes=5)
DEFAULT_LIFETIME = timedelta(hours=1)  # when a token response leaves `expires_in` out

ENV_MS_CLIENT_ID = "CADENCE_MS_CLIENT_ID"
ENV_GOOGLE_CLIENT_ID = "CADENCE_GOOGLE_CLIENT_ID"
ENV_GOOGLE_CLIENT_SECRET = "CADENCE_GOOGLE_CLIENT_SECRET"


class OAuthProvider(StrEnum):
    MICROSOFT = "microsoft"
    GOOGLE = "google"


class AuthMethod(StrEnum):
    """How an account signs in to SMTP and IMAP."""

    PASSWORD = "password"  # password or app password (AUTH PLAIN/LOGIN, IMAP LOGIN)
    OAUTH_MICROSOFT = "oauth_microsoft"  # XOAUTH2 with a Microsoft Entra ID token
    OAUTH_GOOGLE = "oauth_google"  # XOAUTH2 with a Google token


@dataclass(frozen=True, slots=True)
class ProviderEndpoints:
    provider: OAuthProvider
    name: str
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]  # what the browser sign-in asks for
    refresh_scopes: tuple[str, ...]  # what a refresh_token grant asks for ("" = leave the parameter out)
    authority: str = ""  # Microsoft only (msal)


MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/common"
MICROSOFT_SCOPES = (
    "https://outlook.office.com/SMTP.Send",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)

MICROSOFT = ProviderEndpoints(
    provider=OAuthProvider.MICROSOFT,
    name="Microsoft",
    authorize_url=f"{MICROSOFT_AUTHORITY}/oauth2/v2.0/authorize",
    token_url=f"{MICROSOFT_AUTHORITY}/oauth2/v2.0/token",
    scopes=MICROSOFT_SCOPES,  # msal adds offline_access, openid and profile itself
    refresh_scopes=(*MICROSOFT_SCOPES, "offline_access"),
    authority=MICROSOFT_AUTHORITY,
)
GOOGLE = ProviderEndpoints(
    provider=OAuthProvider.GOOGLE,
    name="Google",
    authorize_url="https://accounts.google.com/o/oauth2/auth",
    token_url="https://oauth2.googleapis.com/token",
    scopes=GOOGLE_SCOPES,
    refresh_scopes=(),  # Google keeps the scopes of the grant
)
ENDPOINTS: Mapping[OAuthProvider, ProviderEndpoints] = {
    OAuthProvider.MICROSOFT: MICROSOFT,
    OAuthProvider.GOOGLE: GOOGLE,
}

_PROVIDER_BY_KEY = {
    "microsoft365": OAuthProvider.MICROSOFT,
    "outlook_com": OAuthProvider.MICROSOFT,
    "gmail": OAuthProvider.GOOGLE,
    "google_workspace": OAuthProvider.GOOGLE,
}


def provider_for_key(provider_key: str | None) -> OAuthProvider | None:
    """The OAuth provider of an autoconfig provider key (`MailSetup.provider_key`), if it has one."""
    return _PROVIDER_BY_KEY.get(provider_key or "")


def provider_for_method(method: AuthMethod) -> OAuthProvider | None:
    return {
        AuthMethod.OAUTH_MICROSOFT: OAuthProvider.MICROSOFT,
        AuthMethod.OAUTH_GOOGLE: OAuthProvider.GOOGLE,
    }.get(method)


# --- errors ------------------------------------------------------------------------------------------------


class OAuthErrorKind(StrEnum):
    NOT_CONFIGURED = "not_configured"  # no client id for this provider
    SIGN_IN_REQUIRED = "sign_in_required"  # no refresh token, or it was revoked / expired (invalid_grant)
    CLIENT_REJECTED = "client_rejected"  # invalid_client / unauthorized_client: the app registration
    CONSENT_REQUIRED = "consent_required"  # an administrator must approve the app (AADSTS65001, ...)
    CANCELLED = "cancelled"  # the user closed the browser or denied access
    WRONG_ACCOUNT = "wrong_account"  # signed in as someone else than the account being set up
    NETWORK = "network"  # could not reach the token endpoint, or it timed out
    KEYRING = "keyring"  # the refresh token could not be read from the OS keyring (locked, no backend)
    SERVER = "server"  # the token endpoint answered something unusable


class OAuthError(Exception):
    """An OAuth step failed; `str(error)` is a sentence for the user (never contains a token)."""

    def __init__(self, message: str, *, kind: OAuthErrorKind) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def needs_sign_in(self) -> bool:
        return self.kind in {
            OAuthErrorKind.SIGN_IN_REQUIRED,
            OAuthErrorKind.CANCELLED,
            OAuthErrorKind.WRONG_ACCOUNT,
        }


# --- client configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OAuthClientConfig:
    """Everything needed to sign in and refresh for one provider. Google's "installed app" secret is not
    really secret (it ships in every copy of the app), but it is still kept out of logs."""

    endpoints: ProviderEndpoints
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    token_url: str = ""  # overrides endpoints.token_url (tests, sovereign clouds, a single tenant)
    authority: str = ""  # overrides endpoints.authority (Microsoft: a tenant id instead of "common")

    @property
    def provider(self) -> OAuthProvider:
        return self.endpoints.provider

    @property
    def effective_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        if self.authority and self.provider is OAuthProvider.MICROSOFT:
            return f"{self.authority.rstrip('/')}/oauth2/v2.0/token"
        return self.endpoints.token_url

    @property
    def effective_authority(self) -> str:
        return self.authority or self.endpoints.authority


def resolve_client_config(
    provider: OAuthProvider,
    *,
    environ: Mapping[str, str],
    client_id: str | None = None,
    client_secret: str | None = None,
    token_url: str | None = None,
    authority: str | None = None,
) -> OAuthClientConfig:
    """The client for `provider`: an explicit setting wins over the environment variable.

    Raises OAuthError(NOT_CONFIGURED) with a sentence naming the setting and the variable."""
    endpoints = ENDPOINTS[provider]
    if provider is OAuthProvider.MICROSOFT:
        chosen_id = (client_id or environ.get(ENV_MS_CLIENT_ID, "")).strip()
        chosen_secret = None
        variables = ENV_MS_CLIENT_ID
    else:
        chosen_id = (client_id or environ.get(ENV_GOOGLE_CLIENT_ID, "")).strip()
        chosen_secret = (client_secret or environ.get(ENV_GOOGLE_CLIENT_SECRET, "")).strip() or None
        variables = f"{ENV_GOOGLE_CLIENT_ID} and {ENV_GOOGLE_CLIENT_SECRET}"
    if not chosen_id:
        raise OAuthError(
            f"Signing in with {endpoints.name} needs an OAuth client id. Enter it in Settings → Accounts "
            f"(OAuth client) or set {variables} in the environment.",
            kind=OAuthErrorKind.NOT_CONFIGURED,
        )
    if provider is OAuthProvider.GOOGLE and not chosen_secret:
        raise OAuthError(
            "Signing in with Google needs the OAuth client secret of the desktop app registration "
            f"(Google calls it secret, but installed apps ship it). Set {ENV_GOOGLE_CLIENT_SECRET}.",
            kind=OAuthErrorKind.NOT_CONFIGURED,
        )
    url = (token_url or "").strip()
    if url and urllib.parse.urlsplit(url).scheme != "https":
        raise OAuthError(
            f"The token endpoint must be an https:// address, not {url!r}.",
            kind=OAuthErrorKind.NOT_CONFIGURED,
        )
    return OAuthClientConfig(
        endpoints=endpoints,
        client_id=chosen_id,
        client_secret=chosen_secret,
        token_url=url,
        authority=(authority or "").strip(),
    )


# --- tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: datetime  # aware UTC

    def needs_refresh(self, now: datetime, *, skew: timedelta = REFRESH_SKEW) -> bool:
        return now >= self.expires_at - skew


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful token endpoint answer."""

    access_token: AccessToken
    refresh_token: str | None = field(default=None, repr=False)  # a rotated one (Microsoft), or None
    scope: str = ""


def expiry_from(now: datetime, expires_in: object) -> datetime:
    """When a token with `expires_in` seconds (number or numeric string, as providers send) expires."""
    seconds: float | None = None
    if isinstance(expires_in, bool):
        seconds = None
    elif isinstance(expires_in, int | float):
        seconds = float(expires_in)
    elif isinstance(expires_in, str):
        try:
            seconds = float(expires_in.strip())
        except ValueError:
            seconds = None
    if seconds is None or seconds != seconds or seconds <= 0:  # NaN or missing: assume the usual hour
        return now + DEFAULT_LIFETIME
    return now + timedelta(seconds=min(seconds, 86_400.0 * 365))


def refresh_form(config: OAuthClientConfig, refresh_token: str) -> dict[str, str]:
    """The form fields of a refresh_token grant (RFC 6749 §6)."""
    if not refresh_token:
        raise ValueError("a refresh token is needed")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": config.client_id,
    }
    if config.client_secret:
        form["client_secret"] = config.client_secret
    if config.endpoints.refresh_scopes:
        form["scope"] = " ".join(config.endpoints.refresh_scopes)
    return form


def encode_form(form: Mapping[str, str]) -> bytes:
    return urllib.parse.urlencode(form).encode("ascii")


_CONSENT_CODES = ("AADSTS65001", "AADSTS90094", "AADSTS90095", "AADSTS65004")
_SIGN_IN_CODES = ("AADSTS50173", "AADSTS700082", "AADSTS70008", "AADSTS50076", "AADSTS50079", "AADSTS70043")


def parse_token_response(status: int, body: bytes, *, now: datetime, provider_name: str) -> TokenGrant:
    """Read a token endpoint's answer. Raises OAuthError with advice; the message never holds a token."""
    try:
        data = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise OAuthError(
            f"The {provider_name} sign-in server answered HTTP {status} with something that is not JSON.",
            kind=OAuthErrorKind.SERVER,
        )
    if 200 <= status < 300 and isinstance(data.get("access_token"), str) and data["access_token"]:
        token_type = str(data.get("token_type", "Bearer"))
        if token_type.lower() != "bearer":
            raise OAuthError(
                f"The {provider_name} sign-in server issued a {token_type!r} token; XOAUTH2 needs Bearer.",
                kind=OAuthErrorKind.SERVER,
            )
        refresh = data.get("refresh_token")
        return TokenGrant(
            access_token=AccessToken(data["access_token"], expiry_from(now, data.get("expires_in"))),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            scope=str(data.get("scope", "")),
        )
    error = str(data.get("error", "")) if data.get("error") else ""
    description = _short(str(data.get("error_description", "")))
    said = f" ({error}: {description})" if description else (f" ({error})" if error else "")
    if error == "consent_required" or any(code in description for code in _CONSENT_CODES):
        raise OAuthError(
            f"Your organisation's administrator must approve Cadence for {provider_name} mail before you "
            f"can sign in{said}.",
            kind=OAuthErrorKind.CONSENT_REQUIRED,
        )
    if error == "invalid_grant" or any(code in description for code in _SIGN_IN_CODES):
        raise OAuthError(
            f"The {provider_name} sign-in has expired or was revoked: sign in again{said}.",
            kind=OAuthErrorKind.SIGN_IN_REQUIRED,
        )
    if error in {"invalid_client", "unauthorized_client"}:
        raise OAuthError(
            f"{provider_name} refused the app's OAuth client id: check the client id (and secret) in the "
            f"settings{said}.",
            kind=OAuthErrorKind.CLIENT_REJECTED,
        )
    if error in {"access_denied", "authorization_declined"}:
        raise OAuthError(f"The {provider_name} sign-in was declined{said}.", kind=OAuthErrorKind.CANCELLED)
    if 200 <= status < 300:
        raise OAuthError(
            f"The {provider_name} sign-in server answered without an access token.",
            kind=OAuthErrorKind.SERVER,
        )
    retry = "; try again in a few minutes" if status >= 500 or status == 429 else ""
    raise OAuthError(
        f"The {provider_name} sign-in server refused to renew the token (HTTP {status}){said}{retry}.",
        kind=OAuthErrorKind.SERVER,
    )


def _short(text: str, limit: int = 200) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


# --- XOAUTH2 ----------------------------------------------------------------------------------------------


def xoauth2_string(user: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response before base64: `user=…^Aauth=Bearer …^A^A`."""
    for name, value in (("user", user), ("access token", access_token)):
        if not value:
            raise ValueError(f"XOAUTH2 needs a {name}")
        if any(c in value for c in "\x01\r\n\x00"):
            raise ValueError(f"the {name} contains a control character")
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


def xoauth2_base64(user: str, access_token: str) -> str:
    return base64.b64encode(xoauth2_string(user, access_token).encode("utf-8")).decode("ascii")


def parse_xoauth2_error(challenge: str) -> dict[str, str]:
    """The JSON a server sends in its 334 challenge after a refused token (base64 or plain). Empty when
    unreadable; e.g. {'status': '401', 'schemes': 'bearer', 'scope': 'https://mail.google.com/'}."""
    text = challenge.strip()
    candidates = [text]
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        candidates.insert(0, base64.b64decode(text, validate=True).decode("utf-8"))
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
    return {}
