"""Make the main window say it is the demo: its title, a banner that cannot be dismissed, and the
simulated time in the status bar. Applied once run_window has created the window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

BANNER_TEXT = (
    "<b>Demo sandbox</b> — invented recipients on this computer only: nothing leaves the machine. "
    "Bounces, auto-replies and answers are simulated; the clock runs {speed:g}× faster. "
    "Your real data is untouched."
)
BANNER_STYLE = (
    "QLabel { background: #fff3cd; color: #5c4400; border: 1px solid #e0c36a; border-radius: 4px;"
    " padding: 6px 10px; }"
)


def _main_window() -> QMainWindow | None:
    from cadence.qt.main_window import MainWindow

    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, MainWindow):
            return widget
    return None


def decorate(window: QMainWindow, *, title: str, speed: float, now: Callable[[], datetime]) -> QLabel:
    """Title, banner and simulated clock on `window`; returns the banner label."""
    window.setWindowTitle(title)
    banner = QLabel(BANNER_TEXT.format(speed=speed))
    banner.setObjectName("demoBanner")
    banner.setWordWrap(True)
    banner.setStyleSheet(BANNER_STYLE)
    central = window.centralWidget()
    layout = central.layout() if central is not None else None
    if layout is not None and hasattr(layout, "insertWidget"):
        layout.insertWidget(0, banner)
    clock_label = QLabel()
    clock_label.setObjectName("demoClock")

    def tick() -> None:
        clock_label.setText(f"Demo time: {now():%a %d %b %H:%M} UTC ({speed:g}×)")

    tick()
    timer = QTimer(clock_label)
    timer.setInterval(250)
    timer.timeout.connect(tick)
    timer.start()
    window.statusBar().addPermanentWidget(clock_label)
    return banner


def mark_demo_window(*, title: str, speed: float, now: Callable[[], datetime], attempts: int = 40) -> None:
    """Decorate the main window as soon as it exists (looked for on the next turns of the Qt loop)."""

    def look(remaining: int) -> None:
        window = _main_window()
        if window is not None:
            decorate(window, title=title, speed=speed, now=now)
        elif remaining > 0:
            QTimer.singleShot(50, lambda: look(remaining - 1))

    QTimer.singleShot(0, lambda: look(attempts))


def demo_banner(window: QWidget) -> QLabel | None:
    return window.findChild(QLabel, "demoBanner")
