"""The command-line face: the window by default, headless subcommands for scripting and tests."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from cadence import APP_NAME, __version__
from cadence import commands as commands_pkg


class ArgumentError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(message)


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cadence", description=f"{APP_NAME}: cold outreach from your own mailbox.")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the database and logs live")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        command.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


# `cadence --self-check` and `cadence --demo` read better on a launcher line than subcommands do.
FLAG_ALIASES = {"--self-check": "self-check", "--demo": "demo"}


def _expand_aliases(argv: Sequence[str]) -> list[str]:
    expanded = list(argv)
    for position, word in enumerate(expanded):
        if word in FLAG_ALIASES:
            expanded[position] = FLAG_ALIASES[word]
            break
    return expanded


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(_expand_aliases(sys.argv[1:] if argv is None else argv))
    except ArgumentError as exc:
        print(f"cadence: error: {exc}", file=sys.stderr)
        return 2
    run = getattr(args, "_run", None)
    if run is None:
        from cadence.app import run_gui

        return int(run_gui(args))
    try:
        return int(run(args))
    except ArgumentError as exc:
        print(f"cadence: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
