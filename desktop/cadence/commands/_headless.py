"""What the headless commands share: opening the data dir (with logging), and argument helpers."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from cadence.app import Opened, StartupError, install_headless_excepthook, open_store, setup_logging
from cadence.cli import ArgumentError
from cadence.core.model import Account


class CommandFailed(Exception):
    """Reported as one line on stderr, exit code 1 (the input was fine, the situation is not)."""


@contextlib.contextmanager
def opened(args: argparse.Namespace, *, verbose: bool = False) -> Iterator[Opened]:
    try:
        handle = open_store(getattr(args, "data_dir", None))
    except StartupError as exc:
        raise CommandFailed(str(exc)) from exc
    setup_logging(handle.directory, verbose=verbose)
    install_headless_excepthook()
    try:
        yield handle
    finally:
        handle.close()


def report(run: int | None = None, *, error: BaseException | None = None) -> int:
    if error is not None:
        print(f"cadence: {error}", file=sys.stderr)
        return 1
    return run or 0


def host_port(text: str, *, what: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArgumentError(f"{what} must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def pick_account(accounts: tuple[Account, ...], wanted: str | None) -> Account:
    """By id or address; with one account only, that one."""
    if wanted is None:
        if len(accounts) == 1:
            return accounts[0]
        if not accounts:
            raise ArgumentError("no account yet: add one with `cadence account add`")
        raise ArgumentError("several accounts: say which with --account ID|EMAIL")
    for account in accounts:
        if str(account.id) == wanted or account.email == wanted.strip().lower():
            return account
    raise ArgumentError(f"no account {wanted!r}")
