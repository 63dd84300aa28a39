"""How fast the store answers the scheduler's questions on a busy database.

Fills a database with 100,000 ledger rows spread over 30 days for one account (about 3,300 in the last 24 h),
then times one snapshot build, one full claim transaction with a trivial decision (goal: <= 5 ms), a claim
that picks and records a delivery, and a bulk insert of 100,000 leads.

    .venv/bin/python benchmarks/decision_bench.py [--rows 100000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.db.tables import to_db_time
from cadence.core.model import (
    AccountSettings,
    Claim,
    ClaimDecision,
    DeferReason,
    Lead,
    MessageState,
    NewDraft,
    PacingSnapshot,
    SendCandidate,
    SendPick,
    Step,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def timed(action: Callable[[], object], *, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(label: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"{label:<52} median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms   (n={len(samples)})")


def cap_decision(cap: int) -> Callable[[PacingSnapshot, tuple[SendCandidate, ...]], ClaimDecision]:
    def decide(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        hour_ago = snapshot.now - timedelta(hours=1)
        last_hour = sum(1 for send in snapshot.sends if send.at > hour_ago)
        if len(snapshot.sends) >= cap or last_hour >= cap:
            return ClaimDecision(
                wait_until=snapshot.now + timedelta(minutes=5), wait_reason=DeferReason.DAILY_CAP
            )
        return ClaimDecision()

    return decide


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    baseline = (time.perf_counter() - start) * 1000
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}; a 1,000,000-step Python loop takes")
    print(f"{baseline:.0f} ms here (compare with your machine to scale the figures below)")
    with tempfile.TemporaryDirectory() as directory:
        database = open_database(Path(directory) / "bench.sqlite3")
        store = SqliteStore(database)
        account = store.create_account(AccountSettings(email="bench@example.test"), now=NOW)
        campaign = store.create_campaign(
            name="bench",
            account_id=account.id,
            steps=[Step(index=1, subject="Hi", body="Hello"), Step(index=2, subject="Re", body="Bump")],
            now=NOW,
        )

        rng = random.Random(7)
        start = time.perf_counter()
        rows = [
            (
                account.id,
                to_db_time(NOW - timedelta(seconds=rng.uniform(0, 30 * 86400))),
                f"r{i}@d{i % 500}.test",
                f"d{i % 500}.test",
                "Quick question about your roadmap",
                f"<{i}@bench>",
                True,
                i % 20 == 0,
                "hard_bounce" if i % 97 == 0 else "sent",
            )
            for i in range(args.rows)
        ]
        with database.write() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.executemany(
                "INSERT INTO ledger (account_id, at, recipient, recipient_domain, subject, message_id, cold,"
                " manual, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        with database.engine.connect() as connection:  # steady state: SQLite checkpoints the WAL as it goes
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"filled {args.rows:,} ledger rows over 30 days in {time.perf_counter() - start:.2f} s")

        store.add_leads(campaign.id, leads=[Lead(email=f"c{i}@cand.test") for i in range(200)], now=NOW)
        leads = store.list_leads(campaign.id)
        store.create_drafts(
            [
                NewDraft(
                    campaign_id=campaign.id,
                    lead_id=lead.id,
                    step_index=1,
                    subject="Hi",
                    body="B",
                    state=MessageState.APPROVED,
                )
                for lead in leads
            ],
            now=NOW,
        )

        start = time.perf_counter()
        snapshot = store.snapshot(account.id, now=NOW)
        print(f"first snapshot (nothing cached yet): {(time.perf_counter() - start) * 1000:.2f} ms")
        print(
            f"snapshot holds {len(snapshot.sends):,} sends of the last 24 h,"
            f" {snapshot.hard_bounces_24h} hard bounces"
        )
        report(
            "snapshot build (read-only, for the UI)",
            timed(lambda: store.snapshot(account.id, now=NOW), repeat=args.repeat),
        )
        decide = cap_decision(10_000)
        report(
            "claim transaction, 50 candidates, trivial decision",
            timed(
                lambda: store.claim_next_send(account_id=account.id, now=NOW, decide=decide),
                repeat=args.repeat,
            ),
        )

        counter = iter(range(10**9))

        def pick(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
            first = candidates[0]
            return ClaimDecision(pick=SendPick(first.message.id, f"<pick{next(counter)}@bench>", b"x" * 4000))

        def claim_and_deliver() -> None:
            claim = store.claim_next_send(account_id=account.id, now=NOW, decide=pick)
            assert isinstance(claim, Claim) and claim.message.message_id is not None
            store.record_delivered(claim.message.message_id, at=NOW)

        report(
            "claim + pick + record_delivered (two transactions)", timed(claim_and_deliver, repeat=args.repeat)
        )

        other = store.create_campaign(name="import", account_id=account.id, steps=[], now=NOW)
        many = [
            Lead(
                email=f"lead{i}@company{i % 3000}.test",
                first_name="Alex",
                last_name="Doe",
                company="Company",
                fields={"role": "CTO"},
            )
            for i in range(args.leads)
        ]
        start = time.perf_counter()
        added = store.add_leads(other.id, leads=many, now=NOW)
        print(f"bulk insert of {added:,} leads: {time.perf_counter() - start:.2f} s")
        database.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
