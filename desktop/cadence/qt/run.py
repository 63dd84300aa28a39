"""Run the window: QApplication, excepthook, qasync loop, window, and an explicit shutdown in the order
that does not crash PySide6 6.12 + qasync 0.28 at interpreter exit (close the loop, drop the widgets,
then the application).

The window shows before the runtime exists: it is built over a PendingRuntime, with a loading page over its
tabs; once it has painted, the runtime factory runs, and the page goes when the runtime is there.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import qasync
from PySide6.QtCore import QEvent, QObject, QSettings, Qt
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox, QWidget
from shiboken6 import isValid

from cadence import APP_NAME, DESKTOP_ID
from cadence.core.ports import RuntimeApi, UserFacingError
from cadence.qt.context import utc_now
from cadence.qt.errors import install_excepthook, reset_messages, uninstall_excepthook
from cadence.qt.icon import app_icon
from cadence.services.pending_runtime import PendingRuntime

log = logging.getLogger(__name__)

LOADING_TEXT = "Opening your data…"
LOADING_OBJECT_NAME = "loading"
FIRST_PAINT_WAIT_S = 1.0  # a window that is never painted (started minimised) must not hold start-up back


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(DESKTOP_ID)
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # the explicit path is the window's `closed` signal
    return app


class LoadingState(QObject):
    """While the runtime opens, a page that says so covers the window's tabs (which stay disabled beneath
    it) and the menus are disabled: nothing on screen can show data that is not there yet."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self._window = window
        content = window.centralWidget()
        if content is None:
            raise ValueError("the window has no central widget to cover while loading")
        self._content = content
        content.setEnabled(False)
        self._page: QLabel | None = QLabel(LOADING_TEXT, window)
        self._page.setObjectName(LOADING_OBJECT_NAME)
        self._page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._page.setAutoFillBackground(True)
        self._page.setGeometry(self._content.geometry())
        self._page.raise_()
        self._page.show()
        self._content.installEventFilter(self)
        window.menuBar().setEnabled(False)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._page is not None and event.type() in (QEvent.Type.Resize, QEvent.Type.Move):
            self._page.setGeometry(self._content.geometry())
        return False

    def finish(self) -> None:
        """Uncover and enable the tabs and menus; idempotent."""
        page, self._page = self._page, None
        if page is None or not isValid(self._window):
            return
        self._content.removeEventFilter(self)
        page.hide()
        page.deleteLater()
        self._content.setEnabled(True)
        self._window.menuBar().setEnabled(True)


class _PaintWatch(QObject):
    def __init__(self, widget: QWidget, painted: asyncio.Event) -> None:
        super().__init__(widget)
        self._painted = painted
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self._painted.set()
        return False


async def first_paint(widget: QWidget, *, timeout_s: float = FIRST_PAINT_WAIT_S) -> bool:
    """Wait until `widget` has been painted once (False if it was not within `timeout_s`)."""
    painted = asyncio.Event()
    watch = _PaintWatch(widget, painted)
    try:
        await asyncio.wait_for(painted.wait(), timeout_s)
    except TimeoutError:
        return False
    finally:
        widget.removeEventFilter(watch)
        watch.deleteLater()
    return True


def run_window(
    runtime_factory: Callable[[], Awaitable[RuntimeApi]],
    *,
    argv: Sequence[str] | None = None,
    window_state: QSettings | None = None,
    now: Callable[[], datetime] = utc_now,
) -> int:
    """Build and show the window, open the runtime behind it (`runtime_factory` runs once the window has
    painted), run until it is closed; returns the process exit code. A UserFacingError from the factory is
    a start-up failure: one clear message and exit code 1."""
    from cadence.qt.main_window import MainWindow

    app = make_application(argv)
    holder: dict[str, MainWindow] = {}
    install_excepthook(parent=lambda: holder.get("window"))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    exit_code = 0

    async def main() -> None:
        pending = PendingRuntime()
        window = MainWindow(pending, window_state=window_state, now=now)
        holder["window"] = window
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        loading = LoadingState(window)
        window.show()
        await first_paint(window)
        try:
            runtime = await runtime_factory()
        except BaseException as exc:
            pending.fail(exc)
            window.hide()
            raise
        pending.attach(runtime)
        loading.finish()
        await closed.wait()

    try:
        loop.run_until_complete(main())
    except UserFacingError as exc:
        exit_code = 1
        print(f"{APP_NAME} could not start: {exc}", file=sys.stderr)
        if app.platformName() != "offscreen":  # nobody could close the box there
            QMessageBox.critical(None, f"{APP_NAME} could not start", str(exc))
    except KeyboardInterrupt:
        exit_code = 130
    finally:
        window = holder.pop("window", None)
        try:
            if window is not None and not window.is_shut_down():
                loop.run_until_complete(window.shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            asyncio.set_event_loop(None)
            if window is not None:
                window.deleteLater()
                del window
            app.processEvents()
            reset_messages()
            uninstall_excepthook()
            gc.collect()
            app.shutdown()
    return exit_code
