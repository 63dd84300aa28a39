"""The Campaigns tab's finish estimate and the Deliverability chart's inbound counts, over a real SQLite file.

Figures: reading the planner's inputs from the store (database worker), planning them (core.planner, on the
estimate thread) and the whole refresh as the window gets it, for 10,000 leads × 3 steps; then the chart's
grouped inbound-events query over 14 local days with 50,000 events in the table.

    .venv/bin/python benchmarks/finish_estimate_bench.py [--leads 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core.model import (
    AccountSettings,
    FolderRole,
    Guardrails,
    InboundAction,
    InboundEffect,
    InboundItem,
    InboundKind,
    Lead,
    MessageState,
    NewDraft,
    Step,
    Verdict,
)
from cadence.services.finish_estimate import estimate_from, plan_inputs, read_inputs
from cadence.services.runtime import Runtime

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class NoSecrets:
    async def get(self, account: str) -> str | None:
        return None

    async def set(self, account: str, secret: str) -> None:
        return None

    async def delete(self, account: str) -> None:
        return None


def seed(store: SqliteStore, *, leads: int, events: int) -> tuple[int, int]:
    account = store.create_account(
        AccountSettings(email="bench@example.test", smtp_host="smtp.example.test", guardrails=Guardrails()),
        now=NOW - timedelta(days=40),
    )
    campaign = store.create_campaign(
        name="Bench",
        account_id=account.id,
        steps=[
            Step(1, "One", "Hi"),
            Step(2, "Two", "Hi", delay_days=3),
            Step(3, "Three", "Hi", delay_days=7),
        ],
        now=NOW,
    )
    store.add_leads(
        campaign.id, leads=[Lead(f"lead{n}@company{n % 500}.example.com") for n in range(leads)], now=NOW
    )
    ids = store.lead_ids_by_email(campaign.id)
    store.create_drafts_bulk(
        [
            NewDraft(campaign.id, lead_id, 1, "One", "Hi", state=MessageState.APPROVED)
            for lead_id in ids.values()
        ],
        now=NOW,
    )
    kinds = [InboundKind.REPLY, InboundKind.UNSUBSCRIBE, InboundKind.NOT_INTERESTED, InboundKind.HARD_BOUNCE]
    batch = 2000
    for first in range(0, events, batch):
        effects = [
            InboundEffect(
                item=InboundItem(
                    folder="INBOX",
                    role=FolderRole.INBOX,
                    uid=uid + 1,
                    raw=b"x",
                    message_id=None,
                    verdict=Verdict(kind=kinds[uid % len(kinds)]),
                ),
                action=InboundAction.NONE,
            )
            for uid in range(first, min(events, first + batch))
        ]
        # spread over 200 days back from NOW
        at = NOW - timedelta(days=200) + timedelta(days=200 * first / max(1, events))
        store.apply_inbound_batch(
            account_id=account.id,
            folder="INBOX",
            uidvalidity=1,
            last_uid=first + len(effects),
            effects=effects,
            now=at,
            follow_up=lambda *_: None,
        )
    return account.id, campaign.id


def timed(function: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


async def refresh_times(store: SqliteStore, campaign_id: int, repeat: int) -> list[float]:
    runtime = Runtime(store=store, secrets=NoSecrets(), mailer_factory=smtp_mailer_for, clock=FixedClock())
    times = []
    gaps: list[float] = []

    async def ticker() -> None:  # how long the event loop waits while the estimate is worked out
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last - 0.005)
            last = now

    try:
        ticking = asyncio.create_task(ticker())
        for _ in range(repeat):
            runtime.estimates.forget(campaign_id)
            started = time.perf_counter()
            await runtime.estimates.refresh(campaign_id)
            times.append(time.perf_counter() - started)
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)
        print(f"event loop during refreshes: longest stall {max(gaps) * 1000:.1f} ms")
        # what the window sees on its first read: "estimating…" or a date, and how long the call took
        runtime.estimates.forget(campaign_id)
        started = time.perf_counter()
        [summary] = await runtime.list_campaigns()
        print(
            f"list_campaigns (cold cache): {time.perf_counter() - started:.3f} s,"
            f" finish={summary.finish_estimate} note={summary.finish_note!r}"
        )
        while pending := runtime.estimates.pending():
            await asyncio.gather(*pending)
        started = time.perf_counter()
        [summary] = await runtime.list_campaigns()
        elapsed = time.perf_counter() - started
        print(f"list_campaigns (cached): {elapsed:.3f} s, finish={summary.finish_estimate}")
    finally:
        await runtime.aclose()
    return times


def show(name: str, times: list[float]) -> None:
    print(f"{name}: median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(Path(folder) / "bench.sqlite3")
        try:
            store = SqliteStore(database)
            account_id, campaign_id = seed(store, leads=args.leads, events=args.events)
            inputs = read_inputs(store, campaign_id, now=NOW)
            result = plan_inputs(inputs)
            print(
                f"{args.leads:,} leads × 3 steps, default guardrails: {len(result.sends):,} sends planned,"
                f" finish {result.finish}"
            )
            show(
                "read inputs from the store",
                timed(lambda: read_inputs(store, campaign_id, now=NOW), args.repeat),
            )
            show("plan (core.planner)", timed(lambda: estimate_from(inputs), args.repeat))
            show(
                "whole refresh (db worker + estimate thread)",
                asyncio.run(refresh_times(store, campaign_id, args.repeat)),
            )
            first_day = date(2026, 11, 10)
            show(
                f"chart inbound counts, 14 days, {args.events:,} events",
                timed(
                    lambda: store.count_inbound_by_day(
                        account_id, first_day=first_day, last_day=date(2026, 11, 23), timezone="Europe/Berlin"
                    ),
                    args.repeat,
                ),
            )
        finally:
            database.close()


if __name__ == "__main__":
    main()
