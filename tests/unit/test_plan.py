"""`cadence plan` end to end, as a subprocess: output format, determinism, problems, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cadence.cli import main

REPO = Path(__file__).resolve().parents[2]
START = "2026-12-01T00:00:00+01:00"


def cadence(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "desktop"))
    return subprocess.run(
        [sys.executable, "-m", "cadence", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def leads_file(tmp_path: Path) -> Path:
    rows = ["email,first_name,timezone,consent"]
    rows += [f"lead{n}@company{n % 7}.com,N{n},," for n in range(60)]
    rows += [
        "hans@firma.de,Hans,,",  # consent region, no consent → held
        "eva@firma.de,Eva,,yes",  # consent recorded → planned
        "broken@@x.com,X,,",  # invalid → blocked + reported
        "LEAD1@company1.com,Dup,,",  # duplicate → blocked + reported
        "short@x.com,too,few",  # wrong column count → reported only
        "zoned@x.com,Z,Nowhere/Land,",  # bad time zone → reported only
        "gone@suppressed.com,S,,",
    ]
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def suppress_file(tmp_path: Path) -> Path:
    path = tmp_path / "suppress.txt"
    path.write_text("# do not mail\nlead3@company3.com\n@suppressed.com\n", encoding="utf-8")
    return path


def events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_plan_output(leads_file: Path, suppress_file: Path) -> None:
    done = cadence(
        "plan", "--leads", str(leads_file), "--start", START, "--tz", "Europe/Berlin",
        "--suppress", str(suppress_file), "--horizon-days", "14", "--seed", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = events(done.stdout)
    kinds = Counter(str(event["event"]) for event in out)
    summary = out[-1]
    assert summary["event"] == "summary"
    assert kinds["summary"] == 1
    assert summary["sends"] == kinds["send"] and summary["held"] == kinds["held"] == 1
    assert summary["blocked"] == kinds["blocked"] == 4
    assert summary["unscheduled"] == kinds["unscheduled"]
    blocked = {(e["to"], e["reason"]) for e in out if e["event"] == "blocked"}
    assert blocked == {
        ("lead3@company3.com", "suppressed"),
        ("gone@suppressed.com", "suppressed"),
        ("broken@@x.com", "invalid_address"),
        ("LEAD1@company1.com", "duplicate"),
    }
    assert [e for e in out if e["event"] == "held"] == [
        {"event": "held", "to": "hans@firma.de", "reason": "consent_required"}
    ]
    sends = [e for e in out if e["event"] == "send"]
    times = [datetime.fromisoformat(str(e["at"])) for e in sends]
    assert times == sorted(times)
    assert all(str(e["at"]).endswith("+01:00") for e in sends)
    assert {e["legal_basis"] for e in sends if e["to"] == "eva@firma.de"} <= {"consent"}
    assert {e["legal_basis"] for e in sends if e["to"] != "eva@firma.de"} == {"legitimate_interest"}
    assert set(sends[0]) == {"event", "at", "to", "step", "legal_basis"}
    # the campaign does not fit in 14 days: what is left is listed, with the step it stopped at
    assert summary["unscheduled"] > 0 and summary["finish"] is None
    assert all(
        e["reason"] == "horizon" and int(str(e["step"])) >= 1 for e in out if e["event"] == "unscheduled"
    )
    assert "line 64: invalid address" in done.stderr
    assert "line 65: LEAD1@company1.com already on line 3" in done.stderr
    assert "line 66: 3 columns where the header has 4" in done.stderr
    assert "line 67: unknown time zone 'Nowhere/Land'" in done.stderr


def test_same_seed_same_plan_and_a_finish_time(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("email\n" + "\n".join(f"p{n}@x{n}.com" for n in range(8)) + "\n", encoding="utf-8")
    arguments = ["plan", "--leads", str(path), "--start", START, "--tz", "Europe/Berlin", "--steps", "0,2"]
    first = cadence(*arguments, "--seed", "5")
    again = cadence(*arguments, "--seed", "5")
    other = cadence(*arguments, "--seed", "6")
    assert first.returncode == again.returncode == other.returncode == 0
    assert first.stdout == again.stdout
    assert first.stdout != other.stdout
    out = events(first.stdout)
    summary = out[-1]
    assert summary["sends"] == 16 and summary["unscheduled"] == 0
    assert summary["finish"] == out[-2]["at"]


def test_warmup_and_caps_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "\n".join(f"p{n}@x{n % 40}.com" for n in range(200)) + "\n", encoding="utf-8")
    common = ["plan", "--leads", str(path), "--start", START, "--tz", "Europe/Berlin", "--steps", "0"]
    ramp = cadence(*common, "--warmup", "4:2:1", "--horizon-days", "3")
    flat = cadence(*common, "--no-warmup", "--daily-cap", "7", "--horizon-days", "3")
    assert ramp.returncode == flat.returncode == 0
    per_day_ramp = Counter(str(e["at"])[:10] for e in events(ramp.stdout) if e["event"] == "send")
    per_day_flat = Counter(str(e["at"])[:10] for e in events(flat.stdout) if e["event"] == "send")
    assert per_day_ramp == {"2026-12-01": 4, "2026-12-02": 6, "2026-12-03": 8}
    assert per_day_flat == {"2026-12-01": 7, "2026-12-02": 7, "2026-12-03": 7}


BAD_ARGUMENTS: list[list[str]] = [
    ["--start", "2026-12-01T00:00:00"],  # no offset
    ["--start", "yesterday"],
    ["--hours", "18:00-08:00"],
    ["--hours", "8-18"],
    ["--days", "Mon-Funday"],
    ["--tz", "Mars/Olympus"],
    ["--warmup", "10:5"],
    ["--warmup", "10:5:2", "--no-warmup"],
    ["--steps", "0,x"],
    ["--steps", "0,-1"],
    ["--daily-cap", "-1"],
    ["--daily-cap", "many"],
    ["--horizon-days", "0"],
    ["--min-delay", "-5"],
    ["--min-delay", "nan"],
    ["--jitter", "inf"],
    ["--steps", "0,inf"],
    ["--horizon-days", "nan"],
    ["--seed", "abc"],
    ["--days", ","],
    ["--suppress", "/nonexistent/suppress.txt"],
    ["--leads", "/nonexistent/leads.csv"],
]


def _bad_call(leads_file: Path, arguments: list[str]) -> list[str]:
    base = {"--leads": str(leads_file), "--start": START}
    lone: list[str] = []
    position = 0
    while position < len(arguments):
        flag = arguments[position]
        if flag == "--no-warmup":
            lone.append(flag)
            position += 1
            continue
        base[flag] = arguments[position + 1]
        position += 2
    return ["plan", *[part for pair in base.items() for part in pair], *lone]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS)
def test_bad_arguments_exit_2_with_one_line(
    leads_file: Path, arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_bad_call(leads_file, arguments))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("cadence: error:")


@pytest.mark.parametrize("arguments", [BAD_ARGUMENTS[0], BAD_ARGUMENTS[7], BAD_ARGUMENTS[-1]])
def test_bad_arguments_exit_2_as_a_process(leads_file: Path, arguments: list[str]) -> None:
    done = cadence(*_bad_call(leads_file, arguments))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("cadence: error:")


def test_a_file_without_an_email_column_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("name,company\nAnn,Acme\n", encoding="utf-8")
    done = cadence("plan", "--leads", str(path), "--start", START)
    assert done.returncode == 2
    assert "no email column" in done.stderr


def test_provider_limit_and_recipient_time_zone_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "zoned.csv"
    rows = [f"p{n}@x{n}.com,America/New_York" for n in range(400)]
    path.write_text("email,timezone\n" + "\n".join(rows) + "\n", encoding="utf-8")
    common = ["plan", "--leads", str(path), "--start", START, "--tz", "Europe/Berlin", "--steps", "0"]
    common += [
        "--no-warmup",
        "--daily-cap",
        "300",
        "--hourly-cap",
        "100",
        "--min-delay",
        "1",
        "--jitter",
        "0",
    ]
    assert main([*common, "--provider-host", "smtp.protonmail.ch", "--horizon-days", "1"]) == 0
    sends = [e for e in events(capsys.readouterr().out) if e["event"] == "send"]
    assert len(sends) == 135  # Proton: 150 a day, 10 % kept free for the user's own mail
    assert main([*common, "--recipient-tz", "--horizon-days", "1"]) == 0
    out, err = capsys.readouterr()
    assert "secondary" in err  # a cap over 30 a day comes with advice
    times = [datetime.fromisoformat(str(e["at"])) for e in events(out) if e["event"] == "send"]
    assert times and all(t.astimezone(ZoneInfo("America/New_York")).hour >= 8 for t in times)
    assert min(times).astimezone(ZoneInfo("Europe/Berlin")).hour == 14  # 08:00 in New York
