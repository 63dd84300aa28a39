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


def command_module_names() -> dict[str, str]:
    """Subcommand name → module name, from the file names alone (nothing imported): a command's NAME is
    its module's name with "-" for "_" (tests/unit/test_cli_lazy.py holds every module to that)."""
    return {
        info.name.replace("_", "-"): info.name
        for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    }


def _command_modules(names: Sequence[str] | None = None) -> list[ModuleType]:
    """The command modules, imported: those named (module names), or all of them (also when none of the
    named ones turns out to be a command)."""
    modules = []
    for name in sorted(command_module_names().values()) if names is None else names:
        module = importlib.import_module(f"{commands_pkg.__name__}.{name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    if names and not modules:
        return _command_modules()
    return modules


def build_parser(*, only: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (with `only`, module names) just the subcommands named there."""
    parser = _Parser(prog="cadence", description=f"{APP_NAME}: cold outreach from your own mailbox.")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the database and logs live")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for module in _command_modules(only):
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        command.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


_TOP_LEVEL_VALUE_OPTIONS = ("--data-dir",)


def modules_needed(argv: Sequence[str]) -> list[str] | None:
    """Which command modules parsing `argv` needs: [] for the window, [one] for a subcommand, None (all of
    them) for top-level help, an unknown command or anything this quick look does not understand, where
    argparse must see every command to answer as before."""
    words = iter(argv)
    for word in words:
        if word in _TOP_LEVEL_VALUE_OPTIONS:
            next(words, None)
        elif word.split("=", 1)[0] in _TOP_LEVEL_VALUE_OPTIONS or word == "--version":
            continue
        elif word.startswith("-"):
            return None  # help, an abbreviation, "--" or a mistake: let argparse see everything
        else:
            module = command_module_names().get(word)
            return [module] if module is not None else None
    return []


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
    words = _expand_aliases(sys.argv[1:] if argv is None else argv)
    try:
        # only the invoked command's module is imported: the others pull in SQLAlchemy, Qt, DNS, …
        args = build_parser(only=modules_needed(words)).parse_args(words)
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
