"""GUI test fixtures: a qasync loop on pytest-qt's QApplication (the pattern from qasync's own tests), and
a window over the in-memory demo runtime. Tests stay synchronous and wait with qtbot.waitUntil."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from cadence.qt.errors import reset_messages
from cadence.qt.main_window import MainWindow
from cadence.services.demo_runtime import DemoRuntime


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    executor = qasync.QThreadExecutor(2)  # for asyncio.to_thread (file export); shut down below
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    yield loop
    executor.shutdown(wait=True)
    for task in asyncio.all_tasks(loop):
        task.cancel()
    qapp.processEvents()
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)


@pytest.fixture
def window_state(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "window-state.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(
    qtbot: Any, qloop: qasync.QEventLoop, window_state: QSettings
) -> Iterator[Callable[..., MainWindow]]:
    windows: list[MainWindow] = []

    def make(runtime: DemoRuntime | None = None, *, state: QSettings | None = None) -> MainWindow:
        runtime = runtime or DemoRuntime()
        window = MainWindow(runtime, window_state=state or window_state, now=runtime.now, use_tray=False)
        window.batcher._timer.setInterval(20)
        window.resize(1280, 800)
        window.show()
        qtbot.waitUntil(
            lambda: not window.runner.busy and window.queue.model.total == runtime_pending(runtime)
        )
        windows.append(window)
        return window

    yield make
    # Closed here rather than by qtbot.addWidget: the window shuts its services down asynchronously and
    # must still exist when that finishes.
    for window in windows:
        if not window.is_shut_down():
            window.close()
            qtbot.waitUntil(window.is_shut_down)
        window.deleteLater()
    reset_messages()


def runtime_pending(runtime: DemoRuntime) -> int:
    return len(runtime._drafts)
