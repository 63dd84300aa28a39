"""Token refresh (refresh_token grant) against a real local HTTPS token endpoint (trustme certificate).

The keyring is stood in for by a dict-backed AccountSecretStore (the thing under test is the refresh);
`test_refresh_token_lives_in_the_real_keyring` uses the real Secret Service when a session is available.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cadence.adapters.oauth import OAuthTokenSource, TokenEndpoint, post_form
from cadence.adapters.secrets import SecretRedactingFilter
from cadence.core.oauth import (
    AccessToken,
    OAuthClientConfig,
    OAuthError,
    OAuthErrorKind,
    OAuthProvider,
    resolve_client_config,
)
from cadence.core.ports import SecretKind, SecretStoreUnavailable
from tests.integration.oauth_server import TokenServer, oauth_server_fixture  # noqa: F401

ACCOUNT = "alice@example.test"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class MemorySecrets:
    """An AccountSecretStore kept in a dict (stands in for the keyring in these tests)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, SecretKind], str] = {}
        self.writes = 0

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        return self.values.get((account.lower(), kind))

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.writes += 1
        self.values[(account.lower(), kind)] = secret

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.values.pop((account.lower(), kind), None)

    async def delete_account(self, account: str) -> None:
        for key in [k for k in self.values if k[0] == account.lower()]:
            del self.values[key]


def ms_config(server: TokenServer) -> OAuthClientConfig:
    return resolve_client_config(
        OAuthProvider.MICROSOFT, environ={"CADENCE_MS_CLIENT_ID": "client-123"}, token_url=server.url
    )


def make_source(
    server: TokenServer,
    tmp_path: Path,
    *,
    clock: FakeClock,
    secrets: MemorySecrets | None = None,
    **kw: object,
) -> tuple[OAuthTokenSource, MemorySecrets]:
    store = secrets or MemorySecrets()
    store.values.setdefault((ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN), "rt-initial")
    source = OAuthTokenSource(
        account=ACCOUNT,
        config=ms_config(server),
        secrets=store,
        clock=clock,
        endpoint=TokenEndpoint(ca_file=server.write_ca_file(tmp_path / "oauth-ca.pem"), timeout_s=3),
        **kw,  # type: ignore[arg-type]
    )
    return source, store


@pytest.mark.asyncio
async def test_refresh_posts_the_grant_and_caches_until_five_minutes_before_expiry(
    oauth_server: TokenServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    source, _ = make_source(oauth_server, tmp_path, clock=clock)

    assert await source() == "at-1"
    form = oauth_server.requests[0]
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "rt-initial"
    assert form["client_id"] == "client-123"
    assert "https://outlook.office.com/SMTP.Send" in form["scope"].split()
    assert "offline_access" in form["scope"].split()
    assert "client_secret" not in form  # Microsoft public clients have none
    assert source.cached is not None and source.cached.expires_at == START + timedelta(hours=1)

    clock.advance(timedelta(minutes=54))  # 6 minutes left: still good
    assert await source() == "at-1"
    assert len(oauth_server.requests) == 1

    clock.advance(timedelta(minutes=2))  # 4 minutes left: inside the 5-minute skew
    assert await source() == "at-2"
    assert len(oauth_server.requests) == 2


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_refresh(oauth_server: TokenServer, tmp_path: Path) -> None:
    import asyncio

    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock())
    tokens = await asyncio.gather(*(source() for _ in range(5)))
    assert tokens == ["at-1"] * 5
    assert len(oauth_server.requests) == 1


@pytest.mark.asyncio
async def test_invalidate_forces_a_refresh(oauth_server: TokenServer, tmp_path: Path) -> None:
    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock())
    source.remember(AccessToken("stale-token", START + timedelta(hours=1)))
    assert await source() == "stale-token"
    assert oauth_server.requests == []
    source.invalidate()
    assert await source() == "at-1"


@pytest.mark.asyncio
async def test_a_rotated_refresh_token_replaces_the_stored_one(
    oauth_server: TokenServer, tmp_path: Path
) -> None:
    oauth_server.rotate = True
    clock = FakeClock()
    source, store = make_source(oauth_server, tmp_path, clock=clock)

    assert await source() == "at-1"
    assert store.values[(ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN)] == "rt-1"
    clock.advance(timedelta(hours=2))
    assert await source() == "at-2"
    assert oauth_server.requests[1]["refresh_token"] == "rt-1"  # the old one is no longer accepted
    assert store.values[(ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN)] == "rt-2"


@pytest.mark.asyncio
async def test_expires_in_as_a_string_is_understood(oauth_server: TokenServer, tmp_path: Path) -> None:
    oauth_server.expires_in = "599"
    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock())
    await source()
    assert source.cached is not None and source.cached.expires_at == START + timedelta(seconds=599)


@pytest.mark.asyncio
async def test_revoked_refresh_token_asks_to_sign_in_again(oauth_server: TokenServer, tmp_path: Path) -> None:
    oauth_server.refresh_tokens = {"some-other-token"}
    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock())
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.SIGN_IN_REQUIRED
    assert "sign in again" in str(caught.value)
    assert "rt-initial" not in str(caught.value)
    assert source.last_error is caught.value


@pytest.mark.asyncio
async def test_not_signed_in_makes_no_request(oauth_server: TokenServer, tmp_path: Path) -> None:
    store = MemorySecrets()
    source = OAuthTokenSource(
        account=ACCOUNT,
        config=ms_config(oauth_server),
        secrets=store,
        clock=FakeClock(),
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "ca.pem")),
    )
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.SIGN_IN_REQUIRED
    assert "Sign in" in str(caught.value)
    assert oauth_server.requests == []


@pytest.mark.asyncio
async def test_untrusted_token_endpoint_certificate_is_refused(
    oauth_server: TokenServer, tmp_path: Path
) -> None:
    store = MemorySecrets()
    store.values[(ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    source = OAuthTokenSource(
        account=ACCOUNT,
        config=ms_config(oauth_server),
        secrets=store,
        clock=FakeClock(),
        endpoint=TokenEndpoint(),
    )
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.NETWORK
    assert "certificate" in str(caught.value) and "not trusted" in str(caught.value)
    assert oauth_server.requests == []  # nothing was sent to the untrusted server


@pytest.mark.asyncio
async def test_a_hanging_token_endpoint_times_out(oauth_server: TokenServer, tmp_path: Path) -> None:
    oauth_server.hang = True
    store = MemorySecrets()
    store.values[(ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    source = OAuthTokenSource(
        account=ACCOUNT,
        config=ms_config(oauth_server),
        secrets=store,
        clock=FakeClock(),
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "ca.pem"), timeout_s=0.5),
    )
    started = time.monotonic()
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.NETWORK
    assert "did not answer" in str(caught.value) or "Gave up" in str(caught.value)
    assert time.monotonic() - started < 6


@pytest.mark.asyncio
async def test_server_errors_and_consent_are_explained(oauth_server: TokenServer, tmp_path: Path) -> None:
    oauth_server.next_replies = [
        (503, {"error": "temporarily_unavailable"}),
        (
            400,
            {
                "error": "invalid_grant",
                "error_description": "AADSTS65001: The user or administrator has not consented",
            },
        ),
        (401, {"error": "invalid_client", "error_description": "AADSTS7000218: client_assertion missing"}),
    ]
    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock())
    kinds = []
    for _ in range(3):
        with pytest.raises(OAuthError) as caught:
            await source()
        kinds.append(caught.value.kind)
    assert kinds == [OAuthErrorKind.SERVER, OAuthErrorKind.CONSENT_REQUIRED, OAuthErrorKind.CLIENT_REJECTED]


@pytest.mark.asyncio
async def test_google_refresh_sends_the_installed_app_secret_and_no_scope(
    oauth_server: TokenServer, tmp_path: Path
) -> None:
    config = resolve_client_config(
        OAuthProvider.GOOGLE,
        environ={"CADENCE_GOOGLE_CLIENT_ID": "g-client", "CADENCE_GOOGLE_CLIENT_SECRET": "g-secret"},
        token_url=oauth_server.url,
    )
    store = MemorySecrets()
    store.values[(ACCOUNT, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    source = OAuthTokenSource(
        account=ACCOUNT,
        config=config,
        secrets=store,
        clock=FakeClock(),
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "ca.pem")),
    )
    assert await source() == "at-1"
    form = oauth_server.requests[0]
    assert form["client_id"] == "g-client" and form["client_secret"] == "g-secret"
    assert "scope" not in form


@pytest.mark.asyncio
async def test_plain_http_token_endpoint_is_refused() -> None:
    with pytest.raises(OAuthError) as caught:
        await post_form("http://127.0.0.1:1/token", {"a": "b"})
    assert "plain HTTP" in str(caught.value)
    with pytest.raises(OAuthError):
        resolve_client_config(
            OAuthProvider.MICROSOFT,
            environ={"CADENCE_MS_CLIENT_ID": "x"},
            token_url="http://example.test/token",
        )


@pytest.mark.asyncio
async def test_tokens_never_reach_the_log(oauth_server: TokenServer, tmp_path: Path) -> None:
    oauth_server.rotate = True
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redaction = SecretRedactingFilter()
    handler.addFilter(redaction)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        source, _ = make_source(oauth_server, tmp_path, clock=FakeClock(), redaction=redaction)
        token = await source()
        # even a careless log line elsewhere gets the token scrubbed
        logging.getLogger("somewhere.else").warning("token is %s, refresh %s", token, "rt-initial")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert "renewed" in text  # the refresh itself was logged...
    for secret in (token, "rt-initial", "rt-1"):
        assert secret not in text  # ...without any token
    assert "[redacted]" in text


@pytest.mark.asyncio
@pytest.mark.keyring
async def test_refresh_token_lives_in_the_real_keyring(oauth_server: TokenServer, tmp_path: Path) -> None:
    keyring_backends = pytest.importorskip("keyring.backends.SecretService")
    try:
        assert keyring_backends.Keyring.priority > 0
    except Exception as error:
        pytest.skip(f"no Secret Service reachable ({error}); run inside dbus-run-session (tests/run.sh)")
    from cadence.adapters.secrets import KeyringSecretStore

    service = f"cadence.test-oauth-{uuid.uuid4().hex[:8]}"
    store = KeyringSecretStore(backend=keyring_backends.Keyring(), service=service, timeout_s=10)
    oauth_server.rotate = True
    try:
        await store.set(ACCOUNT, "rt-initial", kind=SecretKind.OAUTH_REFRESH_TOKEN)
        source = OAuthTokenSource(
            account=ACCOUNT,
            config=ms_config(oauth_server),
            secrets=store,
            clock=FakeClock(),
            endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "ca.pem")),
        )
        assert await source() == "at-1"
        assert await store.get(ACCOUNT, kind=SecretKind.OAUTH_REFRESH_TOKEN) == "rt-1"
        assert await store.get(ACCOUNT) is None  # the password entry is untouched
    finally:
        await store.delete_account(ACCOUNT)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "ca.pem"]
    assert not any("rt-1" in p.read_text(errors="replace") for p in written)


@pytest.mark.asyncio
async def test_a_failed_renewal_inside_the_skew_keeps_using_the_live_token(
    oauth_server: TokenServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    source, _ = make_source(oauth_server, tmp_path, clock=clock)
    source.remember(AccessToken("still-good", START + timedelta(minutes=4)))  # inside the 5-minute skew
    oauth_server.next_replies = [(503, {"error": "temporarily_unavailable"})] * 2
    assert await source() == "still-good"
    assert len(oauth_server.requests) == 1 and source.last_error is None
    clock.advance(timedelta(minutes=3, seconds=45))  # 15 s left: too close to hand out
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.SERVER and source.last_error is caught.value


class LockedSecrets(MemorySecrets):
    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        raise SecretStoreUnavailable("The system keyring is locked; unlock it and try again.")


@pytest.mark.asyncio
async def test_a_locked_keyring_is_reported_as_such(oauth_server: TokenServer, tmp_path: Path) -> None:
    source, _ = make_source(oauth_server, tmp_path, clock=FakeClock(), secrets=LockedSecrets())
    with pytest.raises(OAuthError) as caught:
        await source()
    assert caught.value.kind is OAuthErrorKind.KEYRING
    assert "locked" in str(caught.value)
    assert oauth_server.requests == []
