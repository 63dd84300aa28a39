"""Two `cadence run` processes on ONE data directory, sending through the real stack (Postfix → internet).

Cadence's design for this is a shared ledger, not a refusal: there is no instance lock, both processes run
and each claim is decided inside one `BEGIN IMMEDIATE` SQLite transaction that counts the other process's
in-flight (`sending`) message against every cap. These tests assert that design explicitly (both processes
are alive at the same time, neither refuses, both exit 0) and that together they never exceed the daily
or the hourly cap, nor send any recipient two copies.

Why the ledger is seeded: pacing spreads a day's cold sends over the business window and keeps them at
least an hour / hourly cap apart, so in real time a cap can only be reached when earlier sends already fill
most of it. Each test seeds cold sends "an earlier run made" before a short business window that opened
this minute, leaving room for exactly `ROOM` more; the window is short so pacing's grid is seconds, not
hours, and both processes race for the same few slots.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import LedgerEntry, LedgerKind, MessageState
from tests.integration.cli_harness import REPO, cadence_command, keyring_session, run_cadence
from tests.stack.report import record
from tests.stack.stack import MailStack

pytestmark = [pytest.mark.keyring, pytest.mark.slow]

ROOM = 3  # sends the seeded ledger leaves under the cap being tested
APPROVED = 8  # more approved messages than that room
WINDOW_MIN = 4  # business window length: pacing's grid is WINDOW / planned sends, a few seconds here


@dataclass(frozen=True)
class CapCase:
    name: str
    daily_cap: int
    hourly_cap: int
    seeded: int  # cold sends an earlier run made
    seeded_age: timedelta  # how long ago (inside the cap's rolling window, before the business window)
    reason: str  # the deferral the processes must report once the room is used


DAILY = CapCase("daily", daily_cap=20, hourly_cap=3600, seeded=20 - ROOM, seeded_age=timedelta(hours=3),
                reason="daily_cap")  # fmt: skip
HOURLY = CapCase("hourly", daily_cap=1000, hourly_cap=240, seeded=240 - ROOM,
                 seeded_age=timedelta(minutes=30), reason="hourly_cap")  # fmt: skip


@pytest.fixture(scope="module")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with keyring_session(tmp_path_factory.mktemp("keyring")) as env:
        yield env


def _window_opening_now() -> tuple[int, int]:
    """A business window (minutes after UTC midnight) that opened this minute and lasts WINDOW_MIN."""
    now = datetime.now(UTC)
    if now.hour * 60 + now.minute + WINDOW_MIN + 1 > 24 * 60:  # the window must end before midnight
        time.sleep((24 * 60 - now.hour * 60 - now.minute) * 60 - now.second + 2)
        now = datetime.now(UTC)
    start = now.hour * 60 + now.minute
    return start, start + WINDOW_MIN


def _add_account(data: Path, stack: MailStack, env: dict[str, str], case: CapCase) -> None:
    start, end = _window_opening_now()
    guardrails = {
        "daily_cap": case.daily_cap,
        "hourly_cap": case.hourly_cap,
        "domain_cap": 1_000_000,
        "min_delay_s": 0,
        "jitter_s": 0,
        "hours_start_min": start,
        "hours_end_min": end,
        "business_days": list(range(7)),
        "timezone": "UTC",
    }
    added = run_cadence(
        data, "account", "add", "--email", stack.user, "--name", "Sam Seller",
        "--smtp", f"{stack.host}:{stack.submission_port}", "--imap", f"{stack.host}:{stack.imaps_port}",
        "--security", "starttls", "--ca-file", str(stack.ca_file), "--guardrails", json.dumps(guardrails),
        "--no-warmup", "--password-stdin", env=env, input_text=stack.password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def _seed_earlier_sends(data: Path, case: CapCase) -> None:
    database = open_database(data / "cadence.sqlite3")
    try:
        store = SqliteStore(database)
        [account] = store.list_accounts()
        base = datetime.now(UTC) - case.seeded_age
        for index in range(case.seeded):
            added = store.add_ledger_entry(
                LedgerEntry(
                    account_id=account.id,
                    at=base + timedelta(seconds=index % 60),
                    recipient=f"earlier{index}@earlier.example.com",
                    kind=LedgerKind.SENT,
                    subject="an earlier run",
                    message_id=f"<earlier-{index}-{uuid.uuid4().hex[:8]}@seller.test>",
                )
            )
            assert added
    finally:
        database.close()


def _campaign(data: Path, tmp_path: Path, env: dict[str, str], tag: str) -> list[str]:
    leads = [f"lead{i}+{tag}@two-{tag}.example.com" for i in range(APPROVED)]
    csv = tmp_path / "leads.csv"
    csv.write_text("email,first_name\n" + "".join(f"{a},P{i}\n" for i, a in enumerate(leads)), "utf-8")
    body = tmp_path / "step1.txt"
    body.write_text("Hello {first_name},\n\nwould a short call next week make sense?\n", encoding="utf-8")
    created = run_cadence(
        data, "campaign", "add", "--name", f"two-{tag}", "--leads", str(csv),
        "--step", f"Hi {{first_name}}|{body}|0", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    approved = run_cadence(data, "approve", "--all", env=env)
    assert approved.returncode == 0 and json.loads(approved.stdout)["approved"] == APPROVED, approved.stderr
    return leads


def _run_two(data: Path, env: dict[str, str], *, seconds: float) -> tuple[list[str], float]:
    """Start two `cadence run` at once on `data`; returns their stderr and how long both were alive."""
    until = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    logs = [data.parent / f"instance-{name}.err" for name in "ab"]
    handles = [path.open("wb") for path in logs]
    processes = [
        subprocess.Popen(
            cadence_command(data, "run", "--until", until, "--poll", "1", "--verbose"),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
        for handle in handles
    ]
    together = 0.0
    try:
        began = time.monotonic()
        while all(process.poll() is None for process in processes):
            time.sleep(0.2)
            together = time.monotonic() - began
        codes = [process.wait(timeout=seconds + 60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for handle in handles:
            handle.close()
    errors = [path.read_text(encoding="utf-8", errors="replace") for path in logs]
    assert codes == [0, 0], f"exit codes {codes}:\n" + "\n---\n".join(e[-3000:] for e in errors)
    return errors, together


def _sends_in(stderr: str) -> list[str]:
    return [line.split(" to=", 1)[1].split()[0] for line in stderr.splitlines() if " sent account=" in line]


def _ledger(data: Path, since: datetime) -> tuple[int, dict[str, Any]]:
    database = open_database(data / "cadence.sqlite3")
    try:
        store = SqliteStore(database)
        [account] = store.list_accounts()
        sends = store.list_ledger(account_id=account.id, since=since, kinds=[LedgerKind.SENT])
        counts = store.count_messages(account_id=account.id)
        return len([s for s in sends if s.cold and not s.manual]), {
            "sent": counts.get(MessageState.SENT, 0),
            "approved": counts.get(MessageState.APPROVED, 0),
            "sending": counts.get(MessageState.SENDING, 0),
            "in_doubt": len(store.list_in_doubt(account.id)),
        }
    finally:
        database.close()


def _audited_deferrals(data: Path) -> dict[str, int]:
    database = open_database(data / "cadence.sqlite3")
    try:
        with database.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT reason, COUNT(*) FROM audit_log WHERE result = 'deferred' GROUP BY reason"
            ).all()
    finally:
        database.close()
    return {reason: count for reason, count in rows}


@pytest.mark.parametrize("case", [DAILY, HOURLY], ids=lambda case: case.name)
def test_two_instances_share_the_ledger_and_never_exceed_the_cap_together(
    case: CapCase, tmp_path: Path, keyring_env: dict[str, str], private_mail_stack: MailStack
) -> None:
    # a stack of this module's own: the session stack's INBOX holds other tests' DSNs, which the watcher would
    # count as this account's hard bounces, and the bounce breaker would then stop sending before any cap
    stack, env, data = private_mail_stack, keyring_env, tmp_path / "data"
    tag = uuid.uuid4().hex[:8]
    _add_account(data, stack, env, case)
    _seed_earlier_sends(data, case)
    leads = _campaign(data, tmp_path, env, tag)

    # pacing's grid in the window is ≤ 15 s: ROOM sends take about 35 s, the rest must stay queued
    errors, together = _run_two(data, env, seconds=60)

    # the design: shared ledger, no refusal. Both ran side by side for most of the run and both worked
    # the queue (each logged its scheduler decisions); neither said another instance holds the data dir.
    assert together > 30, f"the two processes overlapped only {together:.1f} s"
    for stderr in errors:
        assert "idle account=" in stderr or " sent account=" in stderr, stderr[-2000:]
        assert "Traceback" not in stderr and "database is locked" not in stderr, stderr[-3000:]

    delivered = [r for r in stack.delivered() if r["rcpt"] in leads]
    per_recipient = Counter(r["rcpt"] for r in delivered)
    duplicates = sum(count - 1 for count in per_recipient.values())
    by_instance = [len(_sends_in(stderr)) for stderr in errors]
    day_sends, counts = _ledger(data, datetime.now(UTC) - timedelta(days=1))
    hour_sends, _ = _ledger(data, datetime.now(UTC) - timedelta(hours=1))
    # the cap shows as the reason an idle process gives, or (when an earlier deferral's due time comes first
    # and names the idle wait) in the audit log, where every deferral is written with its reason
    deferred_for_cap = [f"idle account=1 {case.reason}" in stderr for stderr in errors]
    deferred_for_cap.append(_audited_deferrals(data).get(case.reason, 0) > 0)
    record(
        "two_instances",
        cap=case.name,
        daily_cap=case.daily_cap,
        hourly_cap=case.hourly_cap,
        seeded=case.seeded,
        approved=APPROVED,
        delivered=len(delivered),
        duplicates=duplicates,
        lost=APPROVED - counts["sent"] - counts["approved"] - counts["sending"],
        by_instance=by_instance,
        ledger_24h=day_sends,
        ledger_1h=hour_sends,
        overlap_s=round(together, 1),
        **{f"left_{state}": count for state, count in counts.items()},
    )

    assert duplicates == 0, per_recipient
    assert day_sends <= case.daily_cap and hour_sends <= case.hourly_cap
    # exactly the room was used: the cap was reached (not merely unreached) and never passed
    assert len(delivered) == ROOM == sum(by_instance), (by_instance, delivered)
    assert day_sends == case.seeded + ROOM if case.name == "daily" else hour_sends == case.seeded + ROOM
    assert counts == {"sent": ROOM, "approved": APPROVED - ROOM, "sending": 0, "in_doubt": 0}
    assert any(deferred_for_cap), [e[-1500:] for e in errors]  # held back by the cap, not by chance

    status = run_cadence(data, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    caps = json.loads(status.stdout)["accounts"][0]["caps"]
    if case.name == "daily":
        assert caps["daily"] == {"used": case.daily_cap, "limit": case.daily_cap}
    else:
        assert caps["hourly"] == {"used": case.hourly_cap, "limit": case.hourly_cap}
