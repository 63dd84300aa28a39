"""OAuth2 for SMTP and IMAP (XOAUTH2): browser sign-in, token refresh, and login with one retry.

- Sign-in: Microsoft through msal's `PublicClientApplication` (system browser, loopback redirect, PKCE;
  device code as the fallback), Google through google-auth-oauthlib's `InstalledAppFlow` (loopback, PKCE).
  Both block, so they run in a worker thread; the event loop never waits on them.
- Refresh: a plain HTTPS POST (refresh_token grant) to the configured token endpoint, verified TLS, no
  redirects, in a worker thread with a deadline.
- Storage: the refresh token goes to the OS keyring only (SecretKind.OAUTH_REFRESH_TOKEN); access tokens stay
  in memory and are refreshed `REFRESH_SKEW` before expiry, or once after a server refused one. Every token
  seen is handed to the SecretRedactingFilter, so it cannot reach a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cadence.adapters.imap import ImapAccount, ImapMailbox
from cadence.adapters.secrets import SecretRedactingFilter
from cadence.core.model import ConnectionCheck, SendOutcome, SendResult
from cadence.core.oauth import (
    REFRESH_SKEW,
    AccessToken,
    OAuthClientConfig,
    OAuthError,
    OAuthErrorKind,
    OAuthProvider,
    TokenGrant,
    encode_form,
    expiry_from,
    parse_token_response,
    refresh_form,
)
from cadence.core.ports import (
    AccountSecretStore,
    Clock,
    MailboxError,
    MailboxErrorKind,
    SecretKind,
    SecretStoreError,
)

__all__ = [
    "OAuthTokenSource",
    "RefreshingImapConnector",
    "RefreshingMailer",
    "SignInResult",
    "TokenEndpoint",
    "google_authorization_options",
    "google_flow",
    "post_form",
    "sign_in",
    "sign_in_google",
    "sign_in_microsoft",
    "store_sign_in",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HTTP_TIMEOUT_S = 20.0
DEFAULT_SIGN_IN_TIMEOUT_S = 300.0
_GRACE = timedelta(seconds=30)  # never hand out a token this close to its expiry


# --- worker threads ---------------------------------------------------------------------------------------


async def _in_thread(call: Callable[[], T], *, timeout_s: float, what: str) -> T:
    """Run a blocking call in a daemon thread; give up waiting after `timeout_s` (the thread then ends on
    its own socket timeout, or with the process, never holding the event loop or the exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = call()
        except BaseException as error:  # handed to the awaiting coroutine
            caught = error
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliver, lambda: future.set_exception(caught))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, lambda: future.set_result(result))

    threading.Thread(target=work, name=f"oauth-{what}", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        raise OAuthError(
            f"Gave up waiting for {what} after {timeout_s:g} seconds.", kind=OAuthErrorKind.NETWORK
        ) from None


# --- the token endpoint -----------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a token endpoint that redirects is answered as-is (the 3xx), never followed


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _post_blocking(url: str, body: bytes, *, ca_file: str | None, timeout_s: float) -> tuple[int, bytes]:
    context = _tls_context(ca_file)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": "Cadence",
        },
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read(1_000_000)
    except urllib.error.HTTPError as error:  # 4xx/5xx: the body says why (invalid_grant, ...)
        with error:
            return int(error.code), error.read(1_000_000)


async def post_form(
    url: str, form: Mapping[str, str], *, ca_file: str | Path | None = None, timeout_s: float = 20.0
) -> tuple[int, bytes]:
    """POST a form over verified HTTPS; returns (status, body). Raises OAuthError(NETWORK) with a sentence
    for the user when the endpoint cannot be reached or its certificate is not trusted."""
    if not url.lower().startswith("https://"):
        raise OAuthError(
            f"Refusing to send a token request over plain HTTP ({url}).", kind=OAuthErrorKind.NETWORK
        )
    body = encode_form(form)
    ca = str(ca_file) if ca_file is not None else None
    host = urllib.parse.urlsplit(url).hostname or url
    try:
        return await _in_thread(
            lambda: _post_blocking(url, body, ca_file=ca, timeout_s=timeout_s),
            timeout_s=timeout_s + 5,
            what=f"the sign-in server {host}",
        )
    except OAuthError:
        raise
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            message = (
                f"The certificate of the sign-in server {host} is not trusted ({reason.verify_message}); "
                "a proxy or a wrong system clock can cause this."
            )
        elif isinstance(reason, TimeoutError):
            message = f"The sign-in server {host} did not answer within {timeout_s:g} seconds."
        else:
            message = f"Could not reach the sign-in server {host} ({reason}). Check your internet connection."
        raise OAuthError(message, kind=OAuthErrorKind.NETWORK) from None
    except (TimeoutError, OSError, ssl.SSLError) as error:
        raise OAuthError(
            f"Could not reach the sign-in server {host} ({type(error).__name__}: {error}).",
            kind=OAuthErrorKind.NETWORK,
        ) from None
    except ValueError as error:  # a malformed URL
        raise OAuthError(
            f"The token endpoint {url!r} is not usable: {error}", kind=OAuthErrorKind.NETWORK
        ) from None


@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    """The provider's token endpoint as this app reaches it (an extra CA for tests or TLS-inspecting
    proxies)."""

    ca_file: str | Path | None = None
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S

    async def refresh(self, config: OAuthClientConfig, refresh_token: str, *, clock: Clock) -> TokenGrant:
        status, body = await post_form(
            config.effective_token_url,
            refresh_form(config, refresh_token),
            ca_file=self.ca_file,
            timeout_s=self.timeout_s,
        )
        return parse_token_response(status, body, now=clock.now(), provider_name=config.endpoints.name)


# --- access tokens for one account -------------------------------------------------------------------------


class OAuthTokenSource:
    """Access tokens for one account: an async callable, usable as SmtpMailer's `token_provider` and as
    ImapConnector's `secret`. Refreshes `skew` before expiry (clock passed in), after `invalidate()`, and
    stores a rotated refresh token back in the keyring."""

    def __init__(
        self,
        *,
        account: str,
        config: OAuthClientConfig,
        secrets: AccountSecretStore,
        clock: Clock,
        endpoint: TokenEndpoint | None = None,
        redaction: SecretRedactingFilter | None = None,
        skew: timedelta = REFRESH_SKEW,
    ) -> None:
        self.account = account
        self.config = config
        self._secrets = secrets
        self._clock = clock
        self._endpoint = endpoint or TokenEndpoint()
        self._redaction = redaction
        self._skew = skew
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.refresh_count = 0
        self.last_error: OAuthError | None = None

    async def __call__(self) -> str:
        return await self.access_token()

    @property
    def cached(self) -> AccessToken | None:
        return self._token

    def remember(self, token: AccessToken) -> None:
        """Use an access token obtained elsewhere (the browser sign-in) until it nears expiry."""
        self._protect(token.value)
        self._token = token

    def invalidate(self) -> None:
        """The server refused the current access token: the next call refreshes."""
        self._token = None

    async def access_token(self) -> str:
        async with self._lock:
            token = self._token
            if token is not None and not token.needs_refresh(self._clock.now(), skew=self._skew):
                return token.value
            try:
                fresh = await self._refresh()
            except OAuthError as error:
                if token is not None and self._clock.now() < token.expires_at - _GRACE:
                    # renewal failed inside the skew window: the current token still works for a while
                    log.warning("could not renew the OAuth token for %s yet: %s", self.account, error)
                    self.last_error = None
                    return token.value
                self.last_error = error
                raise
            self.last_error = None
            return fresh.value

    async def _refresh(self) -> AccessToken:
        try:
            refresh_token = await self._secrets.get(self.account, kind=SecretKind.OAUTH_REFRESH_TOKEN)
        except SecretStoreError as error:
            raise OAuthError(str(error), kind=OAuthErrorKind.KEYRING) from None
        if not refresh_token:
            raise OAuthError(
                f"{self.account} is not signed in with {self.config.endpoints.name}: "
                "use “Sign in” in the account settings.",
                kind=OAuthErrorKind.SIGN_IN_REQUIRED,
            )
        self._protect(refresh_token)
        grant = await self._endpoint.refresh(self.config, refresh_token, clock=self._clock)
        self.refresh_count += 1
        self._protect(grant.access_token.value)
        if grant.refresh_token and grant.refresh_token != refresh_token:
            self._protect(grant.refresh_token)
            try:
                await self._secrets.set(
                    self.account, grant.refresh_token, kind=SecretKind.OAUTH_REFRESH_TOKEN
                )
            except SecretStoreError as error:  # the old one usually stays valid for a while
                log.warning("could not store the renewed refresh token for %s: %s", self.account, error)
        self._token = grant.access_token
        log.info(
            "OAuth access token for %s renewed; valid until %s",
            self.account,
            grant.access_token.expires_at.isoformat(timespec="seconds"),
        )
        return grant.access_token

    def _protect(self, secret: str) -> None:
        if self._redaction is not None:
            self._redaction.add(secret)


# --- SMTP with one retry after a refused token --------------------------------------------------------------


class XOAuth2Mailer(Protocol):
    """What RefreshingMailer needs from cadence.adapters.smtp.SmtpMailer."""

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult: ...

    async def verify_login(self) -> ConnectionCheck: ...

    def clear_auth_failure(self) -> None: ...

    async def close(self) -> None: ...


def _token_refused(outcome: SendOutcome | None, stage: str | None, source: OAuthTokenSource) -> bool:
    # A failure of the token source itself (no sign-in, network) is not retried: refreshing cannot help.
    return outcome is SendOutcome.AUTH_FAILED and stage == "auth" and source.last_error is None


class RefreshingMailer:
    """A Mailer and LoginVerifier over an SmtpMailer built with `token_provider=source`. When the server
    refuses the access token (334 error challenge then 535), the token is dropped, a new one fetched and the
    login tried again — once. Nothing was sent before AUTH, so the retry cannot duplicate a message."""

    def __init__(self, mailer: XOAuth2Mailer, *, source: OAuthTokenSource) -> None:
        self._mailer = mailer
        self._source = source
        self._gave_up = False
        self.retries = 0

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult:
        result = await self._mailer.send(sender=sender, recipients=recipients, message=message)
        if not self._should_retry(result.outcome, result.stage):
            return result
        self._retry_prepare()
        again = await self._mailer.send(sender=sender, recipients=recipients, message=message)
        self._after_retry(again.outcome, again.stage)
        if again.transcript and result.transcript:
            again = replace(
                again,
                transcript=f"{result.transcript}\n-- token renewed; trying once more\n{again.transcript}",
            )
        return again

    async def verify_login(self) -> ConnectionCheck:
        self.clear_auth_failure()  # an explicit test always tries afresh
        check = await self._mailer.verify_login()
        if check.ok or not self._should_retry(check.outcome, check.failed_step):
            return check
        self._retry_prepare()
        again = await self._mailer.verify_login()
        self._after_retry(again.outcome, again.failed_step)
        return again

    def _should_retry(self, outcome: SendOutcome | None, stage: str | None) -> bool:
        return not self._gave_up and _token_refused(outcome, stage, self._source)

    def _retry_prepare(self) -> None:
        self.retries += 1
        log.info(
            "the mail server refused the OAuth token for %s; renewing it and trying once more",
            self._source.account,
        )
        self._source.invalidate()
        self._mailer.clear_auth_failure()

    def _after_retry(self, outcome: SendOutcome | None, stage: str | None) -> None:
        # refused again with a brand-new token: the problem is not the token; stop until told otherwise
        self._gave_up = outcome is SendOutcome.AUTH_FAILED and stage == "auth"

    def clear_auth_failure(self) -> None:
        """Allow logins (and one renewal) again, e.g. after the user signed in anew."""
        self._gave_up = False
        self._mailer.clear_auth_failure()

    async def close(self) -> None:
        await self._mailer.close()


async def with_token_retry(
    source: OAuthTokenSource,
    attempt: Callable[[str], Awaitable[T]],
    *,
    refused: Callable[[BaseException], bool],
) -> T:
    """Run `attempt(token)`; if it raises an error `refused` says is a rejected token, renew the token and
    run it once more (IMAP: `ImapMailbox.connect(account, secret=token)` with MailboxError AUTH_FAILED)."""
    token = await source.access_token()
    try:
        return await attempt(token)
    except Exception as error:
        if not refused(error):
            raise
    source.invalidate()
    return await attempt(await source.access_token())


class RefreshingImapConnector:
    """A `MailboxConnector` for an OAuth account: each call opens a fresh IMAP connection logged in with
    XOAUTH2, renewing the token once if the server refuses it. Raises only MailboxError, as the Mailbox
    protocol promises (an OAuth failure becomes AUTH_FAILED; an unreachable sign-in server,
    CONNECTION_LOST)."""

    def __init__(self, account: ImapAccount, *, source: OAuthTokenSource) -> None:
        if not account.oauth2:
            raise ValueError("the IMAP account must have oauth2=True for XOAUTH2")
        self.account = account
        self._source = source

    async def __call__(self) -> ImapMailbox:
        try:
            return await with_token_retry(
                self._source,
                lambda token: ImapMailbox.connect(self.account, secret=token),
                refused=lambda error: (
                    isinstance(error, MailboxError) and error.kind is MailboxErrorKind.AUTH_FAILED
                ),
            )
        except OAuthError as error:
            kind = (
                MailboxErrorKind.CONNECTION_LOST
                if error.kind is OAuthErrorKind.NETWORK
                else (MailboxErrorKind.AUTH_FAILED)
            )
            raise MailboxError(str(error), kind=kind) from None


# --- browser sign-in ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignInResult:
    provider: OAuthProvider
    username: str  # the account the user actually signed in as (may differ from the hint)
    grant: TokenGrant = field(repr=False)


def _msal_result(result: Mapping[str, Any] | None, *, clock: Clock) -> SignInResult:
    if not result or "access_token" not in result:
        error = str((result or {}).get("error", ""))
        description = str((result or {}).get("error_description", "")).strip().splitlines()
        said = f" ({error}: {description[0]})" if description else (f" ({error})" if error else "")
        kind = (
            OAuthErrorKind.CANCELLED
            if error in {"access_denied", "authorization_declined", ""}
            else (
                OAuthErrorKind.CONSENT_REQUIRED
                if "AADSTS65001" in "".join(description)
                else OAuthErrorKind.SERVER
            )
        )
        raise OAuthError(f"The Microsoft sign-in did not complete{said}.", kind=kind)
    refresh = result.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise OAuthError(
            "Microsoft did not issue a refresh token, so Cadence would have to ask you to sign in hourly.",
            kind=OAuthErrorKind.SERVER,
        )
    claims = result.get("id_token_claims") or {}
    username = str(claims.get("preferred_username") or claims.get("email") or "")
    return SignInResult(
        provider=OAuthProvider.MICROSOFT,
        username=username,
        grant=TokenGrant(
            access_token=AccessToken(
                str(result["access_token"]), expiry_from(clock.now(), result.get("expires_in"))
            ),
            refresh_token=refresh,
            scope=str(result.get("scope", "")),
        ),
    )


async def sign_in_microsoft(
    config: OAuthClientConfig,
    *,
    login_hint: str,
    clock: Clock,
    device_code: bool = False,
    on_device_code: Callable[[str], None] | None = None,
    timeout_s: float = DEFAULT_SIGN_IN_TIMEOUT_S,
) -> SignInResult:
    """Interactive sign-in through the system browser (loopback redirect on a free port, PKCE by msal), or
    the device-code flow (`device_code=True`; `on_device_code` receives the text to show: URL and code).
    The msal token cache lives in memory only and is dropped afterwards."""
    import msal  # imported here: msal pulls in requests, not needed by anyone who never signs in

    scopes = list(config.endpoints.scopes)

    def run() -> Mapping[str, Any]:
        app = msal.PublicClientApplication(config.client_id, authority=config.effective_authority)
        if not device_code:
            result: Mapping[str, Any] = app.acquire_token_interactive(
                scopes,
                login_hint=login_hint or None,
                prompt=msal.Prompt.SELECT_ACCOUNT,
                timeout=int(timeout_s),
            )
            return result
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            return dict(flow)  # an error answer
        if on_device_code is not None:
            on_device_code(str(flow.get("message", "")))
        flow["expires_at"] = min(
            float(flow.get("expires_at", 0) or 0) or float("inf"), time.time() + timeout_s
        )
        return dict(app.acquire_token_by_device_flow(flow))

    raw = await _in_thread(run, timeout_s=timeout_s + 30, what="the Microsoft sign-in")
    return _msal_result(raw, clock=clock)


def google_flow(config: OAuthClientConfig) -> Any:
    """google-auth-oauthlib's InstalledAppFlow for `config`, with a PKCE code verifier."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    client_config = {
        "installed": {
            "client_id": config.client_id,
            "client_secret": config.client_secret or "",
            "auth_uri": config.endpoints.authorize_url,
            "token_uri": config.effective_token_url,
            "redirect_uris": ["http://localhost"],
        }
    }
    return InstalledAppFlow.from_client_config(
        client_config, scopes=list(config.endpoints.scopes), autogenerate_code_verifier=True
    )


def google_authorization_options(login_hint: str) -> dict[str, str]:
    # Google issues a refresh token only with offline access, and reliably only on the consent screen
    options = {"access_type": "offline", "prompt": "consent"}
    if login_hint:
        options["login_hint"] = login_hint
    return options


async def sign_in_google(
    config: OAuthClientConfig,
    *,
    login_hint: str,
    clock: Clock,
    timeout_s: float = DEFAULT_SIGN_IN_TIMEOUT_S,
) -> SignInResult:
    """Interactive sign-in through the system browser (InstalledAppFlow: loopback on a free port, PKCE)."""

    def run() -> Any:
        return google_flow(config).run_local_server(
            host="localhost",
            port=0,
            open_browser=True,
            timeout_seconds=int(timeout_s),
            **google_authorization_options(login_hint),
        )

    try:
        credentials = await _in_thread(run, timeout_s=timeout_s + 30, what="the Google sign-in")
    except OAuthError:
        raise
    except Exception as error:  # oauthlib's errors: denied access, state mismatch, a closed browser
        raise OAuthError(
            f"The Google sign-in did not complete ({type(error).__name__}: {error}).",
            kind=OAuthErrorKind.CANCELLED,
        ) from None
    if credentials is None or not getattr(credentials, "token", None):
        raise OAuthError("The Google sign-in was cancelled.", kind=OAuthErrorKind.CANCELLED)
    if not credentials.refresh_token:
        raise OAuthError(
            "Google did not issue a refresh token; remove Cadence under Google Account → Security → "
            "Third-party access and sign in again.",
            kind=OAuthErrorKind.SERVER,
        )
    expiry = credentials.expiry
    now = clock.now()
    expires_at = expiry.replace(tzinfo=now.tzinfo) if expiry is not None else expiry_from(now, None)
    return SignInResult(
        provider=OAuthProvider.GOOGLE,
        username=login_hint,
        grant=TokenGrant(
            access_token=AccessToken(credentials.token, expires_at), refresh_token=credentials.refresh_token
        ),
    )


async def sign_in(
    config: OAuthClientConfig,
    *,
    login_hint: str,
    clock: Clock,
    device_code: bool = False,
    on_device_code: Callable[[str], None] | None = None,
    timeout_s: float = DEFAULT_SIGN_IN_TIMEOUT_S,
) -> SignInResult:
    if config.provider is OAuthProvider.MICROSOFT:
        return await sign_in_microsoft(
            config,
            login_hint=login_hint,
            clock=clock,
            device_code=device_code,
            on_device_code=on_device_code,
            timeout_s=timeout_s,
        )
    return await sign_in_google(config, login_hint=login_hint, clock=clock, timeout_s=timeout_s)


async def store_sign_in(
    result: SignInResult,
    *,
    account: str,
    secrets: AccountSecretStore,
    source: OAuthTokenSource | None = None,
    redaction: SecretRedactingFilter | None = None,
) -> None:
    """Keep the refresh token in the keyring (only there) and hand the access token to the live source.
    Refuses a sign-in as another user than `account` (the mail server would refuse the token anyway)."""
    refresh = result.grant.refresh_token
    if not refresh:
        raise OAuthError("The sign-in returned no refresh token.", kind=OAuthErrorKind.SERVER)
    if result.username and result.username.strip().lower() != account.strip().lower():
        raise OAuthError(
            f"You signed in as {result.username}, but this account is {account}. Sign in again and pick "
            f"{account} (or use “Use another account” on the sign-in page).",
            kind=OAuthErrorKind.WRONG_ACCOUNT,
        )
    if redaction is not None:
        redaction.add(refresh)
        redaction.add(result.grant.access_token.value)
    await secrets.set(account, refresh, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    if source is not None:
        source.remember(result.grant.access_token)
