"""The suppression tab opens the evidence an entry was added on (the raw bounce, reply or SMTP transcript),
over the REAL runtime and a SQLite file; entries added by hand have none, and an erased person's is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QItemSelectionModel, QSettings, Qt
from PySide6.QtWidgets import QDialog, QPlainTextEdit

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core.model import AccountSettings, SuppressionReason
from cadence.core.ports import UserFacingError
from cadence.qt.main_window import MainWindow
from cadence.qt.models.paged import ROW_ROLE
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime

BOUNCE = (
    b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n"
    b"Final-Recipient: rfc822; gone@client.example\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 <gone@client.example>: user unknown \xe2\x80\x94 \xff\r\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest.fixture
def window(qtbot: Any, qloop: qasync.QEventLoop, store: SqliteStore, tmp_path: Path) -> Iterator[MainWindow]:
    now = datetime.now(UTC)
    store.create_account(
        AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test"),
        now=now,
    )
    store.add_suppression(
        "gone@client.example",
        reason=SuppressionReason.HARD_BOUNCE,
        now=now,
        source="bounce of <m1@example.test>",
        evidence=BOUNCE,
    )
    store.add_suppression(
        "manual@client.example", reason=SuppressionReason.MANUAL, now=now, source="added by hand"
    )
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for)
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    main = MainWindow(runtime, window_state=state, use_tray=False)
    main.resize(1280, 800)
    main.show()
    main.tabs.setCurrentWidget(main.suppression)
    qtbot.waitUntil(lambda: not main.runner.busy and main.suppression.model.total == 2, timeout=10_000)
    yield main
    if not main.is_shut_down():
        main.close()
        qtbot.waitUntil(main.is_shut_down, timeout=30_000)
    main.deleteLater()


def select(window: MainWindow, value: str) -> None:
    tab = window.suppression
    row = next(r for r in range(tab.proxy.rowCount()) if tab.proxy.index(r, 0).data(ROW_ROLE).value == value)
    tab.table.selectionModel().select(
        tab.proxy.index(row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    tab.table.setCurrentIndex(tab.proxy.index(row, 0))


def evidence_dialogs(window: MainWindow) -> list[QDialog]:
    return [d for d in window.suppression.findChildren(QDialog, "evidenceDialog") if d.isVisible()]


def test_the_raw_bounce_opens_from_the_button_and_from_enter(qtbot: Any, window: MainWindow) -> None:
    tab = window.suppression
    select(window, "manual@client.example")
    assert not tab.evidence_button.isEnabled()  # added by hand: nothing was kept

    select(window, "gone@client.example")
    assert tab.evidence_button.isEnabled()
    tab.evidence_button.click()
    qtbot.waitUntil(lambda: len(evidence_dialogs(window)) == 1)
    dialog = evidence_dialogs(window)[0]
    text = dialog.findChild(QPlainTextEdit).toPlainText()
    assert "550 5.1.1 <gone@client.example>: user unknown —" in text and "\ufffd" in text  # bad byte shown
    assert dialog.windowTitle() == "Evidence — gone@client.example"
    dialog.reject()
    qtbot.waitUntil(lambda: not evidence_dialogs(window))

    tab.table.setFocus()
    qtbot.keyClick(tab.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(evidence_dialogs(window)) == 1)
    evidence_dialogs(window)[0].reject()


def test_an_erased_persons_evidence_is_gone(qtbot: Any, window: MainWindow, store: SqliteStore) -> None:
    entry = next(s for s in store.list_suppressions() if s.value == "gone@client.example")
    assert entry.evidence_id is not None
    runtime = window.runtime
    assert isinstance(runtime, Runtime)
    task = asyncio.ensure_future(runtime.forget_person("gone@client.example"))
    qtbot.waitUntil(task.done, timeout=10_000)
    task.result()
    check = asyncio.ensure_future(runtime.suppression_evidence(entry.evidence_id))
    qtbot.waitUntil(check.done, timeout=10_000)
    with pytest.raises(UserFacingError, match="no longer kept"):
        check.result()
