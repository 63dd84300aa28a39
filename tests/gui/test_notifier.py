"""Notices reach the tray through the window's notifier, over the REAL runtime and a SQLite file. Only the OS
tray itself is stood in for (offscreen has none): a QSystemTrayIcon that records what it was asked to show."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QSystemTrayIcon

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import AccountSettings
from cadence.qt.main_window import MainWindow
from cadence.qt.theme import Level, level_color
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.events import SendEvent, SendEventKind
from cadence.services.runtime import Runtime

SENDER = "sales@example.test"
BREAKER = "Automatic pause: too many hard bounces in the last 24 hours (bounce breaker)"
PROVIDER = "Automatic pause: The server refused mail from this account (policy): 554 5.7.1 spam"
LOGIN = "Automatic pause: The server refused the login: 535 5.7.8 bad credentials"


class RecordingTray(QSystemTrayIcon):
    """The OS tray: what the notifier asked it to show (offscreen desktops have no tray to show it in)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[str, str, QSystemTrayIcon.MessageIcon]] = []

    def showMessage(self, title: str, message: str, icon: Any = None, msecs: int = 10_000) -> None:  # type: ignore[override]
        self.shown.append((title, message, icon))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest.fixture
def runtime(store: SqliteStore) -> Runtime:
    store.create_account(
        AccountSettings(email=SENDER, display_name="Sam", smtp_host="smtp.example.test"),
        now=datetime.now(UTC),
    )
    return Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for)


def open_window(qtbot: Any, runtime: Runtime, tmp_path: Path, tray: QSystemTrayIcon | None) -> MainWindow:
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    window = MainWindow(runtime, window_state=state, use_tray=False, tray=tray)
    window.resize(1280, 800)
    window.show()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10_000)
    return window


def close_window(qtbot: Any, window: MainWindow) -> None:
    if not window.is_shut_down():
        window.close()
        qtbot.waitUntil(window.is_shut_down, timeout=30_000)
    window.deleteLater()


def run(qtbot: Any, work: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(work)
    qtbot.waitUntil(task.done, timeout=10_000)
    task.result()


def dot_color(tray: QSystemTrayIcon) -> QColor:
    """The status dot painted at the bottom right of the tray icon (icon.app_icon)."""
    image = tray.icon().pixmap(64, 64).toImage()
    return image.pixelColor(51, 51)


def test_each_notice_kind_reaches_the_tray_with_its_title_message_and_icon(
    qtbot: Any, qloop: qasync.QEventLoop, runtime: Runtime, tmp_path: Path
) -> None:
    tray = RecordingTray()
    window = open_window(qtbot, runtime, tmp_path, tray)
    try:
        account_id = 1
        for reason in (BREAKER, PROVIDER, LOGIN):  # the scheduler's own pause path publishes these
            run(qtbot, runtime.scheduler.pause(account_id, reason=reason))
        now = datetime.now(UTC)
        runtime.send_events.publish(
            SendEvent(SendEventKind.CAP_REACHED, account_id, now, detail=f"{SENDER} has sent its share")
        )
        runtime.send_events.publish(
            SendEvent(SendEventKind.CAMPAIGN_FINISHED, account_id, now, detail="Spring", campaign_id=3)
        )
        qtbot.waitUntil(lambda: len(tray.shown) == 5)
        icon = QSystemTrayIcon.MessageIcon
        assert tray.shown == [
            ("Paused: too many bounces", BREAKER, icon.Warning),
            ("Paused by the provider", PROVIDER, icon.Warning),
            ("Login refused", LOGIN, icon.Critical),
            ("Daily cap reached", f"{SENDER} has sent its share", icon.Information),
            ("Campaign finished", "“Spring” has sent its last message.", icon.Information),
        ]
        shown = " | ".join(text for _level, text in window.banners.messages())
        assert "Campaign finished" in shown and "Daily cap reached" in shown
    finally:
        close_window(qtbot, window)


def test_the_tray_tooltip_and_icon_follow_the_sending_status(
    qtbot: Any, qloop: qasync.QEventLoop, runtime: Runtime, tmp_path: Path
) -> None:
    tray = RecordingTray()
    window = open_window(qtbot, runtime, tmp_path, tray)
    try:
        qtbot.waitUntil(lambda: "Today 0 of" in tray.toolTip())
        assert tray.toolTip().startswith("Cadence\n")
        assert dot_color(tray) == level_color(Level.OK)

        run(qtbot, runtime.pause(None, reason="Paused by you"))
        qtbot.waitUntil(lambda: "Paused by you" in tray.toolTip())
        assert dot_color(tray) == level_color(Level.BAD)
        assert window.notifier.level is Level.BAD

        run(qtbot, runtime.resume(None))
        qtbot.waitUntil(lambda: "Paused" not in tray.toolTip())
        assert dot_color(tray) == level_color(Level.OK)
    finally:
        close_window(qtbot, window)


def test_without_a_tray_the_banner_alone_carries_the_notice(
    qtbot: Any, qloop: qasync.QEventLoop, runtime: Runtime, tmp_path: Path
) -> None:
    window = open_window(qtbot, runtime, tmp_path, None)
    try:
        assert not window.notifier.has_tray
        run(qtbot, runtime.scheduler.pause(1, reason=LOGIN))
        qtbot.waitUntil(lambda: any("Login refused" in text for _l, text in window.banners.messages()))
        level, text = next(m for m in window.banners.messages() if "Login refused" in m[1])
        assert level == "error" and LOGIN in text
        assert window.notifier.notify(v.Notice(v.NoticeKind.CAP_REACHED, "t", "m")) is False
    finally:
        close_window(qtbot, window)
