"""Cold start: spawn → first paint of the main window, `python -m cadence` against a bare PySide6 window.

Target (product issue): cold start to a visible window ≤ 3× a bare PySide6 QMainWindow with a 4-tab
QTabWidget, measured in the same conditions. Every run is a fresh subprocess, timed from spawn to the first
paint event that reaches a QMainWindow. The paint detection is installed from outside the program (a `-c`
bootstrap wraps QApplication.__init__ to add an application event filter), so the product code carries no
benchmark hook; both programs pay for that bootstrap alike.

Measured, interleaved run by run so that machine noise hits every column alike:
  bare        a QMainWindow + QTabWidget with 4 tabs, shown;
  empty       `python -m cadence --data-dir X` with a new, empty data folder each run (creates the database);
  at head     the same over a data folder whose database is already at the migrations' head revision;
  … data      the same runs, on to the first paint once the window has its data (its loading page gone):
              the window may show before its data arrives, so this is reported too, not judged.
With --baseline DIR an older cadence tree (say `git archive HEAD desktop | tar -x -C /tmp/old`, then
/tmp/old/desktop) is measured the same way, interleaved, for a before/after comparison. Then
`python -X importtime` over each at-head start, up to the first paint: what costs most, by package and
module. The subprocesses get a bytecode cache in a temporary folder (an installed app has one; this sandbox
sets PYTHONDONTWRITEBYTECODE, which --no-bytecode-cache keeps).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/cold_start_bench.py [--runs 7] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

COLD_START_RATIO = 3.0
PAINTED = "CADENCE-BENCH-PAINTED"
LOADED = "CADENCE-BENCH-LOADED"
REPO = Path(__file__).resolve().parents[1]

# The first paint of a QMainWindow ends the timing. With BENCH_UNTIL_LOADED=1 the runner goes on until a
# paint inside that window once it no longer shows a loading page (a child widget named "loading", visible);
# a window that never had one counts as loaded at its first paint.
_PAINT_HOOK = f"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

_UNTIL_LOADED = os.environ.get("BENCH_UNTIL_LOADED") == "1"

class _FirstPaint(QObject):
    painted = False

    def eventFilter(self, watched, event):
        if event.type() != QEvent.Type.Paint or not isinstance(watched, QWidget):
            return False
        window = watched.window()
        if not isinstance(window, QMainWindow):
            return False
        if not self.painted and watched is window:
            self.painted = True
            print("{PAINTED}", time.perf_counter(), flush=True)
            if not _UNTIL_LOADED:
                os._exit(0)
        if self.painted:
            page = window.findChild(QWidget, "loading")
            if page is None or not page.isVisible():
                print("{LOADED}", time.perf_counter(), flush=True)
                os._exit(0)
        return False

_hook = _FirstPaint()
_original_init = QApplication.__init__

def _init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.installEventFilter(_hook)

QApplication.__init__ = _init
"""

_BARE_WINDOW = """
import sys
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QTabWidget
app = QApplication(sys.argv[:1])
window = QMainWindow()
tabs = QTabWidget()
for name in ("Queue", "Campaigns", "Activity", "Suppression"):
    tabs.addTab(QLabel(name), name)
window.setCentralWidget(tabs)
window.resize(1280, 800)
window.show()
app.exec()
"""

_CADENCE = """
import runpy, sys
sys.argv = ["cadence", "--data-dir", sys.argv[1]]
runpy.run_module("cadence", run_name="__main__", alter_sys=True)
"""


def bench_env(home: Path, *, bytecode_cache: bool, source: Path) -> dict[str, str]:
    """Offscreen Qt, no keyring daemon, window-state/config files in a private folder, and (as an installed
    app has) a bytecode cache, kept in that folder rather than in the checkout."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if bytecode_cache:
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
    )
    return env


def time_to_paint(
    program: str, *args: str, env: dict[str, str], until_loaded: bool = False
) -> tuple[float, float | None]:
    """Seconds from spawn to the first paint, and (with `until_loaded`) to the first paint with data."""
    env = dict(env, BENCH_UNTIL_LOADED="1" if until_loaded else "0")
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _PAINT_HOOK + program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    first: float | None = None
    loaded: float | None = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            word = line.split(" ", 1)[0].strip()
            if word == PAINTED and first is None:
                first = time.perf_counter() - t0
                if not until_loaded:
                    break
            elif word == LOADED:
                loaded = time.perf_counter() - t0
                break
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if first is None or (until_loaded and loaded is None):
        raise RuntimeError(f"no paint (exit code {process.returncode}): {err[-2000:]}")
    return first, loaded


def prepare_at_head(directory: Path, env: dict[str, str]) -> None:
    """A data folder whose database exists and is migrated to head (a headless command opens it)."""
    subprocess.run(
        [sys.executable, "-m", "cadence", "--data-dir", str(directory), "status"],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def _group(module: str) -> str:
    """cadence by layer (cadence.qt, cadence.adapters, …), anything else by top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cadence" and len(parts) > 1 else parts[0]


def import_offenders(data: Path, env: dict[str, str], *, top: int) -> tuple[list[str], float]:
    """`python -X importtime` of the at-head start up to the first paint. Per package: the self time of its
    modules (these add up to the total) and the cumulative time from where other code first imports it
    (overlapping: alembic's includes the SQLAlchemy it pulls in). Then the slowest modules by self time."""
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PAINT_HOOK + _CADENCE, str(data)],
        capture_output=True,
        text=True,
        env=dict(env, BENCH_UNTIL_LOADED="0"),
        timeout=120,
    )
    rows = []
    for line in process.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match is not None:
            rows.append((int(match[1]), int(match[2]), (len(match[3]) - 1) // 2, match[4]))
    self_by_group: dict[str, int] = defaultdict(int)
    entered_by_group: dict[str, int] = defaultdict(int)
    ancestors: list[str] = []
    for self_us, cumulative_us, depth, name in reversed(rows):  # importtime prints children first
        del ancestors[depth:]
        parent = ancestors[-1] if ancestors else None
        ancestors.append(name)
        self_by_group[_group(name)] += self_us
        if parent is None or _group(parent) != _group(name):
            entered_by_group[_group(name)] += cumulative_us
    total = sum(self_by_group.values())
    lines = [f"  {'package':<30}{'self':>9}{'cumulative':>12}"]
    for group, micros in sorted(self_by_group.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {group:<30}{micros / 1000:>6.0f} ms{entered_by_group[group] / 1000:>9.0f} ms")
    lines.append(f"\n  {'module (self time)':<48}{'self':>10}")
    for self_us, _cumulative, _depth, name in sorted(rows, reverse=True)[:top]:
        lines.append(f"  {name:<48}{self_us / 1000:>7.1f} ms")
    return lines, total / 1e6


def summary(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} {min(values) * 1000:7.0f} {max(values) * 1000:7.0f}"


@dataclass
class Subject:
    """One cadence source tree under test, with its environment and its own at-head data folder."""

    label: str
    source: Path
    env: dict[str, str]
    at_head: Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="runs of each program (median, min, max)")
    parser.add_argument("--top", type=int, default=15, help="import-time offenders to list")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="compile every module from source each run (PYTHONDONTWRITEBYTECODE=1, as in this sandbox)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO / "desktop",
        help="the folder holding the cadence package under test (default: this checkout's desktop/)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another folder holding a cadence package (e.g. `git archive HEAD desktop | tar -x -C DIR`, "
        "then DIR/desktop), measured interleaved with --source",
    )
    args = parser.parse_args()
    cache = not args.no_bytecode_cache

    with tempfile.TemporaryDirectory(prefix="cadence-cold-") as tmp:
        base = Path(tmp)
        sources = [("", args.source)] + ([("baseline: ", args.baseline)] if args.baseline else [])
        subjects = []
        for number, (label, source) in enumerate(sources):
            home = base / f"home-{number}"
            env = bench_env(home, bytecode_cache=cache, source=source.resolve())
            subjects.append(Subject(label=label, source=source, env=env, at_head=home / "at-head"))
            prepare_at_head(home / "at-head", env)
        bare_env = subjects[0].env
        fresh = iter(range(1_000_000))

        def empty_dir() -> str:
            return str(base / f"empty-{next(fresh)}")

        def cadence(subject: Subject, data: Callable[[], str]) -> Callable[[], tuple[float, float | None]]:
            return lambda: time_to_paint(_CADENCE, data(), env=subject.env, until_loaded=True)

        programs: dict[str, Callable[[], tuple[float, float | None]]] = {
            "bare": lambda: time_to_paint(_BARE_WINDOW, env=bare_env),
        }
        for subject in subjects:
            programs[f"{subject.label}empty"] = cadence(subject, empty_dir)
            programs[f"{subject.label}at head"] = cadence(subject, lambda s=subject: str(s.at_head))
        for run in programs.values():  # warm the page cache and the .pyc files; not counted
            run()
        first_paint: dict[str, list[float]] = {name: [] for name in programs}
        with_data: dict[str, list[float]] = {name: [] for name in programs}
        for _ in range(args.runs):
            for name, run in programs.items():
                first, loaded = run()
                first_paint[name].append(first)
                with_data[name].append(loaded if loaded is not None else first)
        offenders = [
            (subject, *import_offenders(subject.at_head, subject.env, top=args.top)) for subject in subjects
        ]

    load = os.getloadavg()
    bare = statistics.median(first_paint["bare"])
    target = bare * COLD_START_RATIO
    print(
        f"Cold start, spawn → first paint of the main window ({args.runs} runs each, interleaved, "
        f"{'bytecode cached' if cache else 'no bytecode cache'}; load average {load[0]:.2f} {load[1]:.2f}, "
        f"{os.cpu_count()} CPUs)"
    )
    for subject in subjects:
        print(f"  {subject.label or 'under test: '}{subject.source}")
    print(f"\n  {'program':<50}{'median':>8}{'min':>8}{'max':>8}  {'× bare':>7}  verdict")
    print(f"  {'bare QMainWindow + 4-tab QTabWidget':<50}{summary(first_paint['bare'])}  {1:6.2f}×")
    for subject in subjects:
        for data in ("empty", "at head"):
            key = f"{subject.label}{data}"
            folder = "empty data folder" if data == "empty" else "database at head"
            for label, figures, judged in (
                (f"{subject.label}python -m cadence, {folder}", first_paint[key], True),
                ("  … until the window has its data", with_data[key], False),
            ):
                median = statistics.median(figures)
                verdict = ("ok" if median <= target else "MISSED") if judged else ""
                print(f"  {label:<50}{summary(figures)}  {median / bare:6.2f}×  {verdict}")
    print(f"\n  target: first paint ≤ {COLD_START_RATIO:.0f}× bare = {target * 1000:.0f} ms (ms columns)")
    for subject, lines, total in offenders:
        print(
            f"\n{subject.label}python -X importtime, database at head, to the first paint "
            f"(imports: {total:.2f} s in all)"
        )
        print("\n".join(lines))


if __name__ == "__main__":
    main()
