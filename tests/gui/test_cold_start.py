"""Cold start: the window shows (painted, in its loading state) before the runtime is opened, fills in when
it arrives, and the real window path imports the I/O libraries only behind the shown window — Alembic not
at all when the database is already at head. Each case runs in its own process, as users start Cadence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]

_COMMON = """
import asyncio, sys
from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget
from cadence.qt import run_window
from cadence.services.demo_runtime import DemoRuntime

painted = []

class PaintSeen(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and isinstance(watched, QMainWindow):
            painted.append(watched)
        return False

seen = PaintSeen()
original_init = QApplication.__init__
def init(self, *args):
    original_init(self, *args)
    self.installEventFilter(seen)
QApplication.__init__ = init

def window():
    return next(w for w in QApplication.topLevelWidgets() if type(w).__name__ == "MainWindow")

def state(w):
    page = w.findChild(QWidget, "loading")
    return (
        f"page={page is not None and page.isVisible()} tabs={w.tabs.isEnabled()} "
        f"menus={w.menuBar().isEnabled()}"
    )

runtime = DemoRuntime(pending=7)
"""

LOADING = (
    _COMMON
    + """
async def factory():
    w = window()
    page = w.findChild(QWidget, "loading")
    print("opening:", f"painted={bool(painted)}", state(w), "text:", page.text(), flush=True)
    await asyncio.sleep(0.3)
    def after():
        print("opened:", state(w), "tab:", w.tabs.tabText(1), flush=True)
        w.close()
    QTimer.singleShot(800, after)
    return runtime

code = run_window(factory, argv=["cadence"], window_state=QSettings(sys.argv[1], QSettings.Format.IniFormat))
print("exit:", code, "closed:", runtime._closed, flush=True)
raise SystemExit(code)
"""
)

CLOSED_WHILE_OPENING = (
    _COMMON
    + """
async def factory():
    QTimer.singleShot(50, window().close)
    await asyncio.sleep(1.0)
    print("factory done, closed yet:", runtime._closed, flush=True)
    return runtime

code = run_window(factory, argv=["cadence"], window_state=QSettings(sys.argv[1], QSettings.Format.IniFormat))
print("exit:", code, "closed:", runtime._closed, flush=True)
raise SystemExit(code)
"""
)

# The real `cadence --data-dir X`: which libraries are loaded when the window is shown, and once it is
# loaded (the loading page gone), whether Alembic was imported.
REAL_WINDOW = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget
import cadence.qt.main_window as main_window
from cadence.cli import main

IO = ("sqlalchemy", "alembic", "keyring", "dns", "aiosmtplib", "aioimaplib", "cadence.adapters")

def loaded(prefixes):
    return sorted({m for m in sys.modules if m.startswith(prefixes)} & set(prefixes))

shown = main_window.MainWindow.show
def show(self):
    print("at show:", loaded(IO), flush=True)
    shown(self)
    def when_loaded():
        page = self.findChild(QWidget, "loading")
        if page is not None and page.isVisible():
            QTimer.singleShot(50, when_loaded)
            return
        commands = sorted(m for m in sys.modules if m.startswith("cadence.commands."))
        print("loaded:", loaded(IO), "commands:", commands, flush=True)
        self.close()
    QTimer.singleShot(50, when_loaded)
main_window.MainWindow.show = show
sys.exit(main(["--data-dir", sys.argv[1]]))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = str(REPO / "desktop")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def _run(script: str, argument: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, str(argument)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )


def test_the_window_is_painted_in_its_loading_state_before_the_runtime_opens(tmp_path: Path) -> None:
    result = _run(LOADING, tmp_path / "state.ini", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "opening: painted=True page=True tabs=False menus=False text: Opening your data…" in result.stdout
    assert "opened: page=False tabs=True menus=True tab: &Approval queue (7)" in result.stdout
    assert "exit: 0 closed: True" in result.stdout
    assert "Traceback" not in result.stderr and "Fatal Python error" not in result.stderr


def test_closing_while_the_runtime_opens_waits_for_it_and_closes_it(tmp_path: Path) -> None:
    result = _run(CLOSED_WHILE_OPENING, tmp_path / "state.ini", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "factory done, closed yet: False" in result.stdout
    assert "exit: 0 closed: True" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_window_path_opens_io_libraries_behind_the_window_and_skips_alembic_at_head(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = _run(REAL_WINDOW, data, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "at show: []" in first.stdout  # nothing of SQLAlchemy, Alembic, keyring, DNS or mail yet
    assert "'alembic'" in first.stdout.split("loaded:")[1]  # a new database is built by the migrations
    assert "commands: []" in first.stdout
    assert (data / "cadence.sqlite3").is_file()

    again = _run(REAL_WINDOW, data, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "at show: []" in again.stdout
    loaded = again.stdout.split("loaded:")[1]
    assert "'sqlalchemy'" in loaded and "'alembic'" not in loaded  # at head: no migration check at all
