"""Figures for GDPR erasure ("Forget this person"): time of `store.erase_person` and of the scrub that
follows it in the running app (`app.scrub_freed_space`: VACUUM + WAL checkpoint(TRUNCATE)), on a database
with N leads and their drafts, and whether any byte of the address is left in the file or its log.

Run: .venv/bin/python benchmarks/erasure_bench.py [leads]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "desktop")]

from cadence.adapters.db.engine import open_database  # noqa: E402
from cadence.adapters.db.store import SqliteStore  # noqa: E402
from cadence.app import scrub_freed_space  # noqa: E402
from cadence.core.model import AccountSettings, CampaignStatus, Lead, Step  # noqa: E402
from cadence.services.scheduler import draft_for_step  # noqa: E402

TARGET = "person-to-forget@example.com"


def database_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def main(leads: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "cadence.sqlite3"
        database = open_database(path)
        store = SqliteStore(database)
        now = datetime.now(UTC)
        account = store.create_account(AccountSettings(email="me@seller.test", smtp_host="smtp"), now=now)
        step = Step(1, "Hi {first_name}", "Hello {first_name} at {company}, a few lines of text here.")
        campaign = store.create_campaign(
            name="bench", account_id=account.id, steps=(step,), now=now, status=CampaignStatus.ACTIVE
        )
        people = [
            Lead(f"lead{i}@company{i % 500}.example", f"First{i}", company=f"Co {i}") for i in range(leads)
        ]
        people.append(Lead(TARGET, "Forget", company="Me Inc"))
        started = time.perf_counter()
        store.add_leads(campaign.id, leads=people, now=now)
        store.create_drafts(
            [
                draft_for_step(
                    campaign_id=campaign.id, lead=lead, step=step, guardrails=account.settings.guardrails
                )
                for lead in store.list_leads(campaign.id)
            ],
            now=now,
        )
        print(f"setup: {leads + 1} leads and drafts in {time.perf_counter() - started:.1f} s")
        size = path.stat().st_size + path.with_name(path.name + "-wal").stat().st_size
        print(f"database + log before: {size / 1e6:.1f} MB")

        started = time.perf_counter()
        store.erase_person(TARGET, now=now)
        erase_s = time.perf_counter() - started
        left_before_scrub = TARGET.encode() in database_bytes(path)
        started = time.perf_counter()
        scrub_freed_space(database)
        scrub_s = time.perf_counter() - started
        left_after_scrub = TARGET.encode() in database_bytes(path)
        print(f"erase_person: {erase_s * 1000:.0f} ms; address still in the files: {left_before_scrub}")
        print(
            f"scrub (VACUUM + checkpoint TRUNCATE): {scrub_s * 1000:.0f} ms; address left: {left_after_scrub}"
        )
        print(f"database + log after: {database_bytes(path).__len__() / 1e6:.1f} MB")
        database.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
