"""The chaos suite in one command, then its figures (issue 7).

    .venv/bin/python -m tests.stack.chaos                 # run tests/stack, print the figures
    .venv/bin/python -m tests.stack.chaos -- -k kill      # extra pytest arguments after --
    .venv/bin/python -m tests.stack.chaos --figures-only REPORT.jsonl

Runs pytest over tests/stack the way tests/run.sh runs the suite: a throw-away HOME, a private D-Bus session
with an unlocked gnome-keyring, Qt offscreen, and `CADENCE_CHAOS_REPORT` pointing at a fresh report file
that the tests append their figures to (tests/stack/report.py). The end-of-session secrets scan
(tests/secrets_scan.py) runs inside that session and records its figures too. Then the figures are printed:
kills, duplicates, lost, in doubt, faults survived / tried (by name), bad inputs tried, the 100-lead
scenario, the two-instance runs and the secrets scan. Whatever was not recorded (a test skipped, not
written yet, or failed before recording) is named as such. The mail stack needs root: without it the stack
tests skip and say why. Exit code: pytest's (a leak found by the secrets scan fails it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.stack.report import REPORT_ENV, read

REPO = Path(__file__).resolve().parents[2]
KEYRING_PASSWORD = "cadence-test"
EXPECTED = ("scenario", "kill_test", "fault", "two_instances", "secrets_scan")


# --- running ----------------------------------------------------------------------------------------------


def _test_environment(home: Path, report: Path) -> dict[str, str]:
    (home / "run").mkdir(mode=0o700)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(home / "run"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        QT_QPA_PLATFORM="offscreen",
    )
    env[REPORT_ENV] = str(report)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)  # never the user's own session or keyring
    return env


def pytest_command(pytest_args: list[str]) -> list[str]:
    python = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
    command = [python, "-m", "pytest", "tests/stack", "-p", "no:cacheprovider", "-rs", *pytest_args]
    if shutil.which("dbus-run-session") is None or shutil.which("gnome-keyring-daemon") is None:
        print("chaos: no dbus-run-session / gnome-keyring-daemon: keyring tests will skip", file=sys.stderr)
        return command
    unlock = (
        f'printf "{KEYRING_PASSWORD}" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; '
        'exec "$0" "$@"'
    )
    return ["dbus-run-session", "--", "sh", "-c", unlock, *command]


def run_suite(report: Path, pytest_args: list[str]) -> int:
    home = Path(tempfile.mkdtemp(prefix="cadence-test-home."))
    try:
        from tests.stack.stack import missing_requirements

        problem = missing_requirements()
        if problem:
            print(f"chaos: the mail stack tests will skip: {problem}", file=sys.stderr)
        began = time.monotonic()
        completed = subprocess.run(
            pytest_command(pytest_args), cwd=REPO, env=_test_environment(home, report), check=False
        )
        print(f"chaos: pytest exited {completed.returncode} after {time.monotonic() - began:.0f} s")
        return completed.returncode
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- the figures ------------------------------------------------------------------------------------------


def _ints(records: Iterable[dict[str, Any]], key: str) -> int | None:
    values = [record[key] for record in records if isinstance(record.get(key), int | float)]
    return int(sum(values)) if values else None


def _shown(value: int | None) -> str:
    return "not recorded" if value is None else str(value)


def _pairs(record: dict[str, Any], skip: Iterable[str] = ()) -> str:
    hidden = {"name", "at", *skip}
    return ", ".join(f"{key} {value}" for key, value in record.items() if key not in hidden)


def figures(records: list[dict[str, Any]]) -> str:
    """The figures table for the records of one report (any subset of the expected names)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_name.setdefault(str(record.get("name")), []).append(record)
    lines: list[str] = []

    kills = by_name.get("kill_test", [])
    faults = by_name.get("fault", [])
    twins = by_name.get("two_instances", [])
    scenario = by_name.get("scenario", [])
    scans = by_name.get("secrets_scan", [])
    counted = kills + faults + twins + scenario
    survived = sum(1 for fault in faults if fault.get("survived") is True)
    # a record counts its bad inputs in `bad_inputs`; a fault that is one (a malformed bounce) says bad_input
    flagged = sum(1 for fault in faults if fault.get("bad_input") is True)
    counted_bad = _ints(records, "bad_inputs")
    bad_inputs = None if counted_bad is None and not flagged else (counted_bad or 0) + flagged

    lines.append("== chaos figures")
    lines.append(
        f"kills {_shown(_ints(kills, 'kills'))} | duplicates {_shown(_ints(counted, 'duplicates'))} | "
        f"lost {_shown(_ints(counted, 'lost'))} | in doubt {_shown(_ints(kills, 'in_doubt'))} | "
        f"faults survived {survived} / {len(faults)} | bad inputs tried {_shown(bad_inputs)}"
    )
    lines.append("")
    lines.append("kill test")
    lines.extend(f"  {_pairs(record)}" for record in kills)
    if not kills:
        lines.append("  not recorded")
    lines.append(f"faults: {survived} survived of {len(faults)} tried")
    for fault in faults:
        mark = "ok " if fault.get("survived") is True else "NOT"
        message = str(fault.get("message", ""))[:90]
        lines.append(
            f"  {mark} {fault.get('fault', '?')!s:<42} lost {fault.get('lost', '?')}, "
            f"duplicates {fault.get('duplicates', '?')}  {message}"
        )
    if not faults:
        lines.append("  not recorded")
    lines.append("scenario (100 leads)")
    lines.extend(f"  {_pairs(record)}" for record in scenario)
    if not scenario:
        lines.append("  not recorded")
    lines.append("two instances on one data directory (shared ledger)")
    for twin in twins:
        lines.append(
            f"  {twin.get('cap')} cap: delivered {twin.get('delivered')} of {twin.get('approved')} approved, "
            f"ledger 24 h {twin.get('ledger_24h')}/{twin.get('daily_cap')}, "
            f"1 h {twin.get('ledger_1h')}/{twin.get('hourly_cap')}, duplicates {twin.get('duplicates')}, "
            f"by instance {twin.get('by_instance')}, overlap {twin.get('overlap_s')} s"
        )
    if not twins:
        lines.append("  not recorded")
    lines.append("secrets scan (end of session)")
    for scan in scans:
        lines.append(
            f"  secrets {scan.get('secrets')}, files {scan.get('files')}, bytes {scan.get('bytes')}, "
            f"excluded {scan.get('excluded')} (keyring store), hits {scan.get('hits')}"
        )
    if not scans:
        lines.append("  not recorded (no test registered a secret)")
    missing = [name for name in EXPECTED if name not in by_name]
    if missing:
        lines.append(f"not recorded: {', '.join(missing)}")
    others = sorted(set(by_name) - set(EXPECTED))
    for name in others:
        lines.extend(f"{name}: {_pairs(record)}" for record in by_name[name])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack.chaos", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--report", type=Path, help="where the figures go (default: a new file in the temp dir)"
    )
    parser.add_argument("--figures-only", type=Path, metavar="REPORT", help="print the figures of a report")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.figures_only is not None:
        if not args.figures_only.exists():
            print(f"chaos: no report at {args.figures_only}", file=sys.stderr)
            return 2
        print(figures(read(args.figures_only)))
        return 0
    report = (
        args.report or Path(tempfile.gettempdir()) / f"cadence-chaos-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("", encoding="utf-8")  # this run's figures only
    code = run_suite(report, args.pytest_args)
    print(figures(read(report)))
    print(f"(report: {report})")
    return code


if __name__ == "__main__":
    sys.exit(main())
