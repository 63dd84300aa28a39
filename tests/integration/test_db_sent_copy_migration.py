"""Revision 0006: messages.sent_copy_at. A 0005 database with sent messages upgrades, keeps them, and its
messages count as having no recorded copy in Sent (the catch-up then looks for them there)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, inspect, text

from cadence.adapters.db.engine import create_sqlite_engine, migrate, open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import MessageState
from cadence.core.ports import SentCopyPending

SENT_AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TS = SENT_AT.isoformat(timespec="microseconds")
OLD_TS = (SENT_AT - timedelta(days=10)).isoformat(timespec="microseconds")


def _seed_0005(path: Path) -> None:
    engine = create_sqlite_engine(path)
    migrate(engine, path=path, revision="0005")
    with engine.begin() as connection:
        assert "sent_copy_at" not in {c["name"] for c in inspect(connection).get_columns("messages")}
        connection.execute(
            text(
                "INSERT INTO accounts (id, email, display_name, smtp_host, smtp_port, smtp_security,"
                " imap_host, imap_port, imap_security, guardrails, sent_folder_kind, created_at)"
                " VALUES (1, 'old@example.test', 'Old', 'smtp.x', 587, 'starttls', 'imap.x', 993, 'tls',"
                " '{}', 'app_appends', :ts)"
            ),
            {"ts": TS},
        )
        connection.execute(
            text(
                "INSERT INTO campaigns (id, name, account_id, status, created_at)"
                " VALUES (1, 'C', 1, 'active', :ts)"
            ),
            {"ts": TS},
        )
        connection.execute(
            text(
                "INSERT INTO campaign_steps (campaign_id, step_index, subject, body, delay_days)"
                " VALUES (1, 1, 'S1', 'B1', 0)"
            )
        )
        rows = (
            (1, "sent", "<m1@x>", b"raw one", TS),  # sent, kept MIME, within the window
            (2, "sent", "<m2@x>", b"raw two", OLD_TS),  # sent 10 days ago: older than the window
            (3, "sent", "<m3@x>", None, TS),  # no MIME kept: nothing to copy
            (4, "approved", None, None, TS),  # not sent
        )
        for message_id, state, rfc_id, mime, changed in rows:
            connection.execute(
                text(
                    "INSERT INTO leads (id, campaign_id, email, status, created_at)"
                    " VALUES (:id, 1, :email, 'contacted', :ts)"
                ),
                {"id": message_id, "email": f"lead{message_id}@x.test", "ts": TS},
            )
            connection.execute(
                text(
                    "INSERT INTO messages (id, campaign_id, lead_id, step_index, account_id, state, subject,"
                    " body, message_id, mime, created_at, updated_at, state_changed_at)"
                    " VALUES (:id, 1, :id, 1, 1, :state, 'S1', 'B1', :rfc_id, :mime, :ts, :ts, :changed)"
                ),
                {
                    "id": message_id,
                    "state": state,
                    "rfc_id": rfc_id,
                    "mime": mime,
                    "ts": TS,
                    "changed": changed,
                },
            )
    engine.dispose()


def test_a_0005_database_gains_sent_copy_at_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _seed_0005(path)

    database = open_database(path)
    try:
        with database.engine.connect() as connection:
            columns = {c["name"]: c for c in inspect(connection).get_columns("messages")}
            assert columns["sent_copy_at"]["nullable"]
            indexes = {ix["name"]: ix["column_names"] for ix in inspect(connection).get_indexes("messages")}
            assert "ix_messages_campaign_state_next" in indexes  # the 0005 index survives
            assert indexes["ix_messages_account_sent_copy"] == [
                "account_id",
                "state",
                "sent_copy_at",
                "state_changed_at",
            ]
        store = SqliteStore(database)
        assert [(m.id, m.state, m.message_id) for m in store.list_messages()] == [
            (1, MessageState.SENT, "<m1@x>"),
            (2, MessageState.SENT, "<m2@x>"),
            (3, MessageState.SENT, "<m3@x>"),
            (4, MessageState.APPROVED, None),
        ]
        assert store.get_mime("<m1@x>") == b"raw one"
        assert not any(store.has_sent_copy(i) for i in (1, 2, 3, 4))

        since = SENT_AT + timedelta(hours=1) - timedelta(days=7)
        assert store.list_missing_sent_copies(1, since=since, limit=50) == (
            SentCopyPending(outbox_id=1, message_id="<m1@x>", sent_at=SENT_AT),
        )

        later = SENT_AT + timedelta(hours=2)
        assert store.record_sent_copy("<m1@x>", at=later)
        assert not store.record_sent_copy("<m1@x>", at=later + timedelta(hours=1))  # already recorded
        assert store.has_sent_copy(1)
        assert store.list_missing_sent_copies(1, since=since, limit=50) == ()
    finally:
        database.close()


def test_the_missing_copies_are_listed_newest_first_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _seed_0005(path)
    database = open_database(path)
    try:
        store = SqliteStore(database)
        since = SENT_AT - timedelta(days=30)
        everything = store.list_missing_sent_copies(1, since=since, limit=50)
        assert [p.outbox_id for p in everything] == [1, 2]
        assert [p.outbox_id for p in store.list_missing_sent_copies(1, since=since, limit=1)] == [1]
        assert store.list_missing_sent_copies(2, since=since, limit=50) == ()  # another account
    finally:
        database.close()


def test_the_catch_up_query_reads_a_range_of_its_index(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    database = open_database(path)
    try:
        store = SqliteStore(database)
        statements: list[str] = []

        def remember(conn: object, cursor: object, statement: str, *args: object) -> None:
            if "sent_copy_at IS NULL" in statement:
                statements.append(statement)

        event.listen(database.engine, "before_cursor_execute", remember)
        store.list_missing_sent_copies(1, since=SENT_AT, limit=50)
        event.remove(database.engine, "before_cursor_execute", remember)
        assert len(statements) == 1
    finally:
        database.close()
    connection = sqlite3.connect(path)
    try:
        bound = statements[0].replace("?", "1", 1)
        plan = " ".join(
            str(row[3])
            for row in connection.execute(
                f"EXPLAIN QUERY PLAN {bound}".replace("?", "'x'"),
            )
        )
    finally:
        connection.close()
    assert "USING INDEX ix_messages_account_sent_copy" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
