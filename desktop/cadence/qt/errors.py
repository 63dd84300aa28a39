"""Two tiers of errors: user-facing problems go to a non-modal banner, bugs to a crash dialog shown once
per kind of exception (qutebrowser / Electrum style). qasync hands exceptions from async slots to
sys.excepthook, so install_excepthook() must run before the first slot can fire."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from cadence.core.ports import UserFacingError

log = logging.getLogger(__name__)


class KnownEnvironmentError(Exception):
    """Disk full, permission denied and the like: the user's machine, not a bug."""


class MessageBridge(QObject):
    """One object every layer of the window posts user messages to. Messages posted before a banner is
    connected are buffered and delivered by flush()."""

    message = Signal(str, str)  # level ("info" | "warning" | "error"), text

    def __init__(self) -> None:
        super().__init__()
        self._buffer: list[tuple[str, str]] = []
        self._connected = False

    def post(self, level: str, text: str) -> None:
        if self._connected:
            self.message.emit(level, text)
        else:
            self._buffer.append((level, text))

    def info(self, text: str) -> None:
        self.post("info", text)

    def warning(self, text: str) -> None:
        self.post("warning", text)

    def error(self, text: str) -> None:
        self.post("error", text)

    def connect_sink(self, sink: Callable[[str, str], None]) -> None:
        self.message.connect(sink)
        self._connected = True
        self.flush()

    def flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        for level, text in buffered:
            self.message.emit(level, text)


_bridge: MessageBridge | None = None


def messages() -> MessageBridge:
    global _bridge
    if _bridge is None:
        _bridge = MessageBridge()
    return _bridge


def reset_messages() -> None:
    """Drop the bridge (tests and shutdown): the next window gets a fresh one."""
    global _bridge
    if _bridge is not None:
        _bridge.deleteLater()
    _bridge = None


class CrashHandler:
    def __init__(self, *, parent: Callable[[], QWidget | None] | None = None) -> None:
        self._parent = parent or (lambda: None)
        self._seen: set[tuple[str, str, int]] = set()
        self.shown: list[str] = []  # kinds shown (tests read it)
        self._dialogs: list[QMessageBox] = []

    def __call__(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        handle_exception(exc, crash=self, tb=tb)

    def show_crash(self, exc: BaseException, tb: TracebackType | None) -> None:
        frames = traceback.extract_tb(tb) if tb is not None else []
        where = (frames[-1].filename, frames[-1].lineno or 0) if frames else ("", 0)
        key = (type(exc).__qualname__, where[0], where[1])
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        log.error("unexpected error\n%s", text)
        if key in self._seen:
            return
        self._seen.add(key)
        self.shown.append(type(exc).__qualname__)
        if QApplication.instance() is None:
            print(text, file=sys.stderr)
            return
        box = QMessageBox(self._parent())
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Cadence ran into a problem")
        box.setText("Something went wrong inside Cadence. Your data is safe; shown once per kind.")
        box.setInformativeText(f"{type(exc).__name__}: {exc}")
        box.setDetailedText(text)
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.finished.connect(lambda _r, b=box: self._forget(b))
        self._dialogs.append(box)
        box.open()

    def _forget(self, box: QMessageBox) -> None:
        if box in self._dialogs:
            self._dialogs.remove(box)
        box.deleteLater()


_crash: CrashHandler | None = None


def handle_exception(
    exc: BaseException, *, crash: CrashHandler | None = None, tb: TracebackType | None = None
) -> None:
    """The default failure path for background work: banner for user errors, crash dialog for bugs."""
    if isinstance(exc, UserFacingError):
        messages().error(str(exc))
        return
    if isinstance(exc, KnownEnvironmentError | OSError):
        log.warning("environment error: %s", exc)
        messages().error(f"{exc}")
        return
    handler = crash or _crash or CrashHandler()
    handler.show_crash(exc, tb or exc.__traceback__)


def install_excepthook(*, parent: Callable[[], QWidget | None] | None = None) -> CrashHandler:
    global _crash
    _crash = CrashHandler(parent=parent)
    sys.excepthook = _crash
    return _crash


def uninstall_excepthook() -> None:
    global _crash
    _crash = None
    sys.excepthook = sys.__excepthook__
