"""The chaos figures script (tests/stack/chaos.py): its table from a report, whatever subset was recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import chaos
from tests.stack.report import REPORT_ENV, read, record

REPO = Path(__file__).resolve().parents[2]


def test_the_table_totals_every_recorded_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(report))
    record("kill_test", kills=50, duplicates=0, lost=0, in_doubt=3, runs=57)
    record("fault", fault="421 at greeting", survived=True, lost=0, duplicates=0, message="deferred, sent")
    record("fault", fault="malformed MIME bounce", survived=True, lost=0, duplicates=0, bad_input=True)
    record("fault", fault="full disk", survived=False, lost=1, duplicates=0, message="stopped")
    record("two_instances", cap="daily", delivered=3, approved=8, duplicates=1, lost=0, ledger_24h=20,
           daily_cap=20, ledger_1h=3, hourly_cap=3600, by_instance=[2, 1], overlap_s=50.1)  # fmt: skip
    record("secrets_scan", secrets=4, files=120, bytes=5000, excluded=1, hits=0)
    record("scenario", leads=100, bad_inputs=7)

    table = chaos.figures(read(report))

    assert table.splitlines()[1] == (
        "kills 50 | duplicates 1 | lost 1 | in doubt 3 | faults survived 2 / 3 | bad inputs tried 8"
    )
    assert "  NOT full disk" in table and "  ok  421 at greeting" in table
    assert "daily cap: delivered 3 of 8 approved, ledger 24 h 20/20, 1 h 3/3600, duplicates 1" in table
    assert "secrets 4, files 120, bytes 5000, excluded 1 (keyring store), hits 0" in table
    assert "not recorded:" not in table


def test_what_was_not_recorded_is_named_not_invented(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    report.write_text(json.dumps({"name": "two_instances", "cap": "hourly", "duplicates": 0}) + "\n")
    table = chaos.figures(read(report))
    assert table.splitlines()[1] == (
        "kills not recorded | duplicates 0 | lost not recorded | in doubt not recorded | "
        "faults survived 0 / 0 | bad inputs tried not recorded"
    )
    assert table.splitlines()[-1] == "not recorded: scenario, kill_test, fault, secrets_scan"


def test_figures_only_prints_a_report_and_refuses_a_missing_one(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    report.write_text(json.dumps({"name": "kill_test", "kills": 5, "duplicates": 0, "lost": 0}) + "\n")
    command = [sys.executable, "-m", "tests.stack.chaos", "--figures-only"]
    shown = subprocess.run([*command, str(report)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "kills 5 | duplicates 0 | lost 0" in shown.stdout
    missing = subprocess.run(
        [*command, str(tmp_path / "no")], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "no report at" in missing.stderr


def test_the_suite_runs_inside_a_private_keyring_session() -> None:
    command = chaos.pytest_command(["-k", "kill"])
    pytest_part = command[command.index("pytest") - 1 :]
    assert pytest_part[:3] == ["-m", "pytest", "tests/stack"] and pytest_part[-2:] == ["-k", "kill"]
    if command[0] == "dbus-run-session":
        assert "gnome-keyring-daemon --unlock --components=secrets" in command[4]
