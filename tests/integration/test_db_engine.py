"""The database file itself: connection settings, migrations, data folder, and storage failures."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, text

from cadence.adapters.db import tables
from cadence.adapters.db.engine import create_sqlite_engine, head_revision, migrate, open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import Lead, MessageState
from cadence.core.ports import StorageError, StorageErrorKind
from cadence.paths import data_dir, database_path
from tests.integration.db_helpers import T0, make_account, make_campaign, store  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _pragma(connection: Any, name: str) -> Any:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_every_connection_has_the_safety_pragmas(tmp_path: Path) -> None:
    database = open_database(tmp_path / "c.sqlite3")
    try:
        with database.read() as first, database.write() as second:
            assert first.connection.dbapi_connection is not second.connection.dbapi_connection
            for connection in (first, second):
                assert _pragma(connection, "journal_mode") == "wal"
                assert _pragma(connection, "synchronous") == 2  # FULL
                assert _pragma(connection, "foreign_keys") == 1
                assert _pragma(connection, "busy_timeout") == 5000
                assert connection.connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]
    finally:
        database.close()


def test_write_transactions_take_the_lock_at_begin(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer is refused while a write transaction is open, before any write."""
    path = tmp_path / "c.sqlite3"
    database = open_database(path)
    try:
        with database.write() as connection:
            connection.execute(text("SELECT 1"))  # a read only: a deferred BEGIN would hold no write lock yet
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
        with database.read() as connection:  # readers take no write lock under WAL
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
            connection.execute(text("SELECT 1"))
    finally:
        database.close()


def test_foreign_keys_are_enforced(store: SqliteStore) -> None:  # noqa: F811
    from cadence.core.ports import RecordNotFound

    with pytest.raises(RecordNotFound):
        store.add_leads(999, leads=[Lead(email="a@b.test")], now=T0)
    with store.database.write() as connection, pytest.raises(Exception, match="FOREIGN KEY"):
        connection.execute(
            tables.campaigns.insert().values(name="x", account_id=42, status="active", created_at=T0)
        )


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    database = open_database(tmp_path / "c.sqlite3")
    try:
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, tables.metadata) == []
            assert context.get_current_revision() == head_revision()
    finally:
        database.close()


def test_a_database_at_0001_with_rows_upgrades_to_head_and_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    engine = create_sqlite_engine(path)
    migrate(engine, path=path, revision="0001")
    ts = "2026-11-20T10:00:00.000000+00:00"
    with engine.begin() as connection:
        assert "pace_factor" not in {c["name"] for c in inspect(connection).get_columns("accounts")}
        connection.execute(
            text(
                "INSERT INTO accounts (id, email, display_name, smtp_host, smtp_port, smtp_security,"
                " imap_host, imap_port, imap_security, guardrails, sent_folder_kind, created_at,"
                " warmup_started_at)"
                " VALUES (1, 'old@example.test', 'Old', 'smtp.x', 587, 'starttls', 'imap.x', 993, 'tls',"
                " '{\"daily_cap\": 12}', 'app_appends', :ts, :ts)"
            ),
            {"ts": ts},
        )
        connection.execute(
            text(
                "INSERT INTO campaigns (id, name, account_id, status, created_at)"
                " VALUES (1, 'C', 1, 'active', :ts)"
            ),
            {"ts": ts},
        )
        connection.execute(
            text(
                "INSERT INTO campaign_steps (campaign_id, step_index, subject, body, delay_days)"
                " VALUES (1, 1, 'S1', 'B1', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO leads (id, campaign_id, email, status, created_at)"
                " VALUES (1, 1, 'lead@x.test', 'contacted', :ts)"
            ),
            {"ts": ts},
        )
        connection.execute(
            text(
                "INSERT INTO messages (id, campaign_id, lead_id, step_index, account_id, state, subject,"
                " body, message_id, created_at, updated_at, state_changed_at)"
                " VALUES (1, 1, 1, 1, 1, 'sent', 'S1', 'B1', '<m1@x>', :ts, :ts, :ts)"
            ),
            {"ts": ts},
        )
        connection.execute(
            text(
                "INSERT INTO ledger (account_id, at, recipient, recipient_domain, subject, message_id, cold,"
                " manual, kind) VALUES (1, :ts, 'lead@x.test', 'x.test', 'S1', '<m1@x>', 1, 0, 'sent')"
            ),
            {"ts": ts},
        )
    engine.dispose()

    database = open_database(path)
    try:
        store = SqliteStore(database)
        account = store.get_account(1)
        assert account.email == "old@example.test"
        assert account.pace_factor == 1.0  # new column, default filled in
        assert account.settings.guardrails.daily_cap == 12
        assert account.warmup_started_at == T0.replace(day=20, hour=10)
        message = store.get_message(1)
        assert (message.state, message.message_id, message.recipient) == (
            MessageState.SENT,
            "<m1@x>",
            "lead@x.test",
        )
        assert store.get_lead(1).resume_at is None
        snapshot = store.snapshot(1, now=T0.replace(day=21))
        assert [s.recipient for s in snapshot.sends] == ["lead@x.test"]
        with database.engine.connect() as connection:
            names = {ix["name"] for ix in inspect(connection).get_indexes("ledger")}
            assert "ix_ledger_recent" in names
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    finally:
        database.close()


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    for _ in range(2):
        database = open_database(path)
        reopened = SqliteStore(database)
        if not reopened.list_accounts():
            make_account(reopened)
        assert len(reopened.list_accounts()) == 1
        database.close()


def test_a_database_from_a_newer_cadence_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    open_database(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    raw.close()
    with pytest.raises(StorageError) as caught:
        open_database(path)
    assert caught.value.kind is StorageErrorKind.TOO_NEW
    assert "newer version of Cadence" in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is a spreadsheet, honest" * 200)
    with pytest.raises(StorageError) as caught:
        open_database(path)
    assert caught.value.kind is StorageErrorKind.CORRUPT
    assert str(path) in str(caught.value)


def test_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        open_database(tmp_path / "nope" / "c.sqlite3")
    assert caught.value.kind is StorageErrorKind.UNAVAILABLE


def test_a_full_database_gives_storage_error_and_loses_nothing(tmp_path: Path) -> None:
    database = open_database(tmp_path / "c.sqlite3")
    try:
        store = SqliteStore(database)
        campaign = make_campaign(store, make_account(store))
        store.add_leads(campaign.id, leads=[Lead(email="first@x.test")], now=T0)
        # SQLite's own "database or disk is full" (SQLITE_FULL), without filling a real disk
        database.engine.dispose()

        @event.listens_for(database.engine, "connect")
        def _cap_size(dbapi_connection: Any, _record: Any) -> None:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

        many = [Lead(email=f"lead{i}@x.test", company="A company name " * 5) for i in range(5000)]
        with pytest.raises(StorageError) as caught:
            store.add_leads(campaign.id, leads=many, now=T0)
        assert caught.value.kind is StorageErrorKind.FULL
        assert "full" in str(caught.value)
        assert [lead.lead.email for lead in store.list_leads(campaign.id)] == ["first@x.test"]
    finally:
        database.close()


def test_a_locked_database_gives_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    database = open_database(path, busy_timeout_ms=100)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        store = SqliteStore(database)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError) as caught:
            make_account(store)
        assert caught.value.kind is StorageErrorKind.LOCKED
        blocker.execute("ROLLBACK")
        make_account(store)  # and it works again once the other writer is gone
        assert len(store.list_accounts()) == 1
    finally:
        blocker.close()
        database.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another (unprivileged) user can reach: pytest's tmp_path is private to root."""
    directory = Path(tempfile.mkdtemp(prefix="cadence-ro-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


READ_ONLY_PROBE = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from cadence.adapters.db.engine import open_database
    from cadence.adapters.db.store import SqliteStore
    from cadence.core.model import AccountSettings
    from cadence.core.ports import StorageError
    try:
        database = open_database(Path(sys.argv[1]))
        SqliteStore(database).create_account(AccountSettings(email="x@y.test"), now=datetime.now(UTC))
    except StorageError as error:
        print(error.kind.value)
        print(error)
    else:
        print("written")
    """
)


def test_a_read_only_database_gives_storage_error(shared_dir: Path) -> None:
    path = shared_dir / "c.sqlite3"
    open_database(path).close()
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'desktop'}{os.pathsep}{REPO}"}
    command = [sys.executable, "-c", READ_ONLY_PROBE, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file read-only for ourselves")
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    else:
        path.chmod(0o444)
        shared_dir.chmod(0o555)
    try:
        probe = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    finally:
        shared_dir.chmod(0o755)
    assert probe.returncode == 0, probe.stderr
    kind, _, message = probe.stdout.partition("\n")
    assert kind == StorageErrorKind.READ_ONLY.value, probe.stdout
    assert "cannot be written" in message


def test_data_dir_override_is_created_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert data_dir(target) == target
    assert target.is_dir()
    assert (target.stat().st_mode & 0o777) == 0o700
    assert database_path(target) == target / "cadence.sqlite3"


def test_data_dir_default_follows_the_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    directory = data_dir(None)
    assert directory == tmp_path / "xdg" / "Cadence"
    assert (directory.stat().st_mode & 0o777) == 0o700
