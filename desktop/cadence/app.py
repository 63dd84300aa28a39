"""Bootstrap only: data dir, logging (secrets redacted), excepthook, database open + migrate, wiring of the
real runtime (store, scheduler, inbox watcher, keyring) and the window; the headless commands reuse the
same wiring. Start-up failures give a clear message and a non-zero exit."""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import logging.handlers
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cadence import APP_NAME
from cadence.adapters.smtp import SmtpMailer  # imported here: the scheduler makes mailers on the event loop
from cadence.core.model import Account, ConnectionSecurity
from cadence.core.ports import (
    MailboxConnector,
    Mailer,
    RuntimeApi,
    SecretStore,
    SecretStoreError,
    StorageError,
)
from cadence.paths import data_dir, database_path

log = logging.getLogger("cadence")

LOG_FILENAME = "cadence.log"

if TYPE_CHECKING:  # these import SQLAlchemy / keyring
    from cadence.adapters.db.engine import Database
    from cadence.adapters.db.store import SqliteStore
    from cadence.adapters.secrets import KeyringSecretStore, SecretRedactingFilter
    from cadence.services.accounts import AccountSetupFactory


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
    from cadence.adapters.db.engine import open_database
    from cadence.adapters.db.store import SqliteStore

    try:
        directory = data_dir(directory_override)
    except OSError as exc:
        raise StartupError(f"The data folder cannot be created: {exc}") from exc
    try:
        database = open_database(database_path(directory))
    except StorageError as exc:
        raise StartupError(str(exc)) from exc
    return Opened(directory=directory, database=database, store=SqliteStore(database))


def make_secret_store(redaction: SecretRedactingFilter | None = None) -> KeyringSecretStore:
    from cadence.adapters.secrets import KeyringSecretStore

    return KeyringSecretStore(redaction=redaction)


_SMTP_SECURITY = {ConnectionSecurity.TLS: "tls", ConnectionSecurity.STARTTLS: "starttls"}


def smtp_mailer_for(account: Account, secret: str | None) -> Mailer:
    """The account's SMTP connection (SmtpMailer). Raises ValueError for settings it cannot use."""
    settings = account.settings
    security = _SMTP_SECURITY.get(settings.smtp_security, "none")
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=security,  # type: ignore[arg-type]
        username=settings.email if secret is not None else None,
        password=secret,
        ca_file=settings.ca_file,
    )


def imap_connector_for(account: Account, secrets: SecretStore) -> MailboxConnector:
    from cadence.adapters.imap import ImapAccount, ImapConnector

    settings = account.settings

    async def secret() -> str | None:
        return await secrets.get(settings.email)

    return ImapConnector(
        ImapAccount(
            host=settings.imap_host,
            username=settings.email,
            port=settings.imap_port,
            ca_file=settings.ca_file,
        ),
        secret=secret,
    )


def account_setup_factory(
    secrets: KeyringSecretStore, redaction: SecretRedactingFilter | None
) -> AccountSetupFactory:
    """Proposals (DNS MX), the step-by-step connection test and the domain checks over the real network.
    OAuth browser sign-in is not wired here yet (the service then says it is unavailable)."""
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
        redact=redaction.add if redaction is not None else None,
    )


# --- the window ---------------------------------------------------------------------------------------------


def _fail(message: str) -> int:
    print(f"{APP_NAME} could not start: {message}", file=sys.stderr)
    return 1


def run_gui(args: argparse.Namespace) -> int:
    """`cadence` without a subcommand: the window over the real runtime."""
    try:
        opened = open_store(getattr(args, "data_dir", None))
    except StartupError as exc:
        return _fail(str(exc))
    redaction = setup_logging(opened.directory, to_stderr=False)
    log.info("%s starting with data in %s", APP_NAME, opened.directory)
    try:
        from cadence.qt.run import run_window
    except ImportError as exc:  # a broken Qt installation: say so instead of a traceback
        opened.close()
        return _fail(f"the window toolkit could not be loaded ({exc})")
    from cadence.services.runtime import Runtime

    secrets = make_secret_store(redaction)

    async def factory() -> RuntimeApi:
        runtime = Runtime(
            store=opened.store,
            secrets=secrets,
            mailer_factory=smtp_mailer_for,
            connector_factory=lambda account: imap_connector_for(account, secrets),
            on_close=opened.close,
            account_setup=account_setup_factory(secrets, redaction),
        )
        await runtime.start()
        settle_heap()
        return runtime

    try:
        return run_window(factory)
    except (StorageError, SecretStoreError) as exc:
        return _fail(str(exc))
