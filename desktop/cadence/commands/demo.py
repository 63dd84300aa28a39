"""`cadence demo [--speed N] [--data-dir DIR] [--headless --until-sends N]`: the real app in a sandbox.

Cadence sends a sample campaign to invented recipients through an SMTP server on 127.0.0.1; their bounces,
auto-replies and answers come back into an in-memory mailbox that the real inbox watcher reads. The data
folder (default: `demo` under the usual data folder) is wiped at each start; the account's password is
held in memory only. Nothing leaves the machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cadence import APP_NAME
from cadence.cli import ArgumentError
from cadence.core.ports import StorageError

NAME = "demo"
HELP = "try Cadence safely: a sample campaign to simulated recipients on this computer only"
WINDOW_TITLE = f"{APP_NAME} — demo sandbox"
ANSWERS_SETTLE_S = 9 * 3600.0
DEFAULT_HEADLESS_DAYS = 7.0

if TYPE_CHECKING:
    from cadence.app import Opened

log = logging.getLogger("cadence.demo")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="how many times faster than real time the demo's clock runs (default 600: a week in ~17 min)",
    )
    parser.add_argument("--headless", action="store_true", help="no window: run, then print what happened")
    parser.add_argument(
        "--until-sends",
        type=int,
        default=None,
        metavar="N",
        help="headless: stop once N messages were sent and their answers are in",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="headless: stop after this many real seconds in any case",
    )
    parser.add_argument(
        "--simulated-days",
        type=float,
        default=None,
        metavar="DAYS",
        help=f"headless: stop after this much simulated time (default {DEFAULT_HEADLESS_DAYS:g} days)",
    )
    parser.add_argument("--seed", type=int, default=None, help="fix the simulation's random choices")
    parser.add_argument("--verbose", action="store_true")


def _demo_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "data_dir", None)
    if given is not None:
        return Path(given).expanduser()
    from cadence.paths import data_dir

    return data_dir(None) / "demo"


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.speed <= 100_000:
        raise ArgumentError("--speed must be between 0 and 100000")
    if args.until_sends is not None and args.until_sends < 1:
        raise ArgumentError("--until-sends must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise ArgumentError("--timeout must be positive")
    if args.simulated_days is not None and args.simulated_days <= 0:
        raise ArgumentError("--simulated-days must be positive")
    if not args.headless and (
        args.until_sends is not None or args.simulated_days is not None or args.timeout is not None
    ):
        raise ArgumentError("--until-sends, --simulated-days and --timeout go with --headless")


def _prepare(args: argparse.Namespace) -> Opened | None:
    from cadence.app import StartupError, open_store
    from cadence.demo.sandbox import DemoSetupError, reset_data_dir

    directory = _demo_dir(args)
    try:
        reset_data_dir(directory)
        return open_store(directory)
    except (DemoSetupError, StartupError, OSError) as exc:
        print(f"cadence demo: {exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    _check(args)
    opened = _prepare(args)
    if opened is None:
        return 1
    from cadence.app import setup_logging

    setup_logging(opened.directory, verbose=args.verbose, to_stderr=args.headless)
    if args.headless:
        return _run_headless(args, opened)
    return _run_window(args, opened)


# --- headless -----------------------------------------------------------------------------------------------


def _run_headless(args: argparse.Namespace, opened: Opened) -> int:
    from cadence.app import install_headless_excepthook

    install_headless_excepthook()
    try:
        return asyncio.run(_headless(args, opened))
    except StorageError as exc:
        print(f"cadence demo: {exc}", file=sys.stderr)
        return 1


async def _headless(args: argparse.Namespace, opened: Opened) -> int:
    from cadence.core.model import MessageState
    from cadence.demo.sandbox import DemoSetupError, default_start, start_sandbox

    try:
        sandbox = await start_sandbox(opened, speed=args.speed, start=default_start(), seed=args.seed)
    except DemoSetupError as exc:
        opened.close()
        print(f"cadence demo: {exc}", file=sys.stderr)
        return 1
    simulated_days = args.simulated_days if args.simulated_days is not None else DEFAULT_HEADLESS_DAYS
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + args.timeout if args.timeout is not None else None
    reason = "timeout"
    settle_until: float | None = None
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if sandbox.clock.elapsed().total_seconds() >= simulated_days * 86400:
                reason = "simulated time reached"
                break
            if args.until_sends is not None and settle_until is None:
                counts = await asyncio.to_thread(opened.store.count_messages, account_id=sandbox.account_id)
                if counts.get(MessageState.SENT, 0) >= args.until_sends:
                    # let the answers to what was sent arrive (the slowest come 8 simulated hours later)
                    settle_until = time.monotonic() + sandbox.clock.real_seconds(ANSWERS_SETTLE_S)
            if settle_until is not None and time.monotonic() >= settle_until:
                await sandbox.runtime.watcher.sync_now(timeout_s=10)
                reason = f"{args.until_sends} sends reached"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
        else:
            reason = "interrupted"
        report = await sandbox.report()
    finally:
        await sandbox.aclose()
    print(f"{APP_NAME} demo sandbox ({args.speed:g}× speed) stopped: {reason}")
    for line in report.lines():
        print(line)
    return 0


# --- window -------------------------------------------------------------------------------------------------


def _run_window(args: argparse.Namespace, opened: Opened) -> int:
    try:
        from cadence.qt.run import run_window
    except ImportError as exc:
        opened.close()
        print(f"cadence demo: the window toolkit could not be loaded ({exc})", file=sys.stderr)
        return 1
    from cadence.app import settle_heap
    from cadence.core.ports import RuntimeApi, UserFacingError
    from cadence.demo.clock import ScaledClock
    from cadence.demo.sandbox import DemoSetupError, default_start, start_sandbox

    clock_holder: dict[str, ScaledClock] = {}

    def now() -> datetime:
        clock = clock_holder.get("clock")
        return clock.now() if clock is not None else datetime.now(UTC)

    async def factory() -> RuntimeApi:
        from cadence.demo.window import mark_demo_window

        try:
            sandbox = await start_sandbox(opened, speed=args.speed, start=default_start(), seed=args.seed)
        except DemoSetupError as exc:
            raise UserFacingError(str(exc)) from exc
        clock_holder["clock"] = sandbox.clock
        mark_demo_window(title=WINDOW_TITLE, speed=args.speed, now=now)
        settle_heap()
        return sandbox.runtime

    try:
        return run_window(factory, now=now)
    except StorageError as exc:
        print(f"cadence demo: {exc}", file=sys.stderr)
        return 1
