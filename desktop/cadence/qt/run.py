"""Run the window: QApplication, excepthook, qasync loop, window, and an explicit shutdown in the order
that does not crash PySide6 6.12 + qasync 0.28 at interpreter exit (close the loop, drop the widgets,
then the application)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from cadence import APP_NAME, DESKTOP_ID
from cadence.core.ports import RuntimeApi, UserFacingError
from cadence.qt.context import utc_now
from cadence.qt.errors import install_excepthook, reset_messages, uninstall_excepthook
from cadence.qt.icon import app_icon

log = logging.getLogger(__name__)


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


def run_window(
    runtime_factory: Callable[[], Awaitable[RuntimeApi]],
    *,
    argv: Sequence[str] | None = None,
    window_state: QSettings | None = None,
    now: Callable[[], datetime] = utc_now,
) -> int:
    """Build everything, show the window, run until it is closed; returns the process exit code."""
    from cadence.qt.main_window import MainWindow

    app = make_application(argv)
    holder: dict[str, MainWindow] = {}
    install_excepthook(parent=lambda: holder.get("window"))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    exit_code = 0

    async def main() -> None:
        runtime = await runtime_factory()
        window = MainWindow(runtime, window_state=window_state, now=now)
        holder["window"] = window
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        window.show()
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
