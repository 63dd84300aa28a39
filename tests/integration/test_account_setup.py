"""AccountSetupService over real components: DnsResolver against a local authoritative DNS server, the
NetworkProbe against the scripted aiosmtpd peer and a real Dovecot, the real Secret Service (gnome-keyring)
and a migrated SQLite store on its database worker. Only the browser part of an OAuth sign-in is scripted
(no browser here); what happens to its tokens is real."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import inspect, text

from cadence import APP_ID
from cadence.adapters.connection_probe import NetworkProbe
from cadence.adapters.db.engine import create_sqlite_engine, migrate, open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.dns import DnsResolver
from cadence.adapters.secrets import KeyringSecretStore, SecretRedactingFilter
from cadence.core import views as v
from cadence.core.model import AccountSettings, Step
from cadence.core.oauth import AccessToken, AuthMethod, OAuthError, OAuthErrorKind, OAuthProvider, TokenGrant
from cadence.core.ports import SecretKind, UserFacingError
from cadence.services.accounts import AccountSetupService
from cadence.services.dbworker import DbWorker
from tests.integration.dns_server import ZoneServer
from tests.integration.dovecot import DovecotServer, running_dovecot
from tests.integration.smtp_peer import ScriptedSmtpPeer

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

ZONE = """
workspace.test.      300 IN MX 1 aspmx.l.google.com.
workspace.test.      300 IN MX 5 alt1.aspmx.l.google.com.
contoso.test.        300 IN MX 0 contoso-test.mail.protection.outlook.com.
selfhosted.test.     300 IN MX 10 mx.selfhosted.test.
mx.selfhosted.test.  300 IN A 192.0.2.20
filtered.test.       300 IN MX 10 eu-smtp-inbound-1.mimecast.com.
nomx.test.           300 IN A 192.0.2.30

signed.test.                   300 IN TXT "v=spf1 include:_spf.google.com ~all"
_spf.google.com.               300 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
google._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
_dmarc.signed.test.            300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@signed.test"
signed.test.                   300 IN MX 1 aspmx.l.google.com.
bare.test.                     300 IN MX 1 aspmx.l.google.com.
"""


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dns_server() -> Iterator[ZoneServer]:
    with ZoneServer(ZONE, servfail={"broken.test"}, drop={"slow.test"}) as server:
        yield server


@pytest.fixture
def resolver(dns_server: ZoneServer) -> DnsResolver:
    return DnsResolver(
        nameservers=["127.0.0.1"], port=dns_server.port, timeout_s=0.3, lifetime_s=0.6, canary_domain=None
    )


@pytest.fixture
def secret_service() -> object:
    try:
        from keyring.backends import SecretService

        assert SecretService.Keyring.priority > 0
    except Exception as error:
        pytest.skip(
            f"no Secret Service reachable ({error}); run inside dbus-run-session with "
            "gnome-keyring-daemon --unlock --components=secrets (tests/run.sh does this)"
        )
    return SecretService.Keyring()


@pytest.fixture
def keyring(secret_service: object) -> Iterator[KeyringSecretStore]:
    name = f"{APP_ID}.setup-{uuid.uuid4().hex[:8]}"
    yield KeyringSecretStore(backend=secret_service, service=name, timeout_s=15)  # type: ignore[arg-type]
    collection = secret_service.get_preferred_collection()  # type: ignore[attr-defined]
    for item in collection.search_items({"service": name}):
        item.delete()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest_asyncio.fixture
async def db() -> AsyncIterator[DbWorker]:
    worker = DbWorker()
    yield worker
    worker.shutdown()


@dataclass
class ScriptedSignIn:
    """The browser step of a sign-in, scripted: who signed in and what the provider issued (or an error)."""

    username: str
    refresh_token: str | None = "1//refresh-token-from-the-provider"
    error: OAuthError | None = None

    async def __call__(self, provider: OAuthProvider, email: str) -> ScriptedSignIn.Result:
        if self.error is not None:
            raise self.error
        grant = TokenGrant(
            AccessToken("ya29.access-token", NOW + timedelta(hours=1)), refresh_token=self.refresh_token
        )
        return ScriptedSignIn.Result(self.username, grant)

    @dataclass(frozen=True)
    class Result:
        username: str
        grant: TokenGrant


def service(
    *,
    keyring: KeyringSecretStore | None = None,
    resolver: DnsResolver | None = None,
    **kwargs: object,
) -> AccountSetupService:
    async def no_mx(domain: str) -> tuple[str, ...]:
        raise AssertionError("no MX lookup expected")

    return AccountSetupService(
        secrets=keyring,  # type: ignore[arg-type]
        mx_hosts=resolver.mx_hosts if resolver is not None else no_mx,
        probe=NetworkProbe(),
        domain_health_lookup=resolver.sending_domain_health if resolver is not None else None,
        **kwargs,  # type: ignore[arg-type]
    )


# --- proposals ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_well_known_domain_needs_no_dns(resolver: DnsResolver) -> None:
    proposal = await service(resolver=None).propose_account("Sam.Rivera@GMAIL.com")
    assert proposal.email == "Sam.Rivera@gmail.com"
    assert (proposal.smtp.host, proposal.smtp.port, proposal.smtp.tls) == (
        "smtp.gmail.com",
        587,
        v.TlsMode.STARTTLS,
    )
    assert v.ServerChoice("smtp.gmail.com", 465, v.TlsMode.IMPLICIT) in proposal.smtp_alternatives
    assert proposal.note == "Gmail: use an app password or sign in with Google."
    assert proposal.oauth_provider is OAuthProvider.GOOGLE and proposal.needs_app_password
    assert proposal.daily_limit == 500 and not proposal.guessed


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("address", "provider", "smtp_host", "note_start", "oauth"),
    [
        ("sam@workspace.test", "google_workspace", "smtp.gmail.com", "Google Workspace: use an", "google"),
        ("lee@contoso.test", "microsoft365", "smtp.office365.com", "Microsoft 365: sign in", "microsoft"),
        ("ana@selfhosted.test", None, "smtp.selfhosted.test", "Guessed from your domain", None),
        ("bo@filtered.test", None, "smtp.filtered.test", "Guessed from your domain", None),
        ("cy@nomx.test", None, "smtp.nomx.test", "Guessed from your domain", None),
    ],
)  # fmt: skip
async def test_custom_domains_are_proposed_from_their_mx_hosts(
    resolver: DnsResolver,
    address: str,
    provider: str | None,
    smtp_host: str,
    note_start: str,
    oauth: str | None,
) -> None:
    proposal = await service(resolver=resolver).propose_account(address)
    assert proposal.provider_key == provider
    assert proposal.smtp.host == smtp_host
    assert proposal.note.startswith(note_start)
    assert (proposal.oauth_provider.value if proposal.oauth_provider else None) == oauth
    assert proposal.guessed is (provider is None)


@pytest.mark.asyncio
async def test_mx_notes_say_where_the_mail_goes_or_that_none_was_found(resolver: DnsResolver) -> None:
    contoso = await service(resolver=resolver).propose_account("lee@contoso.test")
    assert any("contoso.test receives its mail at Microsoft 365" in n for n in contoso.notes)
    filtered = await service(resolver=resolver).propose_account("bo@filtered.test")
    assert any("filtering service (mimecast)" in n for n in filtered.notes)
    none = await service(resolver=resolver).propose_account("cy@nomx.test")
    assert any(n.startswith("No mail servers (MX)") for n in none.notes)


@pytest.mark.asyncio
@pytest.mark.parametrize("domain", ["broken.test", "slow.test"])  # SERVFAIL / no answer at all
async def test_a_failed_mx_lookup_gives_a_guess_that_says_dns_failed(
    resolver: DnsResolver, domain: str
) -> None:
    proposal = await service(resolver=resolver, mx_timeout_s=2.0).propose_account(f"x@{domain}")
    assert proposal.guessed and proposal.smtp.host == f"smtp.{domain}"
    assert any(f"mail servers of {domain} could not be looked up" in n for n in proposal.notes)
    assert not any(n.startswith("No mail servers (MX)") for n in proposal.notes)  # not known to be absent


@pytest.mark.asyncio
@pytest.mark.parametrize("text", ["", "not an address", "sam@", "sam@@example.com"])
async def test_a_bad_address_is_a_user_facing_error(resolver: DnsResolver, text: str) -> None:
    with pytest.raises(UserFacingError) as raised:
        await service(resolver=resolver).propose_account(text)
    assert str(raised.value) and "Traceback" not in str(raised.value)


# --- the connection test ------------------------------------------------------------------------------------


@pytest.fixture
def dovecot_server() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


@pytest_asyncio.fixture
async def peer(dovecot_server: DovecotServer) -> AsyncIterator[ScriptedSmtpPeer]:
    server = ScriptedSmtpPeer(
        ca=dovecot_server.ca, mode="starttls", users={dovecot_server.user: dovecot_server.password}
    )
    await server.start()
    yield server
    await server.stop()


def view_for(peer: ScriptedSmtpPeer, dovecot: DovecotServer, **changes: object) -> v.AccountSettings:
    values: dict[str, object] = {
        "email": dovecot.user,
        "display_name": "Sam Seller",
        "smtp_host": "127.0.0.1",
        "smtp_port": peer.port,
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.imaps_port,
        "ca_file": str(dovecot.ca_file),
    }
    values.update(changes)
    return v.AccountSettings(**values)  # type: ignore[arg-type]


@pytest.mark.dovecot
@pytest.mark.keyring
@pytest.mark.asyncio
async def test_the_stored_password_passes_every_step_and_steps_stream(
    keyring: KeyringSecretStore, peer: ScriptedSmtpPeer, dovecot_server: DovecotServer
) -> None:
    await keyring.set(dovecot_server.user, dovecot_server.password)
    seen: list[v.ConnectionStepView] = []
    report = await service(keyring=keyring, step_timeout_s=10).test_connection(
        view_for(peer, dovecot_server), on_step=seen.append
    )
    assert report.ok, [f.message for f in report.failures]
    assert list(report.steps) == seen
    assert [(s.server, s.step) for s in seen] == [
        *(("SMTP", step) for step in ("dns", "tcp", "tls", "certificate", "login")),
        *(("IMAP", step) for step in ("dns", "tcp", "tls", "certificate", "login", "sent_folder")),
    ]
    assert seen[-1].message == "Sent mail is in “Sent”."
    assert peer.auth_attempts[-1].ok and peer.auth_attempts[-1].secret == dovecot_server.password


@pytest.mark.dovecot
@pytest.mark.keyring
@pytest.mark.asyncio
async def test_a_typed_password_is_tried_not_stored_and_a_wrong_one_gets_advice(
    keyring: KeyringSecretStore, peer: ScriptedSmtpPeer, dovecot_server: DovecotServer
) -> None:
    redaction = SecretRedactingFilter()
    setup = service(keyring=keyring, step_timeout_s=10, redact=redaction.add)
    report = await setup.test_connection(view_for(peer, dovecot_server), password="typed-wrong-password")
    assert [(f.server, f.step) for f in report.failures] == [("SMTP", "login"), ("IMAP", "login")]
    smtp_login = report.failures[0]
    assert "did not accept the user name or password" in smtp_login.message
    assert "typed-wrong-password" not in smtp_login.message
    assert await keyring.get(dovecot_server.user) is None  # only tried, never stored
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "tried %s", ("typed-wrong-password",), None)
    redaction.filter(record)  # a typed password is hidden from the log before it was ever stored
    assert record.getMessage() == "tried [redacted]"
    nothing = await setup.test_connection(view_for(peer, dovecot_server))  # nothing typed, nothing stored
    assert nothing.failures[0].message.startswith("No password")


@pytest.mark.dovecot
@pytest.mark.keyring
@pytest.mark.asyncio
async def test_an_unknown_host_fails_at_dns_and_the_other_server_is_still_tested(
    keyring: KeyringSecretStore, peer: ScriptedSmtpPeer, dovecot_server: DovecotServer
) -> None:
    await keyring.set(dovecot_server.user, dovecot_server.password)
    report = await service(keyring=keyring, step_timeout_s=10).test_connection(
        view_for(peer, dovecot_server, smtp_host="smtp.no-such-host.invalid")
    )
    smtp = [s for s in report.steps if s.server == "SMTP"]
    assert [s.state for s in smtp] == [v.StepState.FAILED, *[v.StepState.SKIPPED] * 4]
    assert "smtp.no-such-host.invalid" in smtp[0].message
    assert all(s.ok for s in report.steps if s.server == "IMAP")


# --- OAuth sign-in ------------------------------------------------------------------------------------------


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_sign_in_keeps_the_refresh_token_in_the_keyring_only(keyring: KeyringSecretStore) -> None:
    redaction = SecretRedactingFilter()
    flow = ScriptedSignIn(username="Sam@Workspace.test")
    setup = service(keyring=keyring, sign_in=flow, redact=redaction.add)
    await setup.sign_in_oauth("sam@workspace.test", OAuthProvider.GOOGLE)
    assert await keyring.get("sam@workspace.test", kind=SecretKind.OAUTH_REFRESH_TOKEN) == flow.refresh_token
    assert await keyring.get("sam@workspace.test") is None  # no password entry was made
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "token %s / %s", (flow.refresh_token, "ya29.access-token"), None
    )
    redaction.filter(record)
    assert record.getMessage() == "token [redacted] / [redacted]"


@pytest.mark.keyring
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("flow", "message"),
    [
        (
            ScriptedSignIn(username="someone.else@workspace.test"),
            "You signed in as someone.else@workspace.test",
        ),
        (ScriptedSignIn(username="sam@workspace.test", refresh_token=None), "no refresh token"),
        (
            ScriptedSignIn(
                username="",
                error=OAuthError("The Google sign-in was cancelled.", kind=OAuthErrorKind.CANCELLED),
            ),
            "The Google sign-in was cancelled.",
        ),
    ],
)
async def test_a_failed_sign_in_stores_nothing_and_says_why(
    keyring: KeyringSecretStore, flow: ScriptedSignIn, message: str
) -> None:
    with pytest.raises(UserFacingError, match=message):
        await service(keyring=keyring, sign_in=flow).sign_in_oauth("sam@workspace.test", OAuthProvider.GOOGLE)
    assert await keyring.get("sam@workspace.test", kind=SecretKind.OAUTH_REFRESH_TOKEN) is None


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_without_a_sign_in_flow_the_user_is_told(keyring: KeyringSecretStore) -> None:
    with pytest.raises(UserFacingError, match="not available"):
        await service(keyring=keyring).sign_in_oauth("sam@workspace.test", OAuthProvider.GOOGLE)


# --- removing an account ------------------------------------------------------------------------------------


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_remove_account_deletes_the_row_and_every_secret(
    keyring: KeyringSecretStore, store: SqliteStore, db: DbWorker
) -> None:
    account = await db.call(
        store.create_account, AccountSettings(email="gone@example.test", smtp_host="s"), now=NOW
    )
    kept = await db.call(
        store.create_account, AccountSettings(email="kept@example.test", smtp_host="s"), now=NOW
    )
    for kind in SecretKind:
        await keyring.set("gone@example.test", f"secret-{kind.value}", kind=kind)
    await keyring.set("kept@example.test", "kept-password")
    await service(keyring=keyring, store=store, db=db).remove_account(account.id)
    assert [a.email for a in await db.call(store.list_accounts)] == ["kept@example.test"]
    for kind in SecretKind:
        assert await keyring.get("gone@example.test", kind=kind) is None
    assert await keyring.get("kept@example.test") == "kept-password"
    with pytest.raises(UserFacingError, match="no longer exists"):
        await service(keyring=keyring, store=store, db=db).remove_account(account.id)
    assert kept.id != account.id


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_an_account_with_campaigns_is_not_removed_and_keeps_its_password(
    keyring: KeyringSecretStore, store: SqliteStore, db: DbWorker
) -> None:
    account = await db.call(
        store.create_account, AccountSettings(email="busy@example.test", smtp_host="s"), now=NOW
    )
    await db.call(
        store.create_campaign,
        name="Q4",
        account_id=account.id,
        steps=[Step(index=1, subject="s", body="b")],
        now=NOW,
    )
    await keyring.set("busy@example.test", "still-needed")
    with pytest.raises(UserFacingError, match="still sends 1 campaign"):
        await service(keyring=keyring, store=store, db=db).remove_account(account.id)
    assert (await db.call(store.get_account, account.id)).email == "busy@example.test"
    assert await keyring.get("busy@example.test") == "still-needed"


# --- domain checks ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_domain_health_lists_spf_dkim_dmarc_with_fixes(resolver: DnsResolver) -> None:
    signed = {c.name: c for c in await service(resolver=resolver).domain_health("sam@signed.test")}
    assert {"SPF", "DKIM", "DMARC"} <= set(signed)
    assert signed["SPF"].state is v.CheckState.PASS
    assert signed["DKIM"].state is v.CheckState.PASS
    bare = {c.name: c for c in await service(resolver=resolver).domain_health("sam@bare.test")}
    assert bare["SPF"].state is not v.CheckState.PASS and bare["SPF"].detail
    assert bare["DMARC"].state is not v.CheckState.PASS and bare["DMARC"].detail


# --- storage: the auth method and its migration -------------------------------------------------------------


def test_auth_method_round_trips_through_the_store(store: SqliteStore) -> None:
    created = store.create_account(
        AccountSettings(email="o@example.test", smtp_host="s", auth_method=AuthMethod.OAUTH_MICROSOFT),
        now=NOW,
    )
    assert store.get_account(created.id).settings.auth_method is AuthMethod.OAUTH_MICROSOFT
    updated = store.update_account(
        created.id, settings=AccountSettings(email="o@example.test", smtp_host="s")
    )
    assert updated.settings.auth_method is AuthMethod.PASSWORD


def test_a_database_at_0002_upgrades_and_its_accounts_sign_in_with_passwords(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    engine = create_sqlite_engine(path)
    migrate(engine, path=path, revision="0002")
    with engine.begin() as connection:
        assert "auth_method" not in {c["name"] for c in inspect(connection).get_columns("accounts")}
        connection.execute(
            text(
                "INSERT INTO accounts (id, email, display_name, smtp_host, smtp_port, smtp_security,"
                " imap_host, imap_port, imap_security, guardrails, sent_folder_kind, created_at)"
                " VALUES (1, 'old@example.test', 'Old', 'smtp.x', 587, 'starttls', 'imap.x', 993, 'tls',"
                " '{}', 'app_appends', '2026-11-20T10:00:00.000000+00:00')"
            )
        )
    engine.dispose()
    database = open_database(path)
    try:
        account = SqliteStore(database).get_account(1)
        assert account.settings.auth_method is AuthMethod.PASSWORD
        assert account.email == "old@example.test"
    finally:
        database.close()


# --- testing an OAuth account -----------------------------------------------------------------------------


@pytest.mark.dovecot
@pytest.mark.keyring
@pytest.mark.asyncio
async def test_right_after_sign_in_the_test_logs_in_with_the_new_access_token(
    keyring: KeyringSecretStore, peer: ScriptedSmtpPeer, dovecot_server: DovecotServer
) -> None:
    user = dovecot_server.user
    peer.tokens[user] = "ya29.access-token"  # what ScriptedSignIn's provider issued
    setup = service(keyring=keyring, sign_in=ScriptedSignIn(username=user), step_timeout_s=10, clock=_At(NOW))
    oauth_view = view_for(peer, dovecot_server, auth_method=AuthMethod.OAUTH_GOOGLE)
    with pytest.raises(UserFacingError, match=r"Sign in with Google \(the button above\)"):
        await setup.test_connection(oauth_view)
    await setup.sign_in_oauth(user, OAuthProvider.GOOGLE)
    report = await setup.test_connection(oauth_view)
    smtp = [s for s in report.steps if s.server == "SMTP"]
    assert all(s.ok for s in smtp), [s.message for s in smtp]
    assert smtp[-1].message.startswith("Signed in with XOAUTH2")
    assert peer.auth_attempts[-1].mechanism == "XOAUTH2" and peer.auth_attempts[-1].ok
    setup.clock = _At(NOW + timedelta(hours=2))  # the access token has expired, nothing can renew it here
    with pytest.raises(UserFacingError, match="Sign in with Google"):
        await setup.test_connection(oauth_view)


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_an_unconfigured_oauth_client_is_explained(keyring: KeyringSecretStore) -> None:
    def not_configured(settings: AccountSettings) -> object:
        raise OAuthError(
            "Signing in with Microsoft needs an OAuth client id.", kind=OAuthErrorKind.NOT_CONFIGURED
        )

    setup = service(keyring=keyring, token_source=not_configured)
    oauth_view = v.AccountSettings(
        email="lee@contoso.test",
        display_name="",
        smtp_host="smtp.office365.com",
        auth_method=AuthMethod.OAUTH_MICROSOFT,
    )
    with pytest.raises(UserFacingError, match="needs an OAuth client id"):
        await setup.test_connection(oauth_view)


@dataclass
class _At:
    at: datetime

    def now(self) -> datetime:
        return self.at
