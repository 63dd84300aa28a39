"""`cadence demo` with its window (offscreen, in a process of its own as users run it): the real window
over the sandbox says it is a demo, shows the simulated clock, and the loop runs (sends, hard bounces)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadence.app import open_store
from cadence.core.model import LedgerKind

SCRIPT = r"""
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel
from cadence.cli import main
from cadence.qt.run import make_application

app = make_application(["cadence"])
seen = {}

def inspect_and_close():
    from cadence.qt.main_window import MainWindow
    windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
    window = windows[0]
    banner = window.findChild(QLabel, "demoBanner")
    clock = window.findChild(QLabel, "demoClock")
    window.tabs.setCurrentWidget(window.deliverability)
    app.processEvents()
    seen.update(
        windows=len(windows),
        title=window.windowTitle(),
        banner=banner.text() if banner is not None else None,
        banner_visible=banner is not None and banner.isVisibleTo(window),
        clock=clock.text() if clock is not None else None,
        grabbed=window.grab().save(sys.argv[2]),
    )
    window.close()

QTimer.singleShot(12_000, inspect_and_close)
code = main(["--data-dir", sys.argv[1], "demo", "--speed", "4000", "--seed", "5"])
print(json.dumps(dict(seen, code=code)))
"""


@pytest.mark.timeout(120)
def test_demo_window_is_marked_and_the_loop_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    picture = tmp_path / "demo.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), str(picture)],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0 and seen["windows"] == 1
    assert seen["title"] == "Cadence — demo sandbox"
    assert seen["banner_visible"] is True
    assert "nothing leaves the machine" in seen["banner"]
    assert seen["clock"].startswith("Demo time: ")
    assert seen["grabbed"] is True and picture.stat().st_size > 10_000
    assert "Traceback" not in done.stderr
    opened = open_store(data)
    try:
        (campaign,) = opened.store.list_campaigns()
        ledger = opened.store.list_ledger(account_id=campaign.account_id, since=campaign.created_at)
        kinds = [entry.kind for entry in ledger]
        assert kinds.count(LedgerKind.SENT) >= 10
        assert LedgerKind.HARD_BOUNCE in kinds
    finally:
        opened.close()
