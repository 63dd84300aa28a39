"""The command-line face: aliases and one-line errors."""

from __future__ import annotations

import pytest

from cadence.cli import _expand_aliases, main


def test_launcher_flags_become_subcommands() -> None:
    assert _expand_aliases(["--self-check"]) == ["self-check"]
    assert _expand_aliases(["--data-dir", "/tmp/x", "--demo", "--speed", "60"]) == [
        "--data-dir",
        "/tmp/x",
        "demo",
        "--speed",
        "60",
    ]
    assert _expand_aliases(["plan", "--leads", "a.csv"]) == ["plan", "--leads", "a.csv"]


def test_an_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
