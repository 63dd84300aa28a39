"""The main window: campaigns, approval queue, suppression, deliverability and activity tabs, a banner area
for user-facing messages, the status line, and a tray icon where the desktop has one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QEvent, QSettings, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QMenu,
    QMessageBox,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from cadence import APP_NAME
from cadence.core import views as v
from cadence.core.ports import RuntimeApi, UserFacingError
from cadence.qt.asyncutil import TaskRunner
from cadence.qt.bridge import EventBridge, RedrawBatcher
from cadence.qt.context import WindowContext, utc_now
from cadence.qt.dialogs.new_campaign import NewCampaignDialog
from cadence.qt.dialogs.settings import AccountSettingsDialog
from cadence.qt.errors import messages
from cadence.qt.icon import app_icon
from cadence.qt.notifier import Notifier
from cadence.qt.tabs.activity import ActivityTab
from cadence.qt.tabs.campaigns import CampaignsTab
from cadence.qt.tabs.deliverability import DeliverabilityTab
from cadence.qt.tabs.queue import QueueTab
from cadence.qt.tabs.suppression import SuppressionTab
from cadence.qt.widgets.banner import BannerArea
from cadence.qt.widgets.status import StatusPanel

QUEUE_TITLE = "&Approval queue"
STATUS_REFRESH_MS = 30_000


def window_state_settings() -> QSettings:
    """Window geometry and table layouts, in their own file, apart from the user's settings."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, "window-state")


class MainWindow(QMainWindow):
    closed = Signal()  # after services were shut down

    def __init__(
        self,
        runtime: RuntimeApi,
        *,
        window_state: QSettings | None = None,
        now: Callable[[], datetime] = utc_now,
        use_tray: bool = True,
        tray: QSystemTrayIcon | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """`tray`: the tray icon to use (made here when None, `use_tray` is set and the desktop has one)."""
        super().__init__(parent)
        self.runtime = runtime
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.runner = TaskRunner(self)
        self.bridge = EventBridge(self)
        self.batcher = RedrawBatcher(self)
        self.ctx = WindowContext(
            runtime=runtime,
            runner=self.runner,
            bridge=self.bridge,
            batcher=self.batcher,
            messages=messages(),
            window_state=window_state if window_state is not None else window_state_settings(),
            now=now,
        )
        self._shutdown_task: asyncio.Task[None] | None = None
        self._shut_down = False
        self._loaded = False
        self._dialogs: list[QWidget] = []

        self.banners = BannerArea()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.campaigns = CampaignsTab(self.ctx)
        self.queue = QueueTab(self.ctx)
        self.suppression = SuppressionTab(self.ctx)
        self.deliverability = DeliverabilityTab(self.ctx)
        self.activity = ActivityTab(self.ctx)
        self.tabs.addTab(self.campaigns, "&Campaigns")
        self.tabs.addTab(self.queue, QUEUE_TITLE)
        self.tabs.addTab(self.suppression, "&Suppression")
        self.tabs.addTab(self.deliverability, "&Deliverability")
        self.tabs.addTab(self.activity, "Acti&vity")
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 0)
        layout.addWidget(self.banners)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.status_panel = StatusPanel(now)
        self.statusBar().addWidget(self.status_panel, 1)
        self.statusBar().setSizeGripEnabled(True)

        self._build_menus()
        self.tray: QSystemTrayIcon | None = None
        if tray is not None:
            self._build_tray(tray)
        elif use_tray and QSystemTrayIcon.isSystemTrayAvailable():
            self._build_tray(QSystemTrayIcon(app_icon(), self))
        self.notifier = Notifier(self.tray)

        self.queue.pending_changed.connect(self._set_queue_badge)
        self.campaigns.new_button.clicked.connect(self.open_new_campaign)
        self.bridge.status_changed.connect(self.set_status)
        # Sends, bounces and pauses change today's count and the bounce rate: redraw the status bar with the
        # dashboards (batched), not only on the periodic refresh.
        self.batcher.register("status", self.refresh_status)
        self.bridge.deliverability_changed.connect(lambda: self.batcher.mark("status"))
        self.bridge.notice.connect(self._notice)
        self.bridge.attach(runtime)
        self.ctx.messages.connect_sink(self._message)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_REFRESH_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._restore_geometry()

    # --- building -----------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.new_campaign_action = QAction("&New campaign…", self)
        self.new_campaign_action.setShortcut(QKeySequence.StandardKey.New)
        self.new_campaign_action.triggered.connect(self.open_new_campaign)
        self.settings_action = QAction("&Account settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.open_settings)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(self.new_campaign_action)
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)

        sending = self.menuBar().addMenu("&Sending")
        self.pause_action = QAction("&Pause all sending", self)
        self.pause_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.pause_action.triggered.connect(self.pause_all)
        self.resume_action = QAction("&Resume sending", self)
        self.resume_action.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.resume_action.triggered.connect(self.deliverability.request_resume)
        sending.addAction(self.pause_action)
        sending.addAction(self.resume_action)

        view = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):
            action = QAction(self.tabs.tabText(i).replace("&", ""), self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _c=False, index=i: self.tabs.setCurrentIndex(index))
            view.addAction(action)
        refresh = QAction("&Refresh", self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(self.load)
        view.addSeparator()
        view.addAction(refresh)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction(f"&About {APP_NAME}", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _build_tray(self, tray: QSystemTrayIcon) -> None:
        if tray.icon().isNull():
            tray.setIcon(app_icon())
        menu = QMenu(self)
        show = menu.addAction("Show Cadence")
        show.triggered.connect(self._raise)
        menu.addAction(self.pause_action)
        menu.addAction(self.resume_action)
        menu.addSeparator()
        quit_action = menu.addAction("Quit")
        quit_action.triggered.connect(self.close)
        tray.setContextMenu(menu)
        tray.setToolTip(APP_NAME)
        tray.activated.connect(
            lambda reason: self._raise() if reason == QSystemTrayIcon.ActivationReason.Trigger else None
        )
        tray.show()
        self.tray = tray

    # --- loading ------------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.load()

    def load(self) -> None:
        self._loaded = True
        self.refresh_status()
        self.campaigns.load()
        self.queue.load()
        self.suppression.load()
        self.deliverability.load()
        self.activity.load()
        self.runner.run(self.runtime.list_accounts(), on_success=self._set_accounts)
        self._status_timer.start()

    def refresh_status(self) -> None:
        self.runner.run(self.runtime.status(), on_success=self.set_status)

    def _set_accounts(self, accounts: list[v.AccountView]) -> None:
        if accounts:
            self.queue.set_from_address(f"{accounts[0].display_name} <{accounts[0].email}>")
        else:
            self.ctx.messages.warning("No sending account yet. Add one in File → Account settings.")

    def set_status(self, status: v.StatusView) -> None:
        self.status_panel.set_status(status)
        self._set_queue_badge(status.pending_approval)
        self.notifier.show_status(status, now=self.ctx.now())

    def _set_queue_badge(self, pending: int) -> None:
        index = self.tabs.indexOf(self.queue)
        self.tabs.setTabText(index, f"{QUEUE_TITLE} ({pending:,})" if pending else QUEUE_TITLE)
        self.tabs.setTabToolTip(index, f"{pending:,} drafts waiting for your approval" if pending else "")

    # --- messages and notices -----------------------------------------------------------------------

    def _message(self, level: str, text: str) -> None:
        self.banners.show_message(level, text)

    def _notice(self, notice: v.Notice) -> None:
        level = "error" if notice.severity is v.Severity.ERROR else "warning"
        if notice.kind in (v.NoticeKind.BREAKER_PAUSE, v.NoticeKind.PROVIDER_BLOCK):
            self.banners.show_message(
                level,
                f"{notice.title}: {notice.message}",
                action="Open Deliverability",
                on_action=lambda: self.tabs.setCurrentWidget(self.deliverability),
            )
        elif notice.kind is v.NoticeKind.AUTH_FAILURE:
            self.banners.show_message(
                "error",
                f"{notice.title}: {notice.message}",
                action="Account settings…",
                on_action=self.open_settings,
            )
        else:
            target: QWidget = {
                v.NoticeKind.CAP_REACHED: self.deliverability,
                v.NoticeKind.DRAFTS_WAITING: self.queue,
            }.get(notice.kind, self.campaigns)
            self.banners.show_message(
                "info" if notice.severity is v.Severity.INFO else level,
                f"{notice.title}: {notice.message}",
                action=f"Open {self.tabs.tabText(self.tabs.indexOf(target)).replace('&', '').split(' (')[0]}",
                on_action=lambda: self.tabs.setCurrentWidget(target),
            )
        self.notifier.notify(notice)

    # --- actions ------------------------------------------------------------------------------------

    def open_new_campaign(self) -> NewCampaignDialog:
        dialog = NewCampaignDialog(self.ctx, self)
        dialog.created.connect(lambda _id: self.campaigns.load())
        self._keep(dialog)
        dialog.open()
        return dialog

    def open_settings(self) -> None:
        def show(accounts: list[v.AccountView]) -> None:
            if accounts:
                self.runner.run(
                    self.runtime.get_account_settings(accounts[0].id), on_success=self._show_settings
                )
            else:
                self._show_settings(v.AccountSettings(email="", display_name="", smtp_host=""))

        self.runner.run(self.runtime.list_accounts(), on_success=show)

    def _show_settings(self, settings: v.AccountSettings) -> AccountSettingsDialog:
        dialog = AccountSettingsDialog(self.ctx, settings, self)
        dialog.saved.connect(lambda _id: self.load())
        self._keep(dialog)
        dialog.open()
        return dialog

    def pause_all(self) -> None:
        self.runner.run(
            self.runtime.pause(None, reason="Paused by you"),
            on_success=lambda _r: self.ctx.messages.info(
                "Sending paused. Nothing goes out until you resume."
            ),
        )

    def _about(self) -> None:
        from cadence import __version__

        box = QMessageBox(
            QMessageBox.Icon.Information, f"About {APP_NAME}", f"{APP_NAME} {__version__}", parent=self
        )
        box.setInformativeText(
            "Cold outreach from your own mailbox, within guardrails that protect your domain."
        )
        self._keep(box)
        box.open()

    def _raise(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _keep(self, widget: QWidget) -> None:
        self._dialogs = [d for d in self._dialogs if d.isVisible()]
        self._dialogs.append(widget)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            # the OS switched between light and dark: recolour what was coloured by hand
            for colors in (self.queue.colors, self.campaigns.colors, self.activity.colors):
                colors.refresh()
            if self._loaded:
                self.deliverability.load()
                self.refresh_status()

    # --- state and shutdown -------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = self.ctx.window_state.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            em = self.fontMetrics().height()
            self.resize(int(em * 75), int(em * 47))
        tab = self.ctx.window_state.value("window/tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))

    def save_state(self) -> None:
        state = self.ctx.window_state
        state.setValue("window/geometry", self.saveGeometry())
        state.setValue("window/tab", self.tabs.currentIndex())
        for tab in (self.campaigns, self.queue, self.suppression, self.deliverability, self.activity):
            tab.save_state()
        state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shut_down:
            event.accept()
            return
        event.ignore()
        if self._shutdown_task is None:
            self.save_state()
            self.hide()
            self._shutdown_task = asyncio.ensure_future(self.shutdown())
            self._shutdown_task.add_done_callback(lambda _t: self._finish_close())

    async def shutdown(self) -> None:
        """Stop timers, detach from events, cancel the window's work, then stop the services."""
        self._status_timer.stop()
        self.batcher.stop()
        self.bridge.detach()
        await self.runner.shutdown()
        with contextlib.suppress(UserFacingError):
            await self.runtime.aclose()

    def _finish_close(self) -> None:
        if not isValid(self):
            return
        self._shut_down = True
        self.notifier.hide()
        self.close()
        self.closed.emit()

    def is_shut_down(self) -> bool:
        return self._shut_down
