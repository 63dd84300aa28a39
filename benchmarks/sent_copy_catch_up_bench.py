"""Store.list_missing_sent_copies (the Sent-copy catch-up's query, run on every watcher connection) over a
real SQLite file with many sent messages spread over months, 1 % of them without a recorded copy.

    .venv/bin/python benchmarks/sent_copy_catch_up_bench.py --messages 100000

Prints the median and fastest of several calls (it runs on the database thread the window shares).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore


def seed(path: Path, *, count: int, now: datetime) -> None:
    database = open_database(path)
    ts = now.isoformat(timespec="microseconds")
    try:
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO accounts (id, email, display_name, smtp_host, smtp_port, smtp_security,"
                    " imap_host, imap_port, imap_security, guardrails, sent_folder_kind, created_at)"
                    " VALUES (1, 'a@x.test', 'A', 's', 587, 'starttls', 'i', 993, 'tls', '{}', 'app_appends',"
                    " :ts)"
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
                    " VALUES (1, 1, 'S', 'B', 0)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO leads (id, campaign_id, email, status, created_at)"
                    " VALUES (:id, 1, :email, 'contacted', :ts)"
                ),
                [{"id": i, "email": f"l{i}@x.test", "ts": ts} for i in range(1, count + 1)],
            )
            rows = []
            for i in range(1, count + 1):
                at = (now - timedelta(minutes=2 * i)).isoformat(timespec="microseconds")
                rows.append(
                    {
                        "id": i,
                        "mid": f"<m{i}@x>",
                        "mime": b"x" * 2000,
                        "ts": at,
                        "copy": at if i % 100 else None,
                    }
                )
            connection.execute(
                text(
                    "INSERT INTO messages (id, campaign_id, lead_id, step_index, account_id, state, subject,"
                    " body, message_id, mime, created_at, updated_at, state_changed_at, sent_copy_at)"
                    " VALUES (:id, 1, :id, 1, 1, 'sent', 'S', 'B', :mid, :mime, :ts, :ts, :ts, :copy)"
                ),
                rows,
            )
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        seed(path, count=args.messages, now=now)
        database = open_database(path)
        try:
            store = SqliteStore(database)
            timings = []
            listed = 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                listed = len(store.list_missing_sent_copies(1, since=now - timedelta(days=7), limit=50))
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            database.close()
    print(
        f"{args.messages:,} sent messages, {listed} listed (batch 50): "
        f"median {statistics.median(timings):.1f} ms, fastest {min(timings):.1f} ms"
    )


if __name__ == "__main__":
    main()
