"""Runtime.create_campaign and Runtime.list_campaigns over a real SQLite file at scale (no Qt, no network).

    .venv/bin/python benchmarks/campaign_store_bench.py --leads 100000

Prints the wall time of one create_campaign with N leads, the median of several list_campaigns calls, and the
store's bulk draft insert alone. The campaign is created paused, so the scheduler never sends.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from cadence.app import open_store, smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import AccountSettings, Step
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime


def leads_csv(count: int) -> bytes:
    lines = ["Email,First name,Last name,Company,Industry"]
    lines.extend(
        f"lead{i}@company{i % 997}.example,Name{i},Surname{i},Company {i % 997},Fleet" for i in range(count)
    )
    return ("\n".join(lines) + "\n").encode()


async def measure(data_dir: Path, *, leads: int, listings: int) -> None:
    opened = open_store(data_dir)
    runtime = Runtime(
        store=opened.store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for, on_close=opened.close
    )
    try:
        account = opened.store.create_account(
            AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test"),
            now=runtime._clock.now(),
        )
        data = leads_csv(leads)
        preview = await runtime.import_leads_preview(data)
        spec = v.NewCampaign(
            name="Scale",
            account_id=account.id,
            steps=(Step(index=1, subject="Hello {first_name}", body="Hi {first_name} at {company}.\n"),),
            csv_bytes=data,
            mapping=dict(preview.mapping),
            start_now=False,
        )
        started = time.perf_counter()
        await runtime.create_campaign(spec)
        create_s = time.perf_counter() - started
        pending = await runtime.count_pending()
        timings = []
        summaries: list[v.CampaignSummary] = []
        for _ in range(listings):
            started = time.perf_counter()
            summaries = await runtime.list_campaigns()
            timings.append(time.perf_counter() - started)
        print(f"leads: {leads:,}; pending after create: {pending:,}")
        print(f"create_campaign:  {create_s:8.2f} s")
        print(f"list_campaigns:   {statistics.median(timings) * 1000:8.1f} ms (median of {listings})")
        for summary in summaries:
            print(f"  campaign {summary.id}: leads={summary.leads:,} held={summary.held:,} {summary.status}")
    finally:
        await runtime.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--listings", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(measure(Path(directory), leads=args.leads, listings=args.listings))


if __name__ == "__main__":
    main()
