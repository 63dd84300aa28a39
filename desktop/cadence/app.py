"""Bootstrap only: data dir, logging (secrets redacted), excepthook, database open + migrate, wiring of the
real runtime (store, scheduler, inbox watcher, keyring) and the window; the headless commands reuse the
same wiring. Start-up failures give a clear message and a non-zero exit.

The window path imports as little as it can before the window is on screen: adapters (SQLAlchemy, Alembic,
keyring, DNS, mail libraries) are imported on a worker thread while the window shows its loading state.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cadence import APP_NAME
from cadence.core.model import Account, AccountSettings, ConnectionSecurity
from cadence.core.oauth import OAuthClientConfig, OAuthProvider, provider_for_method, resolve_client_config
from cadence.core.ports import (
    AccountSecretStore,
    Clock,
    MailboxConnector,
    Mailer,
    RuntimeApi,
    SecretStore,
    SecretStoreError,
    StorageError,
    SystemClock,
    UserFacingError,
)

log = logging.getLogger("cadence")

LOG_FILENAME = "cadence.log"

if TYPE_CHECKING:  # these import SQLAlchemy / keyring
    from cadence.adapters.db.engine import Database
    from cadence.adapters.db.store import SqliteStore
    from cadence.adapters.oauth import OAuthTokenSource, SignInResult, TokenEndpoint
    from cadence.adapters.secrets import KeyringSecretStore, SecretRedactingFilter
    from cadence.services.accounts import AccountSetupFactory
    from cadence.services.runtime import Runtime


class StartupError(Exception):
    """Cadence cannot start; `str(error)` says why and what to do."""


# --- logging and crashes -------------------------------------------------------------------------------


def setup_logging(directory: Path, *, verbose: bool = False, to_stderr: bool = True) -> SecretRedactingFilter:
    """Log to `directory/cadence.log` (rotated) and, for headless commands, to stderr. Every handler gets
    the secrets redaction filter; returns it so the keyring can register the secrets it reads."""
    from cadence.adapters.secrets import SecretRedactingFilter

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_cadence", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            directory / LOG_FILENAME, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
    ]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    redaction = SecretRedactingFilter()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._cadence = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    redaction.install(root)
    for noisy in ("aiosmtplib", "aioimaplib", "mail.log", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redaction


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.critical("uncaught exception", exc_info=(kind, value, tb))


def install_headless_excepthook() -> None:
    sys.excepthook = _log_uncaught


def settle_heap() -> None:
    """Call once start-up is done: move everything allocated so far out of the garbage collector's view.
    A full collection over the start-up heap (SQLAlchemy, Qt wrappers, classifier tables) otherwise
    stalls the event loop for 100-200 ms now and then (measured by benchmarks/loop_stall_bench.py)."""
    gc.collect()
    gc.freeze()


# --- storage, secrets, mail --------------------------------------------------------------------------------


@dataclass
class Opened:
    directory: Path
    database: Database
    store: SqliteStore

    def close(self) -> None:
        self.database.close()


def open_store(directory_override: Path | None) -> Opened:
    """Create the data dir if needed, open and migrate the database; StartupError with a sentence."""
    # The SMTP adapter is imported here, before any event loop runs: the scheduler makes mailers on the
    # loop, and a first import there would stall it.
    import cadence.adapters.smtp  # noqa: F401
    from cadence.adapters.db.engine import open_database
    from cadence.adapters.db.store import SqliteStore
    from cadence.paths import data_dir, database_path

    try:
        directory = data_dir(directory_override)
    except OSError as exc:
        raise StartupError(f"The data folder cannot be created: {exc}") from exc
    try:
        database = open_database(database_path(directory))
    except StorageError as exc:
        raise StartupError(str(exc)) from exc
    return Opened(directory=directory, database=database, store=SqliteStore(database))


def scrub_freed_space(database: Database, *, attempts: int = 20) -> None:
    """After an erasure: rebuild the file from live rows only (VACUUM) and fold the write-ahead log into it,
    truncating the log, so deleted rows survive neither in free pages nor in old log frames. Runs on the
    store's worker thread; a long-running reader can hold the log open, so the fold is retried briefly."""
    import time

    connection = database.engine.raw_connection()
    try:
        connection.execute("VACUUM")
        for _ in range(attempts):
            busy, _log_frames, _folded = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05)
        log.warning("the database log could not be emptied after an erasure; it is retried at the next one")
    finally:
        connection.close()


def make_secret_store(redaction: SecretRedactingFilter | None = None) -> KeyringSecretStore:
    from cadence.adapters.secrets import KeyringSecretStore

    return KeyringSecretStore(redaction=redaction)


_SMTP_SECURITY = {ConnectionSecurity.TLS: "tls", ConnectionSecurity.STARTTLS: "starttls"}


@dataclass
class OAuthWiring:
    """OAuth for the running app: the client id from the environment (CADENCE_MS_CLIENT_ID, or
    CADENCE_GOOGLE_CLIENT_ID + CADENCE_GOOGLE_CLIENT_SECRET), the browser sign-in, and one access-token source
    per account, shared by its SMTP mailer and IMAP connector so one refresh serves both. The refresh token
    is read from and written to the keyring only."""

    secrets: AccountSecretStore
    clock: Clock = field(default_factory=SystemClock)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    redaction: SecretRedactingFilter | None = None
    endpoint: TokenEndpoint | None = None  # an extra CA for the token endpoint (tests, TLS proxies)
    token_url: str | None = None  # overrides the provider's token endpoint (tests, a single tenant)
    _sources: dict[tuple[str, OAuthProvider], OAuthTokenSource] = field(default_factory=dict, repr=False)

    def client_config(self, provider: OAuthProvider) -> OAuthClientConfig:
        """Raises OAuthError(NOT_CONFIGURED) naming the setting when no client id is known."""
        return resolve_client_config(provider, environ=self.environ, token_url=self.token_url)

    async def browser_sign_in(self, provider: OAuthProvider, email: str) -> SignInResult:
        from cadence.adapters.oauth import sign_in

        return await sign_in(self.client_config(provider), login_hint=email, clock=self.clock)

    def token_source(self, settings: AccountSettings) -> OAuthTokenSource:
        from cadence.adapters.oauth import OAuthTokenSource

        provider = provider_for_method(settings.auth_method)
        if provider is None:
            raise ValueError(f"{settings.email} signs in with a password, not OAuth")
        key = (settings.email.lower(), provider)
        source = self._sources.get(key)
        if source is None:
            source = OAuthTokenSource(
                account=settings.email,
                config=self.client_config(provider),
                secrets=self.secrets,
                clock=self.clock,
                endpoint=self.endpoint,
                redaction=self.redaction,
            )
            self._sources[key] = source
        return source


def smtp_mailer_for(account: Account, secret: str | None, *, oauth: OAuthWiring | None = None) -> Mailer:
    """The account's SMTP connection: XOAUTH2 with a refreshing token for an OAuth account, else the
    password. Raises ValueError (or OAuthError) for settings it cannot use; the scheduler pauses with it."""
    from cadence.adapters.smtp import SmtpMailer

    settings = account.settings
    if provider_for_method(settings.auth_method) is not None:
        if oauth is None:
            raise ValueError(f"{settings.email} signs in with OAuth, which this session cannot do")
        from cadence.adapters.oauth import RefreshingMailer

        source = oauth.token_source(settings)
        return RefreshingMailer(SmtpMailer.from_settings(settings, token_provider=source), source=source)
    security = _SMTP_SECURITY.get(settings.smtp_security, "none")
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=security,  # type: ignore[arg-type]
        username=settings.email if secret is not None else None,
        password=secret,
        ca_file=settings.ca_file,
    )


def imap_connector_for(
    account: Account, secrets: SecretStore, *, oauth: OAuthWiring | None = None
) -> MailboxConnector:
    """The account's IMAP connections: XOAUTH2 (token renewed once when refused) or the stored password."""
    from cadence.adapters.imap import ImapAccount, ImapConnector

    settings = account.settings
    oauth_account = provider_for_method(settings.auth_method) is not None
    imap_account = ImapAccount(
        host=settings.imap_host,
        username=settings.email,
        port=settings.imap_port,
        ca_file=settings.ca_file,
        oauth2=oauth_account,
    )
    if oauth_account:
        if oauth is None:
            raise ValueError(f"{settings.email} signs in with OAuth, which this session cannot do")
        from cadence.adapters.oauth import RefreshingImapConnector

        return RefreshingImapConnector(imap_account, source=oauth.token_source(settings))

    async def secret() -> str | None:
        return await secrets.get(settings.email)

    return ImapConnector(imap_account, secret=secret)


def account_setup_factory(
    secrets: KeyringSecretStore, redaction: SecretRedactingFilter | None, *, oauth: OAuthWiring | None = None
) -> AccountSetupFactory:
    """Proposals (DNS MX), the step-by-step connection test, the domain checks over the real network, and
    (with `oauth`) the browser sign-in plus XOAUTH2 tokens for testing an OAuth account's connection."""
    from cadence.adapters.connection_probe import NetworkProbe
    from cadence.adapters.dns import DnsResolver
    from cadence.services.accounts import AccountSetupService

    resolver = DnsResolver()
    return functools.partial(
        AccountSetupService,
        secrets=secrets,
        mx_hosts=resolver.mx_hosts,
        probe=NetworkProbe(),
        domain_health_lookup=resolver.sending_domain_health,
        sign_in=oauth.browser_sign_in if oauth is not None else None,
        token_source=oauth.token_source if oauth is not None else None,
        redact=redaction.add if redaction is not None else None,
    )


# --- the window ---------------------------------------------------------------------------------------------


def _fail(message: str) -> int:
    print(f"{APP_NAME} could not start: {message}", file=sys.stderr)
    return 1


@dataclass
class _WindowWiring:
    opened: Opened
    secrets: KeyringSecretStore
    redaction: SecretRedactingFilter


def _open_for_window(directory_override: Path | None) -> _WindowWiring:
    """The blocking half of the window's start-up, run on a worker thread behind the shown window: the
    data folder, database (migrated if needed), logging and keyring, plus the imports the services make
    later on the event loop (where each first import would stall it)."""
    opened = open_store(directory_override)
    try:
        redaction = setup_logging(opened.directory, to_stderr=False)
        log.info("%s starting with data in %s", APP_NAME, opened.directory)
        secrets = make_secret_store(redaction)
        import cadence.adapters.connection_probe
        import cadence.adapters.dns
        import cadence.adapters.imap
        import cadence.services.accounts
        import cadence.services.runtime  # noqa: F401
    except BaseException:
        opened.close()
        raise
    return _WindowWiring(opened=opened, secrets=secrets, redaction=redaction)


def _runtime_for_window(wiring: _WindowWiring) -> Runtime:
    from cadence.adapters.dns import DnsResolver
    from cadence.services.runtime import Runtime

    opened, secrets, redaction = wiring.opened, wiring.secrets, wiring.redaction
    oauth = OAuthWiring(secrets=secrets, redaction=redaction)
    return Runtime(
        store=opened.store,
        secrets=secrets,
        mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth),
        connector_factory=functools.partial(imap_connector_for, secrets=secrets, oauth=oauth),
        on_close=opened.close,
        account_setup=account_setup_factory(secrets, redaction, oauth=oauth),
        scrub_after_erasure=functools.partial(scrub_freed_space, opened.database),
        domain_checker=DnsResolver(),
    )


async def open_runtime(directory_override: Path | None) -> RuntimeApi:
    """The real runtime for the window, opened behind it; started. A start-up failure (data folder,
    database, keyring) is a UserFacingError carrying the sentence that says what to do."""
    try:
        wiring = await asyncio.to_thread(_open_for_window, directory_override)
    except (StartupError, StorageError, SecretStoreError) as exc:
        raise UserFacingError(str(exc)) from exc
    try:
        runtime = _runtime_for_window(wiring)
    except BaseException:
        wiring.opened.close()
        raise
    try:
        await runtime.start()
    except BaseException as exc:
        await runtime.aclose()
        if isinstance(exc, StorageError | SecretStoreError):
            raise UserFacingError(str(exc)) from exc
        raise
    settle_heap()
    return runtime


def run_gui(args: argparse.Namespace) -> int:
    """`cadence` without a subcommand: the window over the real runtime. The window shows first, in its
    loading state, and fills in once open_runtime() has opened everything behind it."""
    try:
        from cadence.qt.run import run_window
    except ImportError as exc:  # a broken Qt installation: say so instead of a traceback
        return _fail(f"the window toolkit could not be loaded ({exc})")
    try:
        return run_window(functools.partial(open_runtime, getattr(args, "data_dir", None)))
    except (StorageError, SecretStoreError) as exc:
        return _fail(str(exc))
