"""Revision 0005: the per-campaign count indexes. A 0004 database with rows upgrades and keeps them, and
the campaigns tab's count queries read the new covering indexes instead of every message and lead."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect, text

from cadence.adapters.db.engine import create_sqlite_engine, migrate, open_database
from cadence.adapters.db.store import (
    _CAMPAIGN_LEAD_COUNTS_SQL,
    _CAMPAIGN_MESSAGE_COUNTS_SQL,
    SqliteStore,
)
from cadence.core.model import LeadStatus, MessageState

TS = "2026-11-20T10:00:00.000000+00:00"
DUE = "2026-11-21T08:00:00.000000+00:00"


def _seed_0004(path: Path) -> None:
    engine = create_sqlite_engine(path)
    migrate(engine, path=path, revision="0004")
    with engine.begin() as connection:
        names = {ix["name"] for ix in inspect(connection).get_indexes("messages")}
        assert "ix_messages_campaign_state_next" not in names
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
        for lead_id, status in ((1, "contacted"), (2, "new"), (3, "new")):
            connection.execute(
                text(
                    "INSERT INTO leads (id, campaign_id, email, status, created_at)"
                    " VALUES (:id, 1, :email, :status, :ts)"
                ),
                {"id": lead_id, "email": f"lead{lead_id}@x.test", "status": status, "ts": TS},
            )
        for message_id, state, due in (
            (1, "sent", None),
            (2, "pending_approval", None),
            (3, "approved", DUE),
        ):
            connection.execute(
                text(
                    "INSERT INTO messages (id, campaign_id, lead_id, step_index, account_id, state, subject,"
                    " body, next_attempt_at, created_at, updated_at, state_changed_at)"
                    " VALUES (:id, 1, :id, 1, 1, :state, 'S1', 'B1', :due, :ts, :ts, :ts)"
                ),
                {"id": message_id, "state": state, "due": due, "ts": TS},
            )
    engine.dispose()


def test_a_0004_database_gains_the_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _seed_0004(path)

    database = open_database(path)
    try:
        with database.engine.connect() as connection:
            inspector = inspect(connection)
            messages = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("messages")}
            leads = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("leads")}
        assert messages["ix_messages_campaign_state_next"] == ["campaign_id", "state", "next_attempt_at"]
        assert leads["ix_leads_campaign_status"] == ["campaign_id", "status"]
        store = SqliteStore(database)
        counts = store.count_by_campaign()[1]
        assert counts.messages == {
            MessageState.SENT: 1,
            MessageState.PENDING_APPROVAL: 1,
            MessageState.APPROVED: 1,
        }
        assert counts.leads == {LeadStatus.CONTACTED: 1, LeadStatus.NEW: 2}
        assert counts.latest_due[MessageState.APPROVED] == datetime.fromisoformat(DUE)
        assert [m.recipient for m in store.list_messages(states=[MessageState.PENDING_APPROVAL])] == [
            "lead2@x.test"
        ]
    finally:
        database.close()


def test_the_per_campaign_counts_read_only_the_covering_indexes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    open_database(path).close()
    connection = sqlite3.connect(path)
    try:
        plans = {
            sql: " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in (_CAMPAIGN_MESSAGE_COUNTS_SQL, _CAMPAIGN_LEAD_COUNTS_SQL)
        }
    finally:
        connection.close()
    assert "COVERING INDEX ix_messages_campaign_state_next" in plans[_CAMPAIGN_MESSAGE_COUNTS_SQL]
    assert "COVERING INDEX ix_leads_campaign_status" in plans[_CAMPAIGN_LEAD_COUNTS_SQL]
    assert all("TEMP B-TREE" not in plan for plan in plans.values())
