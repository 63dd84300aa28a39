"""Event-loop stall while the scheduler sends: 200 messages to an SMTP peer that takes 1 s to answer each
final dot, with a 5 ms ticker on the same loop. Prints max and p99 lateness of the ticker (goals: max ≤ 50 ms,
p99 ≤ 5 ms) and the throughput.

The peer runs in a process of its own (a remote server, as in life). The messages are spread over several
accounts (default 10 × 20) so that the run takes ~20 s instead of 200 s: each account sends one message at a
time, so the loop carries ten SMTP sessions, ten claims and ten recordings concurrently. The loop is a qasync
QEventLoop (as in the window) unless --loop asyncio.

    .venv/bin/python benchmarks/loop_stall_bench.py [--messages 200] [--accounts 10] [--reply-s 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "desktop")]

from tests.integration.cli_harness import PERMISSIVE, peer_process  # noqa: E402

from cadence.adapters.db.engine import open_database  # noqa: E402
from cadence.adapters.db.store import SqliteStore  # noqa: E402
from cadence.app import settle_heap, smtp_mailer_for  # noqa: E402
from cadence.core.model import (  # noqa: E402
    AccountSettings,
    ConnectionSecurity,
    Guardrails,
    Lead,
    MessageState,
    Step,
)
from cadence.services.dbworker import DbWorker  # noqa: E402
from cadence.services.scheduler import Scheduler, SchedulerOptions, draft_for_step  # noqa: E402

PASSWORD = "bench-pw"


class MemorySecrets:
    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = secrets

    async def get(self, account: str) -> str | None:
        return self._secrets.get(account)

    async def set(self, account: str, secret: str) -> None:
        self._secrets[account] = secret

    async def delete(self, account: str) -> None:
        self._secrets.pop(account, None)


def prepare(store: SqliteStore, *, accounts: int, messages: int, port: int, ca_file: Path) -> list[str]:
    now = datetime.now(UTC)
    guardrails = Guardrails(
        **PERMISSIVE,
        hours_start_min=0,
        hours_end_min=24 * 60,
        business_days=frozenset(range(7)),
        warmup_enabled=False,
        approve_first_touch=False,
    )
    step = Step(1, "Hello {first_name}", "Hi {first_name},\n\na short note.\n")
    emails = []
    per_account = messages // accounts
    for number in range(accounts):
        email = f"sender{number}@example.com"
        emails.append(email)
        account = store.create_account(
            AccountSettings(
                email=email,
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_security=ConnectionSecurity.STARTTLS,
                ca_file=str(ca_file),
                guardrails=guardrails,
            ),
            now=now,
        )
        campaign = store.create_campaign(name=f"c{number}", account_id=account.id, steps=(step,), now=now)
        store.add_leads(
            campaign.id,
            leads=[
                Lead(email=f"lead{number}-{i}@example.org", first_name=f"P{i}") for i in range(per_account)
            ],
            now=now,
        )
        drafts = [
            draft_for_step(campaign_id=campaign.id, lead=lead, step=step, guardrails=guardrails)
            for lead in store.list_leads(campaign.id)
        ]
        store.create_drafts(drafts, now=now)
    return emails


async def idle_ticker(seconds: float) -> list[float]:
    """The same ticker with nothing else on the loop: what the machine itself costs (a busy CI box shows
    tens of ms here already)."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        expected = loop.time() + 0.005
        await asyncio.sleep(0.005)
        lateness.append(max(0.0, loop.time() - expected))
    return lateness


def summary(lateness: list[float]) -> tuple[float, float, float]:
    values = sorted(x * 1000 for x in lateness) or [0.0]
    return values[-1], values[max(0, int(len(values) * 0.99) - 1)], statistics.median(values)


async def measure(
    store: SqliteStore, emails: list[str], *, total: int, max_candidates: int
) -> tuple[list[float], float, int]:
    db = DbWorker()
    scheduler = Scheduler(
        store=store,
        db=db,
        secrets=MemorySecrets({email: PASSWORD for email in emails}),
        mailer_factory=smtp_mailer_for,
        rng=random.Random(1),
        options=SchedulerOptions(max_candidates=max_candidates),
    )
    lateness: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            expected = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lateness.append(max(0.0, loop.time() - expected))

    def sent_count() -> int:
        return store.count_messages().get(MessageState.SENT, 0)

    settle_heap()  # as the app does once start-up is over
    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await scheduler.start()
    try:
        while await db.call(sent_count) < total:
            await asyncio.sleep(0.25)
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await tick
        await scheduler.stop()
        sent = await db.call(sent_count)
        db.shutdown()
    return lateness, elapsed, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--reply-s", type=float, default=1.0, help="the peer's delay before each 250")
    parser.add_argument("--loop", choices=("qasync", "asyncio"), default="qasync")
    parser.add_argument("--max-candidates", type=int, default=50, help="candidates read per claim")
    parser.add_argument("--baseline-s", type=float, default=5.0, help="idle ticker run first, for comparison")
    args = parser.parse_args()
    total = args.messages // args.accounts * args.accounts
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        database = open_database(folder / "bench.sqlite3")
        store = SqliteStore(database)
        users = tuple(f"sender{n}@example.com" for n in range(args.accounts))
        with peer_process(
            folder / "peer", reply_delay_s=args.reply_s, users=users, password=PASSWORD
        ) as peer:
            emails = prepare(
                store, accounts=args.accounts, messages=total, port=peer.port, ca_file=peer.ca_file
            )
            if args.loop == "qasync":
                import qasync
                from PySide6.QtCore import QCoreApplication

                app = QCoreApplication.instance() or QCoreApplication([])
                loop = qasync.QEventLoop(app)
                asyncio.set_event_loop(loop)
                try:
                    baseline = loop.run_until_complete(idle_ticker(args.baseline_s))
                    lateness, elapsed, sent = loop.run_until_complete(
                        measure(store, emails, total=total, max_candidates=args.max_candidates)
                    )
                finally:
                    loop.close()
                    asyncio.set_event_loop(None)
                    gc.collect()
            else:
                baseline = asyncio.run(idle_ticker(args.baseline_s))
                lateness, elapsed, sent = asyncio.run(
                    measure(store, emails, total=total, max_candidates=args.max_candidates)
                )
        database.close()
    worst, p99, median = summary(lateness)
    idle_worst, idle_p99, idle_median = summary(baseline)
    print(f"loop: {args.loop}; peer reply delay {args.reply_s:g} s; {args.accounts} accounts")
    print(f"sent {sent}/{total} in {elapsed:.1f} s ({sent / elapsed:.1f} msg/s)")
    print(
        f"ticker (5 ms) while sending: {len(lateness)} ticks, lateness max {worst:.1f} ms, "
        f"p99 {p99:.2f} ms, median {median:.2f} ms"
    )
    print(
        f"ticker (5 ms) idle baseline, {args.baseline_s:g} s: max {idle_worst:.1f} ms, "
        f"p99 {idle_p99:.2f} ms, median {idle_median:.2f} ms"
    )
    print(
        f"goals: max <= 50 ms {'OK' if worst <= 50 else 'MISSED'}; "
        f"p99 <= 5 ms {'OK' if p99 <= 5 else 'MISSED'}"
    )
    return 0 if sent == total else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # PySide6 6.12 + qasync 0.28 can crash in interpreter finalisation (none_dealloc)
