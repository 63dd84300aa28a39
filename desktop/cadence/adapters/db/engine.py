"""Opening the SQLite database: connection settings, migrations to head, and error translation.

Every write transaction starts with BEGIN IMMEDIATE, so two processes never both read "one slot left" and
then both write: the second waits (busy_timeout) until the first commits, and then sees its row.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, exc, insert, select
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry

from cadence.adapters.db import tables
from cadence.core.ports import DuplicateRecord, RecordNotFound, StorageError, StorageErrorKind

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 5000
READ_ONLY_OPTION = "cadence_read_only"

_KIND_BY_ERROR_NAME = {
    "SQLITE_FULL": StorageErrorKind.FULL,
    "SQLITE_READONLY": StorageErrorKind.READ_ONLY,
    "SQLITE_BUSY": StorageErrorKind.LOCKED,
    "SQLITE_LOCKED": StorageErrorKind.LOCKED,
    "SQLITE_CORRUPT": StorageErrorKind.CORRUPT,
    "SQLITE_NOTADB": StorageErrorKind.CORRUPT,
    "SQLITE_CANTOPEN": StorageErrorKind.UNAVAILABLE,
    "SQLITE_IOERR": StorageErrorKind.UNAVAILABLE,
    "SQLITE_PERM": StorageErrorKind.READ_ONLY,
    "SQLITE_AUTH": StorageErrorKind.READ_ONLY,
}

_MESSAGES = {
    StorageErrorKind.FULL: "The disk holding the Cadence database ({path}) is full. Free some space and try "
    "again; the last change was not saved.",
    StorageErrorKind.READ_ONLY: "The Cadence database ({path}) cannot be written (read-only file, folder or "
    "disk). Check its permissions; the last change was not saved.",
    StorageErrorKind.LOCKED: "The Cadence database ({path}) stayed locked by another program or Cadence "
    "window. Close the other one and try again; the last change was not saved.",
    StorageErrorKind.CORRUPT: "The Cadence database ({path}) is damaged or is not a Cadence database. "
    "Restore it from a backup or start with a new data folder.",
    StorageErrorKind.UNAVAILABLE: "The Cadence database ({path}) cannot be opened or read (missing folder, "
    "disk error or permissions).",
    StorageErrorKind.TOO_NEW: "The Cadence database ({path}) was written by a newer version of Cadence. "
    "Update Cadence to open it.",
}


def storage_error(kind: StorageErrorKind, *, path: Path, detail: str = "") -> StorageError:
    message = _MESSAGES[kind].format(path=path)
    if detail:
        message = f"{message} ({detail})"
    return StorageError(message, kind=kind)


def _kind_of(error: BaseException) -> StorageErrorKind | None:
    name = getattr(error, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, kind in _KIND_BY_ERROR_NAME.items():
            if name == prefix or name.startswith(prefix + "_"):
                return kind
    text = str(error).lower()
    if "disk is full" in text:
        return StorageErrorKind.FULL
    if "readonly" in text or "read-only" in text:
        return StorageErrorKind.READ_ONLY
    if "locked" in text or "busy" in text:
        return StorageErrorKind.LOCKED
    if "not a database" in text or "malformed" in text:
        return StorageErrorKind.CORRUPT
    if "unable to open" in text or "disk i/o" in text:
        return StorageErrorKind.UNAVAILABLE
    return None


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """Library and SQLite errors become StorageError / DuplicateRecord / RecordNotFound at this boundary."""
    try:
        yield
    except exc.IntegrityError as error:
        text = str(error.orig)
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            raise DuplicateRecord(f"already exists: {text}") from error
        if "FOREIGN KEY" in text:
            raise RecordNotFound(f"refers to a record that does not exist: {text}") from error
        raise ValueError(f"rejected by the database: {text}") from error
    except exc.DBAPIError as error:
        kind = (_kind_of(error.orig) if error.orig is not None else None) or StorageErrorKind.UNAVAILABLE
        raise storage_error(kind, path=path, detail=str(error.orig)) from error
    except exc.StatementError as error:  # a value our column types refused (e.g. a naive datetime)
        if isinstance(error.orig, ValueError | TypeError):
            raise ValueError(str(error.orig)) from error
        raise
    except sqlite3.Error as error:
        kind = _kind_of(error) or StorageErrorKind.UNAVAILABLE
        raise storage_error(kind, path=path, detail=str(error)) from error
    except OSError as error:
        raise storage_error(StorageErrorKind.UNAVAILABLE, path=path, detail=str(error)) from error


@dataclass(frozen=True, slots=True)
class Database:
    """An open, migrated database file. Share one per process; close it at shutdown."""

    path: Path
    engine: Engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One BEGIN IMMEDIATE transaction: committed on success, rolled back on any exception."""
        with translate_errors(self.path), self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A deferred (shared) transaction: a consistent view that never blocks writers under WAL."""
        with translate_errors(self.path), self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            with connection.begin():
                yield connection

    def close(self) -> None:
        self.engine.dispose()


def _on_connect(busy_timeout_ms: int) -> Any:
    def configure(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # sqlite3's own implicit BEGIN would fight SQLAlchemy's; we emit BEGIN ourselves in on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")  # a commit lost in a power cut = a duplicate email
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return configure


def _on_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sqlite_engine(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine with Cadence's connection settings, without migrating (tests use it to build old files)."""
    # sqlite3's own timeout would retry on top of busy_timeout; keep one knob.
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect(busy_timeout_ms))
    event.listen(engine, "begin", _on_begin)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, *, path: Path, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction, foreign keys off while batch mode copies tables."""
    with translate_errors(path), engine.connect() as connection:
        # PRAGMA foreign_keys is a no-op inside a transaction: set it on the raw connection, before BEGIN.
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                current = current_revision(connection)
                script = ScriptDirectory.from_config(alembic_config())
                if current is not None:
                    try:
                        script.get_revision(current)
                    except CommandError as error:
                        raise storage_error(StorageErrorKind.TOO_NEW, path=path) from error
                command.upgrade(alembic_config(connection), revision)
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise storage_error(
                        StorageErrorKind.CORRUPT, path=path, detail=f"{len(problems)} broken references"
                    )
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def _ensure_salt(database: Database) -> None:
    with database.write() as connection:
        existing = connection.execute(select(tables.meta.c.value).where(tables.meta.c.key == "erasure_salt"))
        if existing.first() is None:
            connection.execute(insert(tables.meta).values(key="erasure_salt", value=secrets.token_hex(16)))


def open_database(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) and migrate the database at `path`. Raises StorageError, not raw errors."""
    if not path.parent.is_dir():
        raise storage_error(StorageErrorKind.UNAVAILABLE, path=path, detail=f"no folder {path.parent}")
    engine = create_sqlite_engine(path, busy_timeout_ms=busy_timeout_ms)
    database = Database(path=path, engine=engine)
    try:
        migrate(engine, path=path)
        _ensure_salt(database)
    except BaseException:
        engine.dispose()
        raise
    return database
