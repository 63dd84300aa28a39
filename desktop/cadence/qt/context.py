"""What every tab needs, passed once instead of threaded through constructors one by one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QHeaderView, QSplitter

from cadence.core.ports import RuntimeApi
from cadence.qt.asyncutil import TaskRunner
from cadence.qt.bridge import EventBridge, RedrawBatcher
from cadence.qt.errors import MessageBridge


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WindowContext:
    runtime: RuntimeApi
    runner: TaskRunner
    bridge: EventBridge
    batcher: RedrawBatcher
    messages: MessageBridge
    window_state: QSettings  # geometry and header layouts only; user settings live in the store
    now: Callable[[], datetime] = utc_now

    def restore_header(self, name: str, header: QHeaderView) -> None:
        state = self.window_state.value(f"headers/{name}")
        if state is not None:
            header.restoreState(state)

    def save_header(self, name: str, header: QHeaderView) -> None:
        self.window_state.setValue(f"headers/{name}", header.saveState())

    def restore_splitter(self, name: str, splitter: QSplitter) -> None:
        state = self.window_state.value(f"splitters/{name}")
        if state is not None:
            splitter.restoreState(state)

    def save_splitter(self, name: str, splitter: QSplitter) -> None:
        self.window_state.setValue(f"splitters/{name}", splitter.saveState())
