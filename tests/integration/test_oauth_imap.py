"""XOAUTH2 over IMAP against a real Dovecot whose oauth2 passdb checks bearer tokens at a local token-info
endpoint, with access tokens from the local HTTPS token endpoint (refresh_token grant).

The refused-token case is slow by nature: Dovecot answers a bad token with an error challenge that
aioimaplib never answers, so the IMAP adapter only gives up at its command timeout (kept short here).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.connection_probe import NetworkProbe
from cadence.adapters.imap import ImapAccount, ImapMailbox
from cadence.adapters.oauth import OAuthTokenSource, RefreshingImapConnector, TokenEndpoint
from cadence.core.connection_advice import Problem
from cadence.core.model import AccountSettings, ConnectionSecurity
from cadence.core.oauth import AccessToken, OAuthProvider, resolve_client_config
from cadence.core.ports import MailboxError, MailboxErrorKind, SecretKind
from cadence.services.connection_test import Server, Step, StepStatus, TestCredentials, run_connection_test
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.oauth_server import TokenInfoServer, TokenServer, oauth_server_fixture  # noqa: F401
from tests.integration.test_oauth_refresh import FakeClock, MemorySecrets

pytestmark = pytest.mark.dovecot

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def tokeninfo() -> AsyncIterator[TokenInfoServer]:
    server = TokenInfoServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def oauth_dovecot(tokeninfo: TokenInfoServer) -> Iterator[DovecotServer]:
    conf_dir = Path(tempfile.mkdtemp(prefix="cadence-dovecot-oauth-"))  # readable by Dovecot's own user
    conf_dir.chmod(0o755)
    try:
        with running_dovecot(extra_conf=tokeninfo.dovecot_conf(conf_dir)) as server:
            tokeninfo.valid["at-1"] = server.user
            yield server
    finally:
        shutil.rmtree(conf_dir, ignore_errors=True)


def source_for(user: str, server: TokenServer, tmp_path: Path) -> OAuthTokenSource:
    store = MemorySecrets()
    store.values[(user, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    return OAuthTokenSource(
        account=user,
        config=resolve_client_config(
            OAuthProvider.GOOGLE,
            environ={"CADENCE_GOOGLE_CLIENT_ID": "g", "CADENCE_GOOGLE_CLIENT_SECRET": "s"},
            token_url=server.url,
        ),
        secrets=store,
        clock=FakeClock(START),
        endpoint=TokenEndpoint(ca_file=server.write_ca_file(tmp_path / "oauth-ca.pem"), timeout_s=3),
    )


def account_for(dovecot: DovecotServer, *, timeout_s: float = 10) -> ImapAccount:
    return ImapAccount(
        host="127.0.0.1",
        username=dovecot.user,
        port=dovecot.imaps_port,
        ca_file=str(dovecot.ca_file),
        oauth2=True,
        timeout_s=timeout_s,
    )


@pytest.mark.asyncio
async def test_imap_xoauth2_login_with_a_refreshed_token(
    oauth_dovecot: DovecotServer, tokeninfo: TokenInfoServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    source = source_for(oauth_dovecot.user, oauth_server, tmp_path)
    mailbox = await ImapMailbox.connect(account_for(oauth_dovecot), secret=await source())
    try:
        assert (await mailbox.folders()).sent == "Sent"
    finally:
        await mailbox.close()
    assert tokeninfo.asked == ["at-1"]
    assert "method=XOAUTH2" in oauth_dovecot.log_tail(50)


@pytest.mark.asyncio
async def test_imap_refused_token_is_renewed_once(
    oauth_dovecot: DovecotServer, tokeninfo: TokenInfoServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    source = source_for(oauth_dovecot.user, oauth_server, tmp_path)
    source.remember(AccessToken("revoked-token", START + timedelta(hours=1)))
    connect = RefreshingImapConnector(account_for(oauth_dovecot, timeout_s=1.5), source=source)
    mailbox = await connect()
    await mailbox.close()
    assert tokeninfo.asked == ["revoked-token", "at-1"]
    assert len(oauth_server.requests) == 1


@pytest.mark.asyncio
async def test_imap_token_refused_twice_is_not_retried_again(
    oauth_dovecot: DovecotServer, tokeninfo: TokenInfoServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    tokeninfo.valid.clear()
    source = source_for(oauth_dovecot.user, oauth_server, tmp_path)
    connect = RefreshingImapConnector(account_for(oauth_dovecot, timeout_s=1.0), source=source)
    started = time.monotonic()
    with pytest.raises(MailboxError) as caught:
        await connect()
    assert caught.value.kind is MailboxErrorKind.AUTH_FAILED
    assert tokeninfo.asked == ["at-1", "at-2"]
    assert time.monotonic() - started < 10


@pytest.mark.asyncio
async def test_imap_connector_turns_a_missing_sign_in_into_a_mailbox_error(
    oauth_dovecot: DovecotServer, tokeninfo: TokenInfoServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    oauth_server.refresh_tokens = set()
    source = source_for(oauth_dovecot.user, oauth_server, tmp_path)
    with pytest.raises(MailboxError) as caught:
        await RefreshingImapConnector(account_for(oauth_dovecot), source=source)()
    assert caught.value.kind is MailboxErrorKind.AUTH_FAILED and caught.value.needs_user
    assert "sign in again" in str(caught.value)
    assert tokeninfo.asked == []  # nothing reached the IMAP server
    with pytest.raises(ValueError):
        RefreshingImapConnector(ImapAccount(host="h", username="u"), source=source)


@pytest.mark.asyncio
async def test_connection_test_with_oauth_on_imap(
    oauth_dovecot: DovecotServer, tokeninfo: TokenInfoServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    settings = AccountSettings(
        email=oauth_dovecot.user,
        imap_host="127.0.0.1",
        imap_port=oauth_dovecot.imaps_port,
        imap_security=ConnectionSecurity.TLS,
        ca_file=str(oauth_dovecot.ca_file),
    )
    source = source_for(oauth_dovecot.user, oauth_server, tmp_path)
    report = await run_connection_test(
        settings,
        credentials=TestCredentials(token_provider=source),
        probe=NetworkProbe(),
        servers=(Server.IMAP,),
    )
    assert report.ok, [s.message for s in report.failures]

    tokeninfo.valid.clear()  # the provider now refuses every token
    source.invalidate()
    report = await run_connection_test(
        settings,
        credentials=TestCredentials(token_provider=source),
        probe=NetworkProbe(),
        servers=(Server.IMAP,),
        step_timeout_s=2.0,
    )
    failed = report.step(Server.IMAP, Step.LOGIN)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is Problem.OAUTH_TOKEN_REFUSED, failed.message
    assert "Sign in again" in failed.message
    assert tokeninfo.asked[-2:] == ["at-2", "at-3"]  # renewed once, then given up
