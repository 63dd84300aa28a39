"""The real Runtime (what the window calls) with accounts wired as app.py wires them: settings round trip
through SQLite and the Secret Service keyring, an OAuth account sending with XOAUTH2 and a refreshed token
(aiosmtpd peer + the local HTTPS token endpoint), messages in doubt settled from the window, and GDPR
erasure leaving no trace of the address in the database files.

Needs the Secret Service (tests/run.sh runs pytest inside dbus-run-session with gnome-keyring unlocked);
without it the keyring tests skip."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from cadence import APP_ID
from cadence.adapters.db.engine import Database, open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.oauth import TokenEndpoint
from cadence.adapters.secrets import KeyringSecretStore, SecretRedactingFilter
from cadence.app import OAuthWiring, imap_connector_for, scrub_freed_space, smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import MessageState, Step
from cadence.core.oauth import AuthMethod
from cadence.core.ports import SecretKind, UserFacingError
from cadence.services.runtime import Runtime
from tests.integration.oauth_server import TokenServer, oauth_server_fixture  # noqa: F401
from tests.integration.smtp_peer import (  # noqa: F401
    DEFAULT_USER,
    END_OF_DATA,
    Drop,
    ScriptedSmtpPeer,
    smtp_ca,
    smtp_ca_file,
    smtp_peer,
)
from tests.integration.test_scheduler_send import PERMISSIVE

REFRESH_TOKEN = "rt-7d1e0c5a-only-in-the-keyring"
CLIENT_ENV = {"CADENCE_MS_CLIENT_ID": "cadence-test-client"}
CSV = b"Email,First name,Company\nann@example.com,Ann,Acme\nbob@example.com,Bob,Beta\n"


@pytest.fixture
def keyring() -> Iterator[KeyringSecretStore]:
    try:
        from keyring.backends import SecretService

        assert SecretService.Keyring.priority > 0
    except Exception as error:
        pytest.skip(
            f"no Secret Service reachable ({error}); run inside dbus-run-session with "
            "gnome-keyring-daemon --unlock --components=secrets (tests/run.sh does this)"
        )
    backend = SecretService.Keyring()
    name = f"{APP_ID}.runtime-{uuid.uuid4().hex[:8]}"
    yield KeyringSecretStore(backend=backend, service=name, timeout_s=15)
    for item in backend.get_preferred_collection().search_items({"service": name}):
        item.delete()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cadence.sqlite3"


@pytest.fixture
def database(db_path: Path) -> Iterator[Database]:
    opened = open_database(db_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def store(database: Database) -> SqliteStore:
    return SqliteStore(database)


@pytest_asyncio.fixture
async def make_runtime() -> AsyncIterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(**kwargs: object) -> Runtime:
        runtime = Runtime(**kwargs)  # type: ignore[arg-type]
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.aclose()


async def until(condition: Callable[[], object], *, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


def account_view(peer: ScriptedSmtpPeer, ca_file: Path, **changes: object) -> v.AccountSettings:
    view = v.AccountSettings(
        email=DEFAULT_USER,
        display_name="Alice",
        smtp_host=peer.host,
        smtp_port=peer.port,
        smtp_tls=v.TlsMode.STARTTLS,
        guardrails=PERMISSIVE,
        ca_file=str(ca_file),
    )
    return replace(view, **changes)  # type: ignore[arg-type]


def campaign(account_id: int, csv: bytes = CSV) -> v.NewCampaign:
    return v.NewCampaign(
        name="Autumn",
        account_id=account_id,
        steps=(Step(1, "Hi {first_name}", "Hello {first_name} at {company}"),),
        csv_bytes=csv,
        mapping={"Email": "email", "First name": "first_name", "Company": "company"},
        start_now=True,
    )


def database_bytes(db_path: Path) -> bytes:
    wal = db_path.with_name(db_path.name + "-wal")
    return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# --- settings round trip --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_account_settings_round_trip_with_provider_auth_method_ca_file_and_sign_in_state(
    store: SqliteStore,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    runtime = make_runtime(store=store, secrets=keyring, mailer_factory=smtp_mailer_for)
    await runtime.start()
    saved = account_view(
        smtp_peer, smtp_ca_file, provider_key="microsoft365", auth_method=AuthMethod.OAUTH_MICROSOFT
    )
    account_id = await runtime.save_account_settings(saved)
    got = await runtime.get_account_settings(account_id)
    assert (got.provider_key, got.auth_method, got.ca_file) == (
        "microsoft365",
        AuthMethod.OAUTH_MICROSOFT,
        str(smtp_ca_file),
    )
    assert (got.has_password, got.has_oauth_sign_in) == (False, False)

    await keyring.set(DEFAULT_USER, REFRESH_TOKEN, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    got = await runtime.get_account_settings(account_id)
    assert got.has_oauth_sign_in and not got.has_password

    # a caller that does not know the CA file (None) keeps it; the window's round trip changes it
    await runtime.save_account_settings(replace(got, ca_file=None, display_name="Alice B."))
    again = await runtime.get_account_settings(account_id)
    assert (again.ca_file, again.display_name) == (str(smtp_ca_file), "Alice B.")
    other_ca = str(tmp_path / "other-ca.pem")
    await runtime.save_account_settings(
        replace(again, ca_file=other_ca, auth_method=AuthMethod.PASSWORD, provider_key=None), password="pw-1"
    )
    final = await runtime.get_account_settings(account_id)
    assert (final.ca_file, final.auth_method, final.provider_key) == (other_ca, AuthMethod.PASSWORD, None)
    assert final.has_password and not final.has_oauth_sign_in  # a password account is not "signed in"
    assert store.get_account(account_id).settings.auth_method is AuthMethod.PASSWORD


# --- OAuth end to end -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_oauth_account_sends_with_a_refreshed_token_and_the_refresh_token_stays_in_the_keyring(
    store: SqliteStore,
    db_path: Path,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
    oauth_server: TokenServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    oauth_server.refresh_tokens = {REFRESH_TOKEN}
    oauth_server.rotate = True  # Microsoft hands out a new refresh token with each refresh
    smtp_peer.tokens[DEFAULT_USER] = "at-1"  # the first access token the endpoint issues
    redaction = SecretRedactingFilter()
    oauth = OAuthWiring(
        secrets=keyring,
        environ=CLIENT_ENV,
        redaction=redaction,
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "oauth-ca.pem"), timeout_s=5),
        token_url=oauth_server.url,
    )
    runtime = make_runtime(
        store=store, secrets=keyring, mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth)
    )
    await runtime.start()
    await keyring.set(DEFAULT_USER, REFRESH_TOKEN, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    account_id = await runtime.save_account_settings(
        account_view(
            smtp_peer, smtp_ca_file, provider_key="microsoft365", auth_method=AuthMethod.OAUTH_MICROSOFT
        )
    )
    await runtime.create_campaign(campaign(account_id))
    await until(lambda: len(smtp_peer.accepted) == 2)

    assert {m.recipients for m in smtp_peer.accepted} == {("ann@example.com",), ("bob@example.com",)}
    logins = [(a.mechanism, a.login, a.secret, a.ok) for a in smtp_peer.auth_attempts]
    assert logins and set(logins) == {("XOAUTH2", DEFAULT_USER, "at-1", True)}
    assert [r["refresh_token"] for r in oauth_server.requests] == [REFRESH_TOKEN]  # one refresh, two sends
    assert oauth_server.requests[0]["client_id"] == "cadence-test-client"
    rotated = await keyring.get(DEFAULT_USER, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    assert rotated == "rt-1" and rotated in oauth_server.refresh_tokens  # the renewed one was stored
    assert await keyring.get(DEFAULT_USER) is None  # no password anywhere

    dump = database_bytes(db_path)
    for secret in (REFRESH_TOKEN, "rt-1"):
        assert secret.encode() not in dump
        assert secret not in caplog.text
    assert (await runtime.get_account_settings(account_id)).has_oauth_sign_in
    assert {m.state for m in store.list_messages()} == {MessageState.SENT}


@pytest.mark.asyncio
async def test_an_oauth_account_without_a_client_id_pauses_with_a_sentence_and_sends_nothing(
    store: SqliteStore,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
) -> None:
    oauth = OAuthWiring(secrets=keyring, environ={})
    runtime = make_runtime(
        store=store, secrets=keyring, mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth)
    )
    await runtime.start()
    account_id = await runtime.save_account_settings(
        account_view(smtp_peer, smtp_ca_file, auth_method=AuthMethod.OAUTH_GOOGLE)
    )
    await runtime.create_campaign(campaign(account_id))
    await until(lambda: store.get_account(account_id).paused_reason is not None)
    reason = store.get_account(account_id).paused_reason or ""
    assert "CADENCE_GOOGLE_CLIENT_ID" in reason
    assert smtp_peer.received == [] and smtp_peer.connections == 0
    assert MessageState.SENDING not in {m.state for m in store.list_messages()}  # nothing left in doubt


@pytest.mark.asyncio
async def test_an_inbox_that_cannot_be_read_with_these_settings_is_reported_not_fatal(
    store: SqliteStore,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
) -> None:
    oauth = OAuthWiring(secrets=keyring, environ={})  # no client id configured anywhere
    runtime = make_runtime(
        store=store,
        secrets=keyring,
        mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth),
        connector_factory=functools.partial(imap_connector_for, secrets=keyring, oauth=oauth),
    )
    events: list[v.RuntimeEvent] = []
    runtime.subscribe(events.append)
    await runtime.start()
    view = account_view(
        smtp_peer, smtp_ca_file, imap_host="127.0.0.1", auth_method=AuthMethod.OAUTH_MICROSOFT
    )
    account_id = await runtime.save_account_settings(view)
    errors = [
        e.entry for e in events if isinstance(e, v.ActivityAdded) and e.entry.severity is v.Severity.ERROR
    ]
    assert len(errors) == 1
    assert "inbox of alice@example.test cannot be read" in errors[0].summary
    assert "CADENCE_MS_CLIENT_ID" in errors[0].summary
    assert (await runtime.get_account_settings(account_id)).auth_method is AuthMethod.OAUTH_MICROSOFT
    await runtime.aclose()
    restarted = make_runtime(
        store=store,
        secrets=keyring,
        mailer_factory=smtp_mailer_for,
        connector_factory=functools.partial(imap_connector_for, secrets=keyring, oauth=oauth),
    )
    await restarted.start()  # the same account at start-up: still no crash


# --- messages in doubt ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_in_doubt_messages_are_listed_and_settled_as_sent_or_sent_again_with_the_same_message_id(
    store: SqliteStore,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
) -> None:
    runtime = make_runtime(store=store, secrets=keyring, mailer_factory=smtp_mailer_for)
    await runtime.start()
    assert await runtime.list_in_doubt() == []
    smtp_peer.on(END_OF_DATA, Drop(), times=2)  # both messages are handed over, then the line drops
    account_id = await runtime.save_account_settings(
        account_view(smtp_peer, smtp_ca_file), password="alice-secret-pw"
    )
    events: list[v.RuntimeEvent] = []
    runtime.subscribe(events.append)
    await runtime.create_campaign(campaign(account_id))
    await until(lambda: len(smtp_peer.received) == 2)
    in_doubt: list[v.InDoubtView] = []

    async def both_listed() -> None:
        while len(in_doubt) < 2:
            in_doubt[:] = await runtime.list_in_doubt()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(both_listed(), 10)
    assert smtp_peer.accepted == []
    by_recipient = {item.recipient: item for item in in_doubt}
    assert set(by_recipient) == {"ann@example.com", "bob@example.com"}
    ann, bob = by_recipient["ann@example.com"], by_recipient["bob@example.com"]
    assert ann.account_email == DEFAULT_USER and ann.subject == "Hi Ann"
    assert "connection dropped after the message was handed over" in ann.why
    received_ids = {m.message_id for m in smtp_peer.received}
    assert {ann.message_id, bob.message_id} == received_ids

    await runtime.settle_in_doubt(ann.id, sent=True)
    await runtime.settle_in_doubt(bob.id, sent=False)
    await until(lambda: len(smtp_peer.accepted) == 1)
    assert smtp_peer.accepted[0].recipients == ("bob@example.com",)
    assert smtp_peer.accepted[0].message_id == bob.message_id  # the same Message-ID: a duplicate is droppable
    await until(lambda: store.get_message(bob.id).state is MessageState.SENT)
    assert store.get_message(ann.id).state is MessageState.SENT
    assert await runtime.list_in_doubt() == []
    assert any(isinstance(e, v.DeliverabilityChanged) for e in events)
    with pytest.raises(UserFacingError, match="no longer in doubt"):
        await runtime.settle_in_doubt(ann.id, sent=False)
    with pytest.raises(UserFacingError, match="no longer exists"):
        await runtime.settle_in_doubt(987654, sent=True)
    await asyncio.sleep(0.2)
    assert [m.recipients for m in smtp_peer.accepted] == [("bob@example.com",)]  # ann was never resent
    reasons = {(e.recipient, e.reason) for e in store.query_audit(limit=100)}
    assert ("ann@example.com", "in doubt: the user says it arrived") in reasons
    assert ("bob@example.com", "in doubt: the user asked to send it again") in reasons


# --- GDPR erasure ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_forget_person_erases_every_byte_of_the_address_and_the_hash_still_blocks_it(
    store: SqliteStore,
    database: Database,
    db_path: Path,
    keyring: KeyringSecretStore,
    make_runtime: Callable[..., Runtime],
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
) -> None:
    runtime = make_runtime(
        store=store,
        secrets=keyring,
        mailer_factory=smtp_mailer_for,
        scrub_after_erasure=functools.partial(scrub_freed_space, database),  # as app.run_gui wires it
    )
    await runtime.start()
    account_id = await runtime.save_account_settings(
        account_view(smtp_peer, smtp_ca_file), password="alice-secret-pw"
    )
    await runtime.create_campaign(campaign(account_id))
    await until(lambda: len(smtp_peer.accepted) == 2)
    await until(lambda: {m.state for m in store.list_messages()} == {MessageState.SENT})
    assert b"ann@example.com" in database_bytes(db_path)  # the dump below can see the address

    await runtime.forget_person("  Ann@Example.com ")

    dump = database_bytes(db_path).lower()
    assert b"ann@example.com" not in dump
    assert b"hello ann at acme" not in dump  # the message body went too
    assert b"bob@example.com" in dump  # nobody else was touched
    entries = await runtime.list_suppressions("", 0, 50)
    assert [e.reason.value for e in entries] == ["erased"] and entries[0].value.startswith("erased:")
    assert store.is_suppressed("ann@example.com")

    await runtime.create_campaign(
        replace(campaign(account_id, b"Email,First name,Company\nann@example.com,Ann,Acme\n"), name="Again")
    )
    await asyncio.sleep(0.5)
    assert len(smtp_peer.accepted) == 2  # never written to again
    assert all(
        m.state is not MessageState.SENT for m in store.list_messages() if m.recipient == "ann@example.com"
    )
    with pytest.raises(UserFacingError):
        await runtime.forget_person("@example.com")
