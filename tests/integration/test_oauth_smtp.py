"""XOAUTH2 over SMTP against the real aiosmtpd peer, with tokens from the local HTTPS token endpoint.

The peer's authenticator decodes the SASL XOAUTH2 string (`user=…^Aauth=Bearer …^A^A`) and accepts only the
token configured for the user; a refused token gets the JSON error challenge (334) and then 535.

IMAP XOAUTH2 is in test_oauth_imap.py (Dovecot with an oauth2 passdb).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from cadence.adapters.oauth import OAuthTokenSource, RefreshingMailer, TokenEndpoint
from cadence.adapters.smtp import SmtpMailer
from cadence.core.compose import OutgoingMessage, compose, new_message_id
from cadence.core.model import SendOutcome
from cadence.core.oauth import AccessToken, resolve_client_config, xoauth2_string
from cadence.core.oauth import OAuthProvider as Provider
from cadence.core.ports import SecretKind
from tests.integration.oauth_server import TokenServer, oauth_server_fixture  # noqa: F401
from tests.integration.smtp_peer import (
    DEFAULT_USER,
    ScriptedSmtpPeer,
    smtp_ca,
    smtp_peer,
)
from tests.integration.test_oauth_refresh import FakeClock, MemorySecrets

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

__all__ = ["smtp_ca", "smtp_peer"]


def token_source(server: TokenServer, tmp_path: Path, **kw: object) -> OAuthTokenSource:
    store = MemorySecrets()
    store.values[(DEFAULT_USER, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    config = resolve_client_config(
        Provider.MICROSOFT, environ={"CADENCE_MS_CLIENT_ID": "c"}, token_url=server.url
    )
    return OAuthTokenSource(
        account=DEFAULT_USER,
        config=config,
        secrets=store,
        clock=FakeClock(START),
        endpoint=TokenEndpoint(ca_file=server.write_ca_file(tmp_path / "oauth-ca.pem"), timeout_s=3),
        **kw,  # type: ignore[arg-type]
    )


def oauth_mailer(
    peer: ScriptedSmtpPeer, ca: trustme.CA, tmp_path: Path, source: OAuthTokenSource
) -> SmtpMailer:
    options = peer.client_options(peer.write_ca_file(tmp_path / "smtp-ca.pem"))
    del options["password"]
    return SmtpMailer(**options, token_provider=source, command_timeout_s=5)  # type: ignore[arg-type]


def message() -> bytes:
    return compose(
        OutgoingMessage(
            sender=DEFAULT_USER,
            recipient="bob@example.test",
            subject="Hello",
            text="Hi Bob",
            message_id=new_message_id(DEFAULT_USER),
            date=START,
        )
    )


def test_the_sasl_string_is_what_the_peer_decodes() -> None:
    text = xoauth2_string("alice@example.test", "ya29.token")
    assert text == "user=alice@example.test\x01auth=Bearer ya29.token\x01\x01"
    assert base64.b64decode(base64.b64encode(text.encode())).split(b"\x01")[:2] == [
        b"user=alice@example.test",
        b"auth=Bearer ya29.token",
    ]


@pytest.mark.asyncio
async def test_xoauth2_login_and_send_with_a_refreshed_token(
    smtp_peer: ScriptedSmtpPeer, smtp_ca: trustme.CA, oauth_server: TokenServer, tmp_path: Path
) -> None:
    smtp_peer.tokens[DEFAULT_USER] = "at-1"  # what the token endpoint will issue first
    source = token_source(oauth_server, tmp_path)
    mailer = oauth_mailer(smtp_peer, smtp_ca, tmp_path, source)
    try:
        check = await mailer.verify_login()
        assert check.ok, check.text
        assert check.auth_mechanism == "XOAUTH2"
        attempt = smtp_peer.auth_attempts[-1]
        assert (attempt.mechanism, attempt.login, attempt.secret, attempt.ok, attempt.tls) == (
            "XOAUTH2",
            DEFAULT_USER,
            "at-1",
            True,
            True,
        )
        result = await mailer.send(sender=DEFAULT_USER, recipients=("bob@example.test",), message=message())
        assert result.outcome is SendOutcome.DELIVERED, result.text
        assert "at-1" not in result.transcript and "at-1" not in check.transcript
    finally:
        await mailer.close()
    assert len(oauth_server.requests) == 1  # one refresh served both connections
    assert len(smtp_peer.accepted) == 1


@pytest.mark.asyncio
async def test_a_refused_token_is_renewed_once_and_the_login_succeeds(
    smtp_peer: ScriptedSmtpPeer, smtp_ca: trustme.CA, oauth_server: TokenServer, tmp_path: Path
) -> None:
    smtp_peer.tokens[DEFAULT_USER] = "at-1"
    source = token_source(oauth_server, tmp_path)
    source.remember(AccessToken("revoked-token", START + timedelta(hours=1)))  # looks valid, server says no
    mailer = RefreshingMailer(oauth_mailer(smtp_peer, smtp_ca, tmp_path, source), source=source)
    try:
        check = await mailer.verify_login()
    finally:
        await mailer.close()
    assert check.ok, check.text
    assert [(a.secret, a.ok) for a in smtp_peer.auth_attempts] == [("revoked-token", False), ("at-1", True)]
    assert smtp_peer.xoauth2_error_answers == [b""]  # the client answered the 334 error challenge properly
    assert mailer.retries == 1
    assert len(oauth_server.requests) == 1


@pytest.mark.asyncio
async def test_a_send_after_token_revocation_goes_out_once(
    smtp_peer: ScriptedSmtpPeer, smtp_ca: trustme.CA, oauth_server: TokenServer, tmp_path: Path
) -> None:
    smtp_peer.tokens[DEFAULT_USER] = "at-1"
    source = token_source(oauth_server, tmp_path)
    source.remember(AccessToken("revoked-token", START + timedelta(hours=1)))
    mailer = RefreshingMailer(oauth_mailer(smtp_peer, smtp_ca, tmp_path, source), source=source)
    try:
        result = await mailer.send(sender=DEFAULT_USER, recipients=("bob@example.test",), message=message())
    finally:
        await mailer.close()
    assert result.outcome is SendOutcome.DELIVERED, result.text
    assert len(smtp_peer.received) == 1
    assert "token renewed" in result.transcript
    assert "revoked-token" not in result.transcript and "at-1" not in result.transcript


@pytest.mark.asyncio
async def test_a_token_refused_again_after_renewal_stops_without_a_loop(
    smtp_peer: ScriptedSmtpPeer, smtp_ca: trustme.CA, oauth_server: TokenServer, tmp_path: Path
) -> None:
    smtp_peer.tokens[DEFAULT_USER] = "a-token-nobody-issues"
    source = token_source(oauth_server, tmp_path)
    mailer = RefreshingMailer(oauth_mailer(smtp_peer, smtp_ca, tmp_path, source), source=source)
    try:
        check = await mailer.verify_login()
        assert not check.ok
        assert check.outcome is SendOutcome.AUTH_FAILED and check.failed_step == "auth"
        assert [a.secret for a in smtp_peer.auth_attempts] == ["at-1", "at-2"]
        assert len(oauth_server.requests) == 2

        connections = smtp_peer.connections
        for _ in range(3):  # later sends do not hammer the server or the token endpoint
            result = await mailer.send(
                sender=DEFAULT_USER, recipients=("bob@example.test",), message=message()
            )
            assert result.outcome is SendOutcome.AUTH_FAILED
        assert smtp_peer.connections == connections
        assert len(oauth_server.requests) == 2
        assert mailer.retries == 1
    finally:
        await mailer.close()


@pytest.mark.asyncio
async def test_no_sign_in_means_no_auth_attempt_and_no_retry(
    smtp_peer: ScriptedSmtpPeer, smtp_ca: trustme.CA, oauth_server: TokenServer, tmp_path: Path
) -> None:
    oauth_server.refresh_tokens = set()  # the stored refresh token was revoked
    source = token_source(oauth_server, tmp_path)
    mailer = RefreshingMailer(oauth_mailer(smtp_peer, smtp_ca, tmp_path, source), source=source)
    try:
        check = await mailer.verify_login()
    finally:
        await mailer.close()
    assert not check.ok
    assert "sign in again" in check.text
    assert smtp_peer.auth_attempts == []
    assert mailer.retries == 0
    assert len(oauth_server.requests) == 1
