"""Shared pieces for the SQLite store tests: a store on a real file, seed data, simple `decide` rules,
and the worker that the two-process test runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import (
    Account,
    AccountSettings,
    Campaign,
    Claim,
    ClaimDecision,
    DeferReason,
    Guardrails,
    Lead,
    MessageState,
    NewDraft,
    PacingSnapshot,
    SendCandidate,
    SendPick,
    Step,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


def make_account(store: SqliteStore, *, email: str = "sales@example.test", now: datetime = T0) -> Account:
    settings = AccountSettings(
        email=email,
        display_name="Sam Sales",
        smtp_host="smtp.example.test",
        imap_host="imap.example.test",
        guardrails=Guardrails(daily_cap=30, business_days=frozenset({0, 1, 2})),
    )
    return store.create_account(settings, now=now)


def make_campaign(store: SqliteStore, account: Account, *, steps: int = 2, now: datetime = T0) -> Campaign:
    return store.create_campaign(
        name="Q4 outreach",
        account_id=account.id,
        steps=[
            Step(
                index=i, subject=f"Step {i}", body=f"Hello {{first_name}}, step {i}", delay_days=3.0 * (i - 1)
            )
            for i in range(1, steps + 1)
        ],
        now=now,
    )


def seed_outbox(
    store: SqliteStore,
    campaign: Campaign,
    *,
    count: int,
    state: MessageState = MessageState.APPROVED,
    step_index: int = 1,
    now: datetime = T0,
    domain: str = "lead.test",
) -> list[int]:
    """`count` leads with one message each; returns the outbox ids."""
    start = len(store.list_leads(campaign.id))
    leads = [Lead(email=f"person{start + i}@{domain}", first_name=f"P{start + i}") for i in range(count)]
    store.add_leads(campaign.id, leads=leads, now=now)
    enrolled = {lead.lead.email: lead.id for lead in store.list_leads(campaign.id)}
    drafts = [
        NewDraft(
            campaign_id=campaign.id,
            lead_id=enrolled[lead.email],
            step_index=step_index,
            subject=f"Hi {lead.first_name}",
            body="Body",
            state=state,
        )
        for lead in leads
    ]
    ids = store.create_drafts(drafts, now=now)
    assert None not in ids
    return [i for i in ids if i is not None]


def message_id_for(candidate: SendCandidate, *, tag: str = "t") -> str:
    return candidate.message.message_id or f"<{candidate.message.id}.{tag}@cadence.test>"


def pick_first(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
    if not candidates:
        return ClaimDecision(wait_reason=None)
    first = candidates[0]
    return ClaimDecision(
        pick=SendPick(first.message.id, message_id_for(first), b"MIME " + first.lead.email.encode())
    )


class CapRule:
    """At most `cap` sends in the snapshot's 24 h (ledger rows plus reservations in flight). Picklable."""

    def __init__(self, cap: int, *, tag: str = "t", think_s: float = 0.0) -> None:
        self.cap = cap
        self.tag = tag
        self.think_s = think_s

    def __call__(self, snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        if self.think_s:
            time.sleep(self.think_s)  # widen the window in which a racing process could slip in
        if len(snapshot.sends) >= self.cap:
            return ClaimDecision(
                wait_until=snapshot.now + timedelta(hours=1), wait_reason=DeferReason.DAILY_CAP
            )
        if not candidates:
            return ClaimDecision()
        first = candidates[0]
        message_id = message_id_for(first, tag=self.tag)
        return ClaimDecision(pick=SendPick(first.message.id, message_id, b"MIME for " + message_id.encode()))


def hammer(
    db_path: str, account_id: int, cap: int, tag: str, start: Barrier, results: Queue[tuple[str, list[int]]]
) -> None:
    """Claim and deliver until the cap says stop; puts (tag, outbox ids this process sent) on `results`."""
    database = open_database(Path(db_path))
    store = SqliteStore(database)
    sent: list[int] = []
    rule = CapRule(cap, tag=tag, think_s=0.002)
    try:
        start.wait(timeout=120)  # both processes are up before either claims anything
        while True:
            claim = store.claim_next_send(account_id=account_id, now=datetime.now(UTC), decide=rule)
            if not isinstance(claim, Claim):
                break
            time.sleep(0.03)  # the SMTP conversation: the reservation must hold the slot meanwhile
            assert claim.message.message_id is not None
            store.record_delivered(claim.message.message_id, at=datetime.now(UTC))
            sent.append(claim.message.id)
            # the scheduler's pause between sends; without it one process can hold the lock in turn after turn
            # while the other's busy handler backs off, and the race under test would not happen
            time.sleep(0.005)
    finally:
        database.close()
        results.put((tag, sent))
