"""The real Runtime's inbox watcher for an OAuth account, wired as app.run_gui wires it: it logs in to a real
Dovecot (oauth2 passdb) with XOAUTH2 and an access token refreshed from the refresh token in the keyring."""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.store import SqliteStore
from cadence.adapters.oauth import RefreshingImapConnector, TokenEndpoint
from cadence.adapters.secrets import KeyringSecretStore
from cadence.app import OAuthWiring, imap_connector_for, smtp_mailer_for
from cadence.core import views as v
from cadence.core.oauth import AuthMethod
from cadence.core.ports import SecretKind
from cadence.services.runtime import Runtime
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.oauth_server import TokenInfoServer, TokenServer, oauth_server_fixture  # noqa: F401
from tests.integration.test_runtime_accounts import (  # noqa: F401
    REFRESH_TOKEN,
    database,
    db_path,
    keyring,
    make_runtime,
    store,
    until,
)
from tests.integration.test_scheduler_send import PERMISSIVE

pytestmark = pytest.mark.dovecot

GOOGLE_ENV = {"CADENCE_GOOGLE_CLIENT_ID": "g-client", "CADENCE_GOOGLE_CLIENT_SECRET": "g-secret"}


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


@pytest.mark.asyncio
async def test_the_watcher_of_an_oauth_account_logs_in_with_xoauth2_and_a_refreshed_token(
    store: SqliteStore,  # noqa: F811
    keyring: KeyringSecretStore,  # noqa: F811
    make_runtime: Callable[..., Runtime],  # noqa: F811
    oauth_dovecot: DovecotServer,
    tokeninfo: TokenInfoServer,
    oauth_server: TokenServer,
    tmp_path: Path,
) -> None:
    oauth_server.refresh_tokens = {REFRESH_TOKEN}
    oauth = OAuthWiring(
        secrets=keyring,
        environ=GOOGLE_ENV,
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "oauth-ca.pem"), timeout_s=5),
        token_url=oauth_server.url,
    )
    runtime = make_runtime(
        store=store,
        secrets=keyring,
        mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth),
        connector_factory=functools.partial(imap_connector_for, secrets=keyring, oauth=oauth),
    )
    activity: list[v.RuntimeEvent] = []
    runtime.subscribe(activity.append)
    await runtime.start()
    await keyring.set(oauth_dovecot.user, REFRESH_TOKEN, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    account_id = await runtime.save_account_settings(
        v.AccountSettings(
            email=oauth_dovecot.user,
            display_name="Seller",
            smtp_host="127.0.0.1",
            imap_host="127.0.0.1",
            imap_port=oauth_dovecot.imaps_port,
            ca_file=str(oauth_dovecot.ca_file),
            provider_key="google_workspace",
            auth_method=AuthMethod.OAUTH_GOOGLE,
            guardrails=PERMISSIVE,
        )
    )
    await until(lambda: "at-1" in tokeninfo.asked, timeout_s=20)
    await until(lambda: "method=XOAUTH2" in oauth_dovecot.log_tail(80), timeout_s=10)
    assert [r["refresh_token"] for r in oauth_server.requests] == [REFRESH_TOKEN]
    assert oauth_server.requests[0]["client_id"] == "g-client"
    await asyncio.sleep(0.3)
    errors = [e for e in activity if isinstance(e, v.ActivityAdded) and e.entry.severity is v.Severity.ERROR]
    assert errors == []

    account = store.get_account(account_id)
    connector = imap_connector_for(account, keyring, oauth=oauth)
    assert isinstance(connector, RefreshingImapConnector) and connector.account.oauth2
    mailbox = await connector()  # the same token source: the token fetched above is reused
    try:
        assert (await mailbox.folders()).sent == "Sent"
    finally:
        await mailbox.close()
    assert len(oauth_server.requests) == 1
