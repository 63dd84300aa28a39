"""Where notices and the sending status go besides the window: the system tray when the desktop has one.
Without a tray (a desktop without one, offscreen) the banner inside the window is all there is, and the
notifier keeps the status to itself."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QSystemTrayIcon

from cadence import APP_NAME
from cadence.core import views as v
from cadence.qt.icon import app_icon
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.status import STATE_LEVEL, status_lines

SEVERITY_ICON = {
    v.Severity.ERROR: QSystemTrayIcon.MessageIcon.Critical,
    v.Severity.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    v.Severity.INFO: QSystemTrayIcon.MessageIcon.Information,
}
NOTICE_SHOWN_MS = 10_000


class Notifier:
    """Notices to the tray (title, message, an icon for the severity); the status as the tray's tooltip and
    a coloured dot on its icon. `tray` None: nothing beyond the window."""

    def __init__(self, tray: QSystemTrayIcon | None = None) -> None:
        self.tray = tray
        self.tooltip = APP_NAME
        self.level = Level.NONE

    @property
    def has_tray(self) -> bool:
        return self.tray is not None

    def notify(self, notice: v.Notice) -> bool:
        """Show the notice in the tray; False when there is none (the banner alone carries it)."""
        if self.tray is None:
            return False
        self.tray.showMessage(notice.title, notice.message, SEVERITY_ICON[notice.severity], NOTICE_SHOWN_MS)
        return True

    def show_status(self, status: v.StatusView, *, now: datetime) -> None:
        self.level = STATE_LEVEL[status.state]
        self.tooltip = f"{APP_NAME}\n" + "\n".join(status_lines(status, now))
        if self.tray is not None:
            self.tray.setToolTip(self.tooltip)
            self.tray.setIcon(app_icon(self.status_color()))

    def status_color(self) -> QColor:
        return level_color(self.level)

    def hide(self) -> None:
        if self.tray is not None:
            self.tray.hide()
