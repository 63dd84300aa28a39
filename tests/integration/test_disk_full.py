"""A full disk under the database, for real: a small tmpfs mounted for the test (root only; skipped with the
reason otherwise) and filled up with a file. SQLite reports running out of room in its shared-memory or log
file as a plain "disk I/O error"; the store must still say "the disk is full", and the scheduler must say so
in one line (no traceback), send nothing, and carry on by itself once there is room again."""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import (
    Account,
    AccountSettings,
    Guardrails,
    MessageState,
    SendOutcome,
    SendResult,
    SuppressionReason,
)
from cadence.core.ports import StorageError, StorageErrorKind
from cadence.services.dbworker import DbWorker
from cadence.services.scheduler import Scheduler, SchedulerOptions
from tests.integration.db_helpers import make_campaign, seed_outbox
from tests.stack.faults import fill_disk, small_tmpfs

PERMISSIVE = Guardrails(
    daily_cap=1_000_000,
    hourly_cap=1_000_000,
    domain_cap=1_000_000,
    min_delay_s=0,
    jitter_s=0,
    hours_start_min=0,
    hours_end_min=24 * 60,
    business_days=frozenset(range(7)),
    warmup_enabled=False,
    approve_first_touch=False,
)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    try:
        with small_tmpfs(tmp_path / "disk", size_kib=8 * 1024) as mounted:
            yield mounted
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc.stderr!r}")


def test_opening_an_existing_database_on_a_full_disk_says_the_disk_is_full(disk: Path) -> None:
    open_database(disk / "cadence.sqlite3").close()
    filler = fill_disk(disk)  # now its log and shared-memory files cannot be created: "disk I/O error"
    with pytest.raises(StorageError) as full:
        open_database(disk / "cadence.sqlite3")
    assert full.value.kind is StorageErrorKind.FULL
    assert "is full" in str(full.value)
    filler.unlink()
    open_database(disk / "cadence.sqlite3").close()  # with room again it opens


def test_a_write_once_the_disk_filled_up_is_full_and_changes_nothing(disk: Path) -> None:
    database = open_database(disk / "cadence.sqlite3")
    try:
        store = SqliteStore(database)
        now = datetime.now(UTC)
        store.add_suppression("kept@example.com", reason=SuppressionReason.MANUAL, now=now)
        filler = fill_disk(disk)
        with pytest.raises(StorageError) as full:
            store.add_suppression(
                "big@example.com", reason=SuppressionReason.HARD_BOUNCE, now=now, evidence=b"x" * 2_000_000
            )
        assert full.value.kind is StorageErrorKind.FULL
        filler.unlink()
        assert store.find_suppression("big@example.com") is None
        assert store.find_suppression("kept@example.com") is not None
    finally:
        database.close()


class CountingMailer:
    """Accepts every message (the SMTP side is not what this test is about; tests/stack covers it)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult:
        self.sent.append(recipients)
        return SendResult(outcome=SendOutcome.DELIVERED, code=250, text="2.0.0 Ok")

    async def close(self) -> None:
        return None


class NoSecrets:
    async def get(self, account: str) -> str | None:
        return None

    async def set(self, account: str, secret: str) -> None:
        return None

    async def delete(self, account: str) -> None:
        return None


@pytest.mark.asyncio
async def test_the_scheduler_says_disk_full_in_one_line_sends_nothing_and_resumes_with_room(
    disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = open_database(disk / "cadence.sqlite3")
    db = DbWorker()
    mailer = CountingMailer()
    store = SqliteStore(database)
    account: Account = store.create_account(
        AccountSettings(email="sales@example.test", smtp_host="smtp.example.test", guardrails=PERMISSIVE),
        now=datetime.now(UTC),
    )
    seed_outbox(
        store, make_campaign(store, account, steps=1, now=datetime.now(UTC)), count=2, domain="example.com"
    )
    scheduler = Scheduler(
        store=store,
        db=db,
        secrets=NoSecrets(),
        mailer_factory=lambda _account, _secret: mailer,
        rng=random.Random(3),
        options=SchedulerOptions(stop_grace_s=5),
    )
    filler = fill_disk(disk)
    try:
        caplog.clear()  # an earlier test may leave the root logger at INFO: only the scheduler's lines count

        def scheduler_errors() -> list[logging.LogRecord]:
            ours = (r for r in caplog.records if r.name == "cadence.services.scheduler")
            return [r for r in ours if r.levelno >= logging.ERROR]

        with caplog.at_level(logging.ERROR, logger="cadence.services.scheduler"):
            await scheduler.start()
            for _ in range(100):
                if scheduler_errors():
                    break
                await asyncio.sleep(0.05)
        assert mailer.sent == []  # the claim could not be written: nothing went out
        record = scheduler_errors()[0]
        assert "not sending until the database can be written" in record.getMessage()
        assert "is full" in record.getMessage() and record.exc_info is None

        filler.unlink()
        scheduler.wake()
        for _ in range(100):
            if len(mailer.sent) == 2:
                break
            await asyncio.sleep(0.05)
            scheduler.wake()
    finally:
        await scheduler.stop()
        db.shutdown()
    try:
        assert len(mailer.sent) == 2
        assert store.count_messages() == {MessageState.SENT: 2}
    finally:
        database.close()
