"""The bulk draft insert and the per-campaign counts against the per-row paths they replace, on real files."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import (
    TERMINAL_STATES,
    DeferReason,
    HoldReason,
    Lead,
    LeadStatus,
    MessageState,
    NewDraft,
)
from cadence.core.ports import RecordNotFound
from tests.integration.db_helpers import T0, make_account, make_campaign

LATER = T0 + timedelta(days=9)
NOW = T0 + timedelta(hours=1)


def _open(path: Path) -> SqliteStore:
    return SqliteStore(open_database(path))


def _seed(store: SqliteStore) -> tuple[list[int], list[int], int]:
    """Two campaigns on two accounts; leads of the first have every resume_at case. Returns the lead ids
    of each campaign and the id of a message that already exists (lead 6, step 1)."""
    first = make_campaign(store, make_account(store))
    second = make_campaign(store, make_account(store, email="other@example.test"))
    store.add_leads(
        first.id, leads=[Lead(email=f"p{i}@lead.test", first_name=f"P{i}") for i in range(8)], now=T0
    )
    store.add_leads(second.id, leads=[Lead(email=f"q{i}@lead.test") for i in range(3)], now=T0)
    first_ids = [lead.id for lead in store.list_leads(first.id)]
    second_ids = [lead.id for lead in store.list_leads(second.id)]
    for lead_id in first_ids[1:4]:  # paused until a return date after NOW
        store.set_lead_status(lead_id, status=LeadStatus.PAUSED, now=T0, resume_at=LATER)
    store.set_lead_status(first_ids[4], status=LeadStatus.PAUSED, now=T0, resume_at=T0)  # already back
    existing = store.create_drafts(
        [NewDraft(first.id, first_ids[6], 1, "Old", "Old body", MessageState.APPROVED)], now=T0
    )[0]
    assert existing is not None
    return first_ids, second_ids, existing


def _drafts(first_ids: list[int], second_ids: list[int]) -> list[NewDraft]:
    first, second = 1, 2
    holds = (HoldReason.FIRST_TOUCH, HoldReason.LINK)
    return [
        NewDraft(first, first_ids[0], 1, "A", "no pause, no due", MessageState.APPROVED),
        NewDraft(first, first_ids[1], 1, "B", "paused, no due", MessageState.PENDING_APPROVAL, holds),
        NewDraft(
            first, first_ids[2], 1, "C", "paused, due before", MessageState.DRAFT, (), T0 + timedelta(days=2)
        ),
        NewDraft(
            first, first_ids[3], 1, "D", "paused, due after", MessageState.APPROVED, (), LATER + timedelta(1)
        ),
        NewDraft(first, first_ids[4], 1, "E", "return date passed", MessageState.APPROVED),
        NewDraft(first, first_ids[5], 1, "F", "first of two", MessageState.APPROVED),
        NewDraft(first, first_ids[5], 1, "F2", "duplicate in the input", MessageState.DRAFT),
        NewDraft(first, first_ids[6], 1, "G", "step already there", MessageState.APPROVED),
        NewDraft(
            first, first_ids[0], 2, "A2", "second step", MessageState.APPROVED, (), NOW + timedelta(days=3)
        ),
        NewDraft(second, second_ids[0], 1, "Q0", "other account", MessageState.PENDING_APPROVAL, holds[:1]),
        NewDraft(second, second_ids[1], 1, "Q1", "other account", MessageState.APPROVED),
    ]


def _message_rows(path: Path) -> list[dict[str, object]]:
    """Every column of every message but the id, in (lead, step) order."""
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM messages ORDER BY lead_id, step_index").fetchall()
    finally:
        conn.close()
    return [{key: value for key, value in zip(row.keys(), row, strict=True) if key != "id"} for row in rows]


def test_bulk_drafts_write_exactly_the_rows_create_drafts_writes(tmp_path: Path) -> None:
    per_row_path, bulk_path = tmp_path / "per_row.sqlite3", tmp_path / "bulk.sqlite3"
    per_row, bulk = _open(per_row_path), _open(bulk_path)
    try:
        seeded = _seed(per_row)
        assert _seed(bulk) == seeded
        drafts = _drafts(*seeded[:2])
        ids = per_row.create_drafts(drafts, now=NOW)
        created = bulk.create_drafts_bulk(drafts, now=NOW)
    finally:
        per_row.database.close()
        bulk.database.close()
    assert created == sum(1 for i in ids if i is not None) == len(drafts) - 2
    rows = _message_rows(bulk_path)
    assert rows == _message_rows(per_row_path)
    due = {row["subject"]: row["next_attempt_at"] for row in rows}
    assert set(due) == {"Old", "A", "B", "C", "D", "E", "F", "A2", "Q0", "Q1"}
    assert due["B"] == due["C"] == LATER.isoformat(timespec="microseconds")
    assert due["D"] == (LATER + timedelta(1)).isoformat(timespec="microseconds")
    assert due["A"] is None and due["E"] is None
    assert {row["account_id"] for row in rows if row["campaign_id"] == 2} == {2}


@pytest.mark.parametrize("bad", ["state", "lead"])
def test_bulk_drafts_refuse_what_create_drafts_refuses_and_write_nothing(tmp_path: Path, bad: str) -> None:
    store = _open(tmp_path / "cadence.sqlite3")
    try:
        first_ids, second_ids, _ = _seed(store)
        drafts = _drafts(first_ids, second_ids)
        if bad == "state":
            drafts.append(NewDraft(1, first_ids[7], 1, "X", "x", MessageState.SENT))
            error: type[Exception] = ValueError
        else:
            drafts.append(
                NewDraft(1, second_ids[2], 1, "X", "lead of the other campaign", MessageState.DRAFT)
            )
            error = RecordNotFound
        before = store.count_messages()
        with pytest.raises(error):
            store.create_drafts(drafts, now=NOW)
        with pytest.raises(error):
            store.create_drafts_bulk(drafts, now=NOW)
        assert store.count_messages() == before
    finally:
        store.database.close()


def _counted_the_old_way(store: SqliteStore, campaign_id: int) -> tuple[object, ...]:
    states: dict[MessageState, int] = {}
    latest: dict[MessageState, datetime] = {}
    for message in store.list_messages(campaign_id=campaign_id):
        states[message.state] = states.get(message.state, 0) + 1
        if message.next_attempt_at is not None:
            latest[message.state] = max(
                latest.get(message.state, message.next_attempt_at), message.next_attempt_at
            )
    return states, store.count_leads(campaign_id), latest


def test_counts_by_campaign_equal_counting_every_message(tmp_path: Path) -> None:
    store = _open(tmp_path / "cadence.sqlite3")
    try:
        first_ids, second_ids, existing = _seed(store)
        store.create_drafts_bulk(_drafts(first_ids, second_ids), now=NOW)
        empty = make_campaign(store, make_account(store, email="idle@example.test"))
        messages = {m.subject: m.id for m in store.list_messages()}
        store.approve([messages["B"], messages["Q0"]], now=NOW)
        store.reject([messages["C"]], now=NOW, reason="no")
        store.transition(messages["A2"], to=MessageState.QUEUED, now=NOW)
        store.transition(
            messages["A2"],
            to=MessageState.DEFERRED,
            now=NOW,
            next_attempt_at=NOW + timedelta(days=5),
            defer_reason=DeferReason.DAILY_CAP,
        )
        store.cancel([existing], now=NOW)
        store.set_lead_status(second_ids[1], status=LeadStatus.REPLIED, now=NOW, reason="replied")
        store.set_lead_status(first_ids[7], status=LeadStatus.BOUNCED, now=NOW, reason="bounced")

        counts = store.count_by_campaign()
        campaigns = [campaign.id for campaign in store.list_campaigns()]
    finally:
        store.database.close()
    store = _open(tmp_path / "cadence.sqlite3")
    try:
        for campaign_id in campaigns:
            old = _counted_the_old_way(store, campaign_id)
            if campaign_id == empty.id:
                assert campaign_id not in counts and old == ({}, {}, {})
                continue
            tally = counts[campaign_id]
            assert (dict(tally.messages), dict(tally.leads), dict(tally.latest_due)) == old
        assert any(state in TERMINAL_STATES for state in counts[1].messages)
        assert len(counts[1].messages) >= 4 and counts[2].leads[LeadStatus.REPLIED] == 1
    finally:
        store.database.close()
