"""Ctrl+A in the approval queue means every draft waiting, not the loaded page: over the REAL runtime and a
SQLite file with a few hundred drafts and a small page, approve / reject then run over all of them in
batches with progress, and drafts that arrive after the selection are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core.model import AccountSettings, AuditResult, Lead, MessageState, Step
from cadence.qt.main_window import MainWindow
from cadence.services import runtime as runtime_module
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime
from cadence.services.scheduler import draft_for_step

DRAFTS = 300
PAGE = 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


def add_drafts(store: SqliteStore, count: int, *, name: str) -> int:
    now = datetime.now(UTC)
    account = store.list_accounts()[0]
    step = Step(index=1, subject="Hello {first_name}", body="Hi {first_name}, a short note.")
    campaign = store.create_campaign(name=name, account_id=account.id, steps=(step,), now=now)
    store.add_leads(
        campaign.id,
        leads=[Lead(email=f"{name}{i}@example.com", first_name=f"P{i}") for i in range(count)],
        now=now,
    )
    guardrails = account.settings.guardrails  # approve_first_touch: every first step is held
    store.create_drafts(
        [
            draft_for_step(campaign_id=campaign.id, lead=lead, step=step, guardrails=guardrails)
            for lead in store.list_leads(campaign.id)
        ],
        now=now,
    )
    return campaign.id


@pytest.fixture
def window(qtbot: Any, qloop: qasync.QEventLoop, store: SqliteStore, tmp_path: Path) -> Iterator[MainWindow]:
    store.create_account(
        AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test"),
        now=datetime.now(UTC),
    )
    add_drafts(store, DRAFTS, name="spring")
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for)
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    main = MainWindow(runtime, window_state=state, use_tray=False)
    main.queue.model.page_size = PAGE
    main.resize(1280, 800)
    main.show()
    main.tabs.setCurrentWidget(main.queue)
    qtbot.waitUntil(lambda: not main.runner.busy and main.queue.model.total == DRAFTS, timeout=10_000)
    yield main
    if not main.is_shut_down():
        main.close()
        qtbot.waitUntil(main.is_shut_down, timeout=30_000)
    main.deleteLater()


def select_all(qtbot: Any, window: MainWindow) -> None:
    queue = window.queue
    queue.table.setFocus()
    qtbot.keyClick(queue.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: queue.all_selected is not None)


def confirm(qtbot: Any, window: MainWindow) -> None:
    box = window.queue._confirm
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    box.button(QMessageBox.StandardButton.Yes).click()


def pending(store: SqliteStore) -> int:
    return store.count_messages().get(MessageState.PENDING_APPROVAL, 0)


def test_ctrl_a_selects_every_waiting_draft_and_approve_takes_them_all_in_batches(
    qtbot: Any, window: MainWindow, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "BULK_BATCH", 64)  # a few batches out of 300
    queue = window.queue
    assert queue.model.rowCount() < DRAFTS  # only pages are loaded

    select_all(qtbot, window)
    assert queue.all_count == DRAFTS
    assert queue.all_note.isVisibleTo(queue) and queue.all_note.text() == "All 300 drafts selected"
    assert queue.clear_all_button.isVisibleTo(queue)
    assert queue.approve_button.text() == "&Approve 300"

    # a draft arriving after the selection is not part of "all"
    add_drafts(store, 1, name="late")

    progress_seen: list[tuple[int, int]] = []
    queue.progress.valueChanged.connect(lambda value: progress_seen.append((value, queue.progress.maximum())))
    qtbot.keyClick(queue.table, Qt.Key.Key_A)
    confirm(qtbot, window)
    qtbot.waitUntil(lambda: not queue.bulk_running, timeout=20_000)

    assert pending(store) == 1  # only the late draft still waits
    assert store.count_messages().get(MessageState.APPROVED, 0) == DRAFTS
    assert [value for value, _ in progress_seen if value] == [64, 128, 192, 256, 300]
    assert all(maximum == DRAFTS for _, maximum in progress_seen)
    approved = store.query_audit(results=[AuditResult.APPROVED], limit=None)
    assert len(approved) == DRAFTS and all(e.reason == "approved" and e.recipient for e in approved)
    assert queue.all_selected is None and not queue.progress.isVisible()
    assert ("info", "Approved 300 drafts.") in window.banners.messages()
    qtbot.waitUntil(lambda: queue.model.total == 1)


def test_reject_all_and_picking_a_row_by_hand_leaves_select_all(
    qtbot: Any, window: MainWindow, store: SqliteStore
) -> None:
    queue = window.queue
    select_all(qtbot, window)
    rect = queue.table.visualRect(queue.proxy.index(2, 1))
    qtbot.mouseClick(queue.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # one row by hand
    assert queue.all_selected is None and not queue.all_note.isVisibleTo(queue)
    assert queue.approve_button.text() == "&Approve"

    select_all(qtbot, window)
    qtbot.keyClick(queue.table, Qt.Key.Key_Escape)  # Esc: back to picking rows
    assert queue.all_selected is None and not queue.table.selectionModel().hasSelection()
    select_all(qtbot, window)
    queue.clear_all_button.click()
    assert queue.all_selected is None and not queue.clear_all_button.isVisibleTo(queue)

    select_all(qtbot, window)
    queue.table.verticalScrollBar().setValue(queue.table.verticalScrollBar().maximum())
    qtbot.waitUntil(lambda: queue.model.rowCount() > PAGE)  # a page loaded while scrolling stays selected
    assert queue.all_selected is not None

    qtbot.keyClick(queue.table, Qt.Key.Key_R)
    confirm(qtbot, window)
    qtbot.waitUntil(lambda: not queue.bulk_running, timeout=20_000)
    assert pending(store) == 0
    assert store.count_messages().get(MessageState.REJECTED, 0) == DRAFTS
    qtbot.waitUntil(lambda: queue.model.total == 0)
    assert queue.summary.text() == "All caught up"
