"""The command line imports only the command it runs: `cadence plan --help` must not pay for Qt, SQLAlchemy
or Alembic, and the window path imports no command module at all."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadence.cli import command_module_names, main, modules_needed

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("PySide6", "alembic", "sqlalchemy", "keyring", "dns", "aiosmtplib", "aioimaplib", "qasync")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "desktop"), "QT_QPA_PLATFORM": "offscreen"}


def test_every_command_is_named_after_its_module() -> None:
    """The lazy look-up finds a command by its file name; a NAME that differs would cost every start."""
    names = command_module_names()
    assert {"plan", "self-check", "run", "status", "demo"} <= set(names)
    for name, module_name in names.items():
        module = importlib.import_module(f"cadence.commands.{module_name}")
        assert name == module.NAME, f"cadence/commands/{module_name}.py: NAME should be {name!r}"


@pytest.mark.parametrize(
    ("argv", "needed"),
    [
        ([], []),
        (["--data-dir", "/tmp/x"], []),
        (["--data-dir=/tmp/x"], []),
        (["--version"], []),
        (["plan", "--leads", "a.csv"], ["plan"]),
        (["--data-dir", "/tmp/plan", "status", "--json"], ["status"]),  # the folder is not the command
        (["self-check"], ["self_check"]),
        (["--help"], None),  # lists every command
        (["-h"], None),
        (["no-such-command"], None),  # the error lists every command
        (["--data", "/tmp/x", "plan"], None),  # an abbreviation argparse understands and this look does not
        (["--", "plan"], None),
    ],
)
def test_modules_needed(argv: list[str], needed: list[str] | None) -> None:
    assert modules_needed(argv) == needed


def _loaded_after(argv: list[str]) -> tuple[int, set[str], str]:
    """Exit code, the modules loaded, and stdout of cli.main(argv) in a fresh interpreter."""
    script = (
        "import sys\n"
        "from cadence.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit_:\n"
        "    code = exit_.code or 0\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
        "print('CODE', code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=_env()
    )
    lines = result.stdout.splitlines()
    modules = next(line for line in lines if line.startswith("MODULES ")).split()[1:]
    code = int(next(line for line in lines if line.startswith("CODE ")).split()[1])
    return code, set(modules), result.stdout


def test_a_subcommand_help_imports_that_command_only_and_no_heavy_library() -> None:
    code, modules, out = _loaded_after(["plan", "--help"])
    assert code == 0
    assert "--leads" in out  # the plan command's own help
    commands = {m for m in modules if m.startswith("cadence.commands.")}
    assert commands == {"cadence.commands.plan"}
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_top_level_help_still_lists_every_command() -> None:
    code, _modules, out = _loaded_after(["--help"])
    assert code == 0
    for name in command_module_names():
        assert name in out


def test_an_unknown_command_still_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "self-check" in err and "plan" in err


def test_the_version_imports_no_command() -> None:
    code, modules, out = _loaded_after(["--version"])
    assert code == 0 and "Cadence" in out
    assert not {m for m in modules if m.startswith("cadence.commands.")}
