"""The two entry points run in their own process, as users run them: run_window() must start, show the
window, shut down explicitly and exit 0 without a crash at interpreter exit; `cadence screenshots` must
write 1280×800 PNGs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]

RUN_WINDOW = """
import asyncio
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from cadence.qt import run_window
from cadence.services.demo_runtime import DemoRuntime

runtime = DemoRuntime(pending=500)

async def factory():
    def close_when_loaded():
        window = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "" and w.isVisible()
                      and type(w).__name__ == "MainWindow")
        print("tab:", window.tabs.tabText(1), flush=True)
        window.close()
    QTimer.singleShot(800, close_when_loaded)
    return runtime

code = run_window(factory, argv=["cadence"], window_state=QSettings({state!r}, QSettings.Format.IniFormat))
print("exit:", code, "closed:", runtime._closed, flush=True)
raise SystemExit(code)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = str(REPO / "desktop")
    return env


def test_run_window_starts_shows_and_shuts_down_cleanly(tmp_path: Path) -> None:
    script = RUN_WINDOW.replace("{state!r}", repr(str(tmp_path / "state.ini")))
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 0, result.stderr
    assert "tab: &Approval queue (500)" in result.stdout
    assert "exit: 0 closed: True" in result.stdout
    assert "Fatal Python error" not in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "state.ini").read_text().count("geometry") == 1


def test_run_window_reports_a_start_up_failure_and_exits_1(tmp_path: Path) -> None:
    script = (
        "from cadence.core.ports import UserFacingError\n"
        "from cadence.qt import run_window\n"
        "async def factory():\n"
        "    raise UserFacingError('The database is locked by another Cadence.')\n"
        "raise SystemExit(run_window(factory, argv=['cadence']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 1
    assert "could not start: The database is locked by another Cadence." in result.stderr
    assert "Fatal Python error" not in result.stderr


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_screenshots_command_writes_every_tab(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "screenshots", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    for name in ("campaigns", "queue", "suppression", "deliverability", "deliverability-paused", "activity"):
        assert _png_size(tmp_path / f"{name}.png") == (1280, 800), name
    for name in ("settings-mailbox", "settings-limits", "settings-safety", "new-campaign-leads"):
        width, height = _png_size(tmp_path / f"{name}.png")
        assert width > 400 and height > 300, name
    assert "Traceback" not in result.stderr


def test_screenshots_command_rejects_a_bad_scale(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "screenshots", str(tmp_path), "--scale", "9"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    assert "--scale" in result.stderr
