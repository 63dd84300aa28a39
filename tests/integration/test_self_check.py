"""`cadence self-check` from the source tree, run as a subprocess like a user would.

The passing run happens inside a private D-Bus session with an unlocked gnome-keyring (the real Secret
Service); the failing runs take the keyring or Qt away and expect a FAILED line with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from cadence import APP_ID
from tests.integration.cli_harness import REPO, keyring_session

CHECKS = ("database", "keyring", "worker", "qt", "display", "icon")


def _self_check(env: Mapping[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadence", "self-check", *extra],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _status_by_check(stdout: str) -> dict[str, tuple[str, str]]:
    """{check name: (status, detail)} from the one-line-per-check output."""
    statuses: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition("  ")
        if status.strip() in {"ok", "FAILED", "skipped"} and name in CHECKS:
            statuses[name] = (status.strip(), detail)
    return statuses


def _without_display(env: Mapping[str, str]) -> dict[str, str]:
    headless = {k: v for k, v in env.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
    headless["QT_QPA_PLATFORM"] = "offscreen"
    return headless


def _isolated_env(folder: Path) -> dict[str, str]:
    """No session bus, no display, and keyring/XDG configuration from an empty folder, not this machine's."""
    env = _without_display(
        {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PYTHON_KEYRING"))}
    )
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={folder / 'no-bus-here'}"
    env["XDG_CONFIG_HOME"] = str(folder / "config")
    env["XDG_DATA_HOME"] = str(folder / "data")
    return env


def _self_check_entries(env: Mapping[str, str]) -> list[str]:
    """Keyring users under Cadence's service name left behind by a self-check, listed from a child process."""
    code = (
        "import secretstorage, sys\n"
        "bus = secretstorage.dbus_init()\n"
        "items = secretstorage.search_items(bus, {'service': sys.argv[1]})\n"
        "print('\\n'.join(i.get_attributes().get('username', '') for i in items))\n"
    )
    listing = subprocess.run(
        [sys.executable, "-c", code, APP_ID],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [user for user in listing.stdout.split() if user.startswith("self-check-")]


def test_self_check_passes_with_a_secret_service_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with keyring_session(tmp_path / "session") as env:
        result = _self_check(_without_display(env))
        leftovers = _self_check_entries(env)

    assert result.returncode == 0, result.stdout + result.stderr
    statuses = _status_by_check(result.stdout)
    assert {name: status for name, (status, _) in statuses.items()} == {
        **dict.fromkeys(CHECKS, "ok"),
        "display": "skipped",
    }
    assert "SecretService" in statuses["keyring"][1]
    assert "offscreen" in statuses["qt"][1]
    assert "read the SVG icon" in statuses["qt"][1]
    assert result.stdout.strip().splitlines()[-1] == "self-check: all 5 checks passed (display skipped)"
    assert leftovers == []


def test_without_a_keyring_the_check_fails_and_says_how_to_get_one(tmp_path: Path) -> None:
    result = _self_check(_isolated_env(tmp_path))

    assert result.returncode == 1, result.stdout + result.stderr
    statuses = _status_by_check(result.stdout)
    assert statuses["keyring"][0] == "FAILED"
    assert "gnome-keyring" in statuses["keyring"][1]
    assert statuses["database"][0] == "ok"
    assert statuses["worker"][0] == "ok"
    assert statuses["qt"][0] == "ok"
    assert statuses["display"][0] == "skipped"
    assert result.stdout.strip().splitlines()[-1] == "self-check: 1 of 5 checks FAILED: keyring"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_qt_that_cannot_load_is_reported_with_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "PySide6"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise ImportError("libQt6Gui.so.6: cannot open shared object file: No such file or directory")\n'
    )
    env = _isolated_env(tmp_path)
    env["PYTHONPATH"] = str(broken.parent)

    result = _self_check(env)

    assert result.returncode == 1
    status, detail = _status_by_check(result.stdout)["qt"]
    assert status == "FAILED"
    assert "libQt6Gui.so.6: cannot open shared object file" in detail
    assert _status_by_check(result.stdout)["database"][0] == "ok"


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian package xvfb)")
def test_display_check_opens_an_x_display_with_the_xcb_plugin(tmp_path: Path) -> None:
    env = {k: v for k, v in _isolated_env(tmp_path).items() if k != "QT_QPA_PLATFORM"}
    result = subprocess.run(
        ["xvfb-run", "-a", sys.executable, "-m", "cadence", "self-check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )

    status, detail = _status_by_check(result.stdout)["display"]
    assert status == "ok", result.stdout + result.stderr
    assert "started with the xcb plugin" in detail


def test_an_unreachable_display_is_reported(tmp_path: Path) -> None:
    env = {k: v for k, v in _isolated_env(tmp_path).items() if k != "QT_QPA_PLATFORM"}
    env["DISPLAY"] = ":4711"  # nothing listens there: no socket /tmp/.X11-unix/X4711

    result = _self_check(env)

    assert result.returncode == 1
    status, detail = _status_by_check(result.stdout)["display"]
    assert status == "FAILED"
    assert "could not connect to display :4711" in detail


def test_a_bad_keyring_timeout_is_an_argument_error(tmp_path: Path) -> None:
    result = _self_check(_isolated_env(tmp_path), "--keyring-timeout", "0")

    assert result.returncode == 2
    assert "--keyring-timeout must be a positive number" in result.stderr
