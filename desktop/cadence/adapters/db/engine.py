"""Opening the SQLite database: connection settings, migrations to head, and error translation.

Every write transaction starts with BEGIN IMMEDIATE, so two processes never both read "one slot left" and
then both write: the second waits (busy_timeout) until the first commits, and then sees its row.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, insert, select
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry

from cadence.adapters.db import tables
from cadence.core.ports import DuplicateRecord, RecordNotFound, StorageError, StorageErrorKind

if TYPE_CHECKING:  # Alembic is imported only when a database needs migrating (it costs start-up time)
    from alembic.config import Config

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


FULL_BELOW_BYTES = 1 << 20


def _disk_full(path: Path) -> bool:
    """Whether the filesystem holding the database has (next to) no room left. SQLite reports a write that
    ran out of space in its shared-memory or log file as a plain I/O error, not SQLITE_FULL."""
    try:
        stats = os.statvfs(path.parent)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW_BYTES


def _kind_at(error: BaseException | None, path: Path) -> StorageErrorKind:
    kind = (_kind_of(error) if error is not None else None) or StorageErrorKind.UNAVAILABLE
    if kind is StorageErrorKind.UNAVAILABLE and _disk_full(path):
        return StorageErrorKind.FULL
    return kind


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
        kind = _kind_at(error.orig, path)
        raise storage_error(kind, path=path, detail=str(error.orig)) from error
    except exc.StatementError as error:  # a value our column types refused (e.g. a naive datetime)
        if isinstance(error.orig, ValueError | TypeError):
            raise ValueError(str(error.orig)) from error
        raise
    except sqlite3.Error as error:
        raise storage_error(_kind_at(error, path), path=path, detail=str(error)) from error
    except OSError as error:
        kind = StorageErrorKind.FULL if error.errno == errno.ENOSPC else _kind_at(None, path)
        raise storage_error(kind, path=path, detail=str(error)) from error


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
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(None|[\"']([^\"']+)[\"'])\s*$", re.MULTILINE)


def script_head_revision(versions: Path = MIGRATIONS_DIR / "versions") -> str | None:
    """The head revision read from the migration scripts' text, without importing Alembic; None when the
    history is not one plain line (a merge, a branch, an unreadable script) and Alembic must decide."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        scripts = [path.read_text(encoding="utf-8") for path in sorted(versions.glob("*.py"))]
    except OSError:
        return None
    for text in scripts:
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if not revision and not down:
            continue  # not a migration (__init__.py)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0][0] != "None":
            parents.add(down[0][1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def stored_revision(path: Path, *, timeout_s: float = 1.0) -> str | None:
    """The revision recorded in the database file (read with sqlite3, read-only); None when the file is
    missing, unreadable or has no single recorded revision."""
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(rows[0][0]) if len(rows) == 1 else None


def is_at_head(path: Path) -> bool:
    """Whether the database at `path` is already at the migrations' head: then opening it skips Alembic."""
    head = script_head_revision()
    return head is not None and stored_revision(path) == head


def migrate(engine: Engine, *, path: Path, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction, foreign keys off while batch mode copies tables."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

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
    """Open (creating if needed) and migrate the database at `path`. Raises StorageError, not raw errors.
    A file already at the head revision is opened without Alembic (checked with sqlite3 first)."""
    if not path.parent.is_dir():
        raise storage_error(StorageErrorKind.UNAVAILABLE, path=path, detail=f"no folder {path.parent}")
    engine = create_sqlite_engine(path, busy_timeout_ms=busy_timeout_ms)
    database = Database(path=path, engine=engine)
    try:
        if not is_at_head(path):
            migrate(engine, path=path)
        _ensure_salt(database)
    except BaseException:
        engine.dispose()
        raise
    return database
