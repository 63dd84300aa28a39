"""`cadence self-check`: does this installation work? Database, keyring, worker process, Qt, display, icon.

Prints one line per check (`ok`, `FAILED` with the reason, or `skipped` with why) and exits 0 only if no
check failed. Nothing of the user's is touched: the database is made in a temporary folder and the keyring
entry is a throw-away. The Qt checks run in a child process: a platform plugin that cannot load aborts it.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

NAME = "self-check"
HELP = "check that this installation works: database, OS keyring, Qt, display, app icon"

QT_PROBE_FLAG = "--qt-probe"
_QT_PROBE_SIZE = 48


class CheckStatus(enum.Enum):
    OK = "ok"
    FAILED = "FAILED"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    detail: str
    seconds: float


class CheckFailed(Exception):
    """A check found a problem; the message is the human reason (and what to do about it)."""


class CheckSkipped(Exception):
    """A check that does not apply here (e.g. no display in this session); the message says why."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keyring-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for the keyring (it may be waiting for an unlock prompt)",
    )
    parser.add_argument(QT_PROBE_FLAG, action="store_true", help=argparse.SUPPRESS)


# --- the checks ------------------------------------------------------------------------------------------


def check_database() -> str:
    import sqlite3

    from cadence.adapters.db.engine import current_revision, head_revision, open_database

    with tempfile.TemporaryDirectory(prefix="cadence-self-check-") as folder:
        database = open_database(Path(folder) / "self-check.sqlite3")
        try:
            with database.read() as connection:
                revision = current_revision(connection)
        finally:
            database.close()
    head = head_revision()
    if revision != head:
        raise CheckFailed(f"migrations stopped at {revision}, expected {head}")
    return f"migrated a new database to {head} (SQLite {sqlite3.sqlite_version})"


def check_keyring(*, timeout_s: float) -> str:
    from cadence.adapters.secrets import KeyringSecretStore
    from cadence.core.ports import SecretStoreError

    store = KeyringSecretStore(timeout_s=timeout_s)
    account = f"self-check-{secrets.token_hex(6)}@cadence.invalid"
    secret = secrets.token_urlsafe(24)

    async def round_trip() -> str:
        backend = await store.check()
        await store.set(account, secret)
        try:
            if await store.get(account) != secret:
                raise CheckFailed(f"{backend} returned a different secret from the one stored")
        finally:
            await store.delete(account)
        if await store.get(account) is not None:
            raise CheckFailed(f"{backend} kept a secret after it was deleted")
        return backend

    try:
        backend = asyncio.run(round_trip())
    except SecretStoreError as error:
        raise CheckFailed(str(error)) from error
    return f"stored, read back and deleted a secret with {backend}"


def check_worker_process(*, timeout_s: float = 60.0) -> str:
    """The inbox classifier's worker process ("spawn"): in a frozen build this needs freeze_support()."""
    from concurrent.futures import TimeoutError as FutureTimeout
    from concurrent.futures.process import BrokenProcessPool

    from cadence.services.inbox import classification_pool

    pool = classification_pool()
    finished = False
    try:
        worker_pid = pool.submit(os.getpid).result(timeout=timeout_s)
        finished = True
    except FutureTimeout as error:
        raise CheckFailed(f"the worker process did not answer within {timeout_s:g} seconds") from error
    except BrokenProcessPool as error:
        frozen_hint = (
            " This build's launcher must call multiprocessing.freeze_support() first."
            if getattr(sys, "frozen", False)
            else ""
        )
        raise CheckFailed(f"the worker process died as it started ({error}).{frozen_hint}") from error
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)
    if worker_pid == os.getpid():
        raise CheckFailed("the classification worker ran inside this process instead of its own")
    return f"started the mail-classification worker process (pid {worker_pid}) and got its answer"


def _qt_probe_command(platform: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, QT_QPA_PLATFORM=platform)
    if getattr(sys, "frozen", False):  # the PyInstaller bundle: the executable is cadence itself
        return [sys.executable, NAME, QT_PROBE_FLAG], env
    # From source, skip the CLI (it imports every command) and make sure the child finds this package.
    source = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    code = "import sys; from cadence.commands.self_check import qt_probe; sys.exit(qt_probe())"
    return [sys.executable, "-c", code], env


def _last_lines(text: str, *, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def _run_qt_probe(platform: str, *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    command, env = _qt_probe_command(platform)
    try:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise CheckFailed(f"the Qt probe ({platform}) did not finish within {timeout_s:g} seconds") from error


def _probe_failure(probe: subprocess.CompletedProcess[str]) -> str:
    # Qt's first category lines name the cause ("qt.qpa.xcb: could not connect to display"); what follows
    # is generic. A Python failure (a broken install) ends with the exception instead.
    qt_lines = [line.strip() for line in probe.stderr.splitlines() if line.startswith("qt.")]
    if qt_lines:
        return " | ".join(qt_lines[:2])
    return _last_lines(probe.stderr) or _last_lines(probe.stdout) or f"exit code {probe.returncode}"


def check_qt(*, timeout_s: float = 60.0) -> str:
    probe = _run_qt_probe("offscreen", timeout_s=timeout_s)
    if probe.returncode != 0:
        raise CheckFailed(
            f"Qt could not start with the offscreen platform plugin ({_probe_failure(probe)}). "
            "Reinstall Cadence; from source, check that PySide6 is installed in the environment."
        )
    return _last_lines(probe.stdout, count=1)


def display_platform(env: Mapping[str, str]) -> str | None:
    """The Qt platform the window would use in this session, or None when there is no display to check."""
    requested = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if requested:
        return None if requested in {"offscreen", "minimal"} else requested
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    return None


def check_display(*, timeout_s: float = 60.0) -> str:
    """Can Qt reach this session's display with the window's plugin? Skipped when there is no display."""
    platform = display_platform(os.environ)
    if platform is None:
        raise CheckSkipped(
            "no display in this session (DISPLAY and WAYLAND_DISPLAY unset, or Qt set offscreen)"
        )
    probe = _run_qt_probe(platform, timeout_s=timeout_s)
    if probe.returncode != 0:
        hint = (
            " If the display itself is up, the xcb plugin lacks system libraries: on Debian/Ubuntu install "
            "libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 "
            "libxcb-render-util0 libxcb-image0."
            if platform == "xcb"
            else ""
        )
        raise CheckFailed(
            f"Qt could not open the display with the {platform} plugin ({_probe_failure(probe)}).{hint}"
        )
    return _last_lines(probe.stdout, count=1)


def qt_probe() -> int:
    """In the child: start Qt on $QT_QPA_PLATFORM, paint an image, read the SVG icon if there is one."""
    from PySide6.QtCore import QLibraryInfo, QRectF, Qt, qVersion
    from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

    from cadence.resources import icon_path

    app = QGuiApplication([sys.argv[0]])
    image = QImage(_QT_PROBE_SIZE, _QT_PROBE_SIZE, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.fillRect(QRectF(8, 8, 32, 32), QColor("#3b5bdb"))
    painter.setPen(QColor("white"))
    painter.drawText(QRectF(0, 0, _QT_PROBE_SIZE, _QT_PROBE_SIZE), Qt.AlignmentFlag.AlignCenter, "C")
    painter.end()
    if image.pixelColor(10, 10) != QColor("#3b5bdb") or image.pixelColor(2, 2).alpha() != 0:
        print("painting an image gave the wrong pixels", file=sys.stderr)
        return 1
    svg = icon_path()
    if svg is not None:
        icon = QImage(str(svg))  # through Qt's SVG image plugin, as the window loads it
        if icon.isNull():
            print(f"Qt could not read the SVG icon {svg} (SVG image plugin missing?)", file=sys.stderr)
            return 1
    platforms = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    plugins = sorted(
        p.name.removeprefix("libq").split(".")[0]
        for p in platforms.glob("*")
        if p.suffix in {".so", ".dll", ".dylib"}
    )
    name = app.platformName()
    del painter, image, app
    print(
        f"Qt {qVersion()} started with the {name} plugin and painted an image"
        f"{', read the SVG icon' if svg is not None else ''}; platform plugins: "
        f"{', '.join(plugins) or 'none found'}"
    )
    return 0


def check_icon() -> str:
    from cadence.resources import ICON_SIZES, icon_path, resources_dir

    folder = resources_dir()
    if folder is None:
        raise CheckFailed(
            "the resources folder (icons) is not installed; the window falls back to a drawn icon"
        )
    missing = [f"{size} px" for size in ICON_SIZES if icon_path(size=size) is None]
    svg = icon_path()
    if svg is None:
        missing.insert(0, "SVG")
    if missing:
        raise CheckFailed(f"icons missing from {folder / 'icons'}: {', '.join(missing)}")
    return f"SVG and {len(ICON_SIZES)} PNG sizes in {folder / 'icons'}"


# --- running them ----------------------------------------------------------------------------------------


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.monotonic()
    try:
        detail, status = check(), CheckStatus.OK
    except CheckSkipped as reason:
        detail, status = str(reason), CheckStatus.SKIPPED
    except CheckFailed as error:
        detail, status = str(error), CheckStatus.FAILED
    except Exception as error:  # a self-check reports every failure; it never crashes
        detail, status = f"{type(error).__name__}: {error}", CheckStatus.FAILED
    return CheckResult(name=name, status=status, detail=detail, seconds=time.monotonic() - started)


def run_checks(*, keyring_timeout_s: float = 20.0) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("database", check_database),
        ("keyring", lambda: check_keyring(timeout_s=keyring_timeout_s)),
        ("worker", check_worker_process),
        ("qt", check_qt),
        ("display", check_display),
        ("icon", check_icon),
    ]
    results = []
    for name, check in checks:
        result = _timed(name, check)
        _print_result(result)
        results.append(result)
    return results


def _print_result(result: CheckResult) -> None:
    status = result.status.value
    print(f"{status:<7}  {result.name:<8}  {result.detail}  ({result.seconds:.2f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.qt_probe:
        return qt_probe()
    if args.keyring_timeout <= 0:
        from cadence.cli import ArgumentError

        raise ArgumentError("--keyring-timeout must be a positive number of seconds")
    from cadence import APP_NAME, __version__

    where = "bundle" if getattr(sys, "frozen", False) else "source"
    print(f"{APP_NAME} {__version__} self-check ({where}, Python {sys.version.split()[0]}, {sys.platform})")
    results = run_checks(keyring_timeout_s=args.keyring_timeout)
    failed = [r.name for r in results if r.status is CheckStatus.FAILED]
    skipped = [r.name for r in results if r.status is CheckStatus.SKIPPED]
    ran = len(results) - len(skipped)
    if failed:
        print(f"self-check: {len(failed)} of {ran} checks FAILED: {', '.join(failed)}", flush=True)
        return 1
    note = f" ({', '.join(skipped)} skipped)" if skipped else ""
    print(f"self-check: all {ran} checks passed{note}", flush=True)
    return 0
