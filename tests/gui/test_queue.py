"""Approval queue: keys A / R / E and Ctrl+A over a selection, the badge, incremental loading."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from cadence.qt.main_window import MainWindow
from cadence.qt.tabs.queue import CONFIRM_BULK_FROM
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui


def open_queue(qtbot: Any, window: MainWindow) -> None:
    window.tabs.setCurrentWidget(window.queue)
    window.queue.table.setFocus()
    qtbot.waitUntil(lambda: window.queue.model.rowCount() > 0 or window.queue.model.total == 0)


def pending_ids(runtime: DemoRuntime) -> list[int]:
    return [d.id for d in runtime._drafts]


def test_a_approves_the_selected_draft(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=5)
    window = make_window(runtime)
    open_queue(qtbot, window)
    queue = window.queue
    queue.table.selectRow(2)
    chosen = queue.selected_drafts()[0]
    qtbot.keyClick(queue.table, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: chosen.id not in pending_ids(runtime))
    assert runtime.calls[-1] == "approve"
    assert len(runtime._drafts) == 4
    qtbot.waitUntil(lambda: queue.model.rowCount() == 4)
    assert chosen.id not in [d.id for d in queue.model.rows()]
    assert ("info", "Approved 1 draft.") in window.banners.messages()
    # the next draft is selected, ready for the next key press
    assert len(queue.selected_drafts()) == 1


def test_r_rejects_and_e_edits_then_approves(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=4)
    window = make_window(runtime)
    open_queue(qtbot, window)
    queue = window.queue
    queue.table.selectRow(0)
    first = queue.selected_drafts()[0]
    qtbot.keyClick(queue.table, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: queue.model.rowCount() == 3)
    assert first.id not in pending_ids(runtime)
    assert runtime.calls[-1] == "reject"

    queue.table.selectRow(0)
    target = queue.selected_drafts()[0]
    qtbot.keyClick(queue.table, Qt.Key.Key_E)
    dialog = queue._dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.body.toPlainText() == target.body
    dialog.subject.setText("")
    dialog.approve_button.click()
    assert dialog.error.isVisible() and "subject" in dialog.error.text()
    assert "edit_and_approve" not in runtime.calls
    dialog.subject.setText("A shorter subject")
    dialog.approve_button.click()
    qtbot.waitUntil(lambda: target.id not in pending_ids(runtime))
    assert runtime.calls[-1] == "edit_and_approve"
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_ctrl_a_then_a_approves_every_loaded_draft(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=12)
    window = make_window(runtime)
    open_queue(qtbot, window)
    queue = window.queue
    qtbot.keyClick(queue.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(queue.selected_drafts()) == 12
    assert queue.approve_button.text() == "&Approve 12"
    qtbot.keyClick(queue.table, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: not runtime._drafts)
    qtbot.waitUntil(lambda: queue.table_stack.currentWidget() is queue.empty)
    assert window.tabs.tabText(window.tabs.indexOf(queue)) == "&Approval queue"


def test_a_bulk_action_above_the_threshold_asks_first(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=CONFIRM_BULK_FROM + 3)
    window = make_window(runtime)
    open_queue(qtbot, window)
    queue = window.queue
    qtbot.keyClick(queue.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(queue.table, Qt.Key.Key_R)
    box = queue._confirm
    assert box is not None and box.isVisible()
    assert "reject" not in runtime.calls
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: not runtime._drafts)
    assert runtime.calls.count("reject") == 1


def test_overdue_drafts_are_flagged(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=6)
    window = make_window(runtime)
    open_queue(qtbot, window)
    model = window.queue.model
    flags = [model.index(row, 0).data() for row in range(model.rowCount())]
    overdue = [d.overdue for d in model.rows()]
    assert any(overdue) and not all(overdue)
    assert flags == ["⚑" if o else "" for o in overdue]
    assert "over 24 h" in window.queue.summary.text()


def test_tab_badge_follows_queue_events(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=3)
    window = make_window(runtime)
    index = window.tabs.indexOf(window.queue)
    assert window.tabs.tabText(index) == "&Approval queue (3)"
    runtime.add_pending(40)
    assert window.tabs.tabText(index) == "&Approval queue (43)"
    qtbot.waitUntil(lambda: window.queue.model.rowCount() == 43)


def test_a_queue_of_100000_opens_with_one_page_and_fetches_more_on_scroll(
    qtbot: Any, make_window: Any
) -> None:
    runtime = DemoRuntime(pending=100_000)
    window = make_window(runtime)
    queue = window.queue
    assert queue.model.total == 100_000
    # one page, or two when the view asks for more while its scroll range is still empty
    assert queue.model.page_size <= queue.model.rowCount() <= 2 * queue.model.page_size
    assert window.tabs.tabText(window.tabs.indexOf(queue)) == "&Approval queue (100,000)"
    open_queue(qtbot, window)
    queue.table.scrollToBottom()
    before = queue.model.rowCount()
    qtbot.waitUntil(lambda: queue.model.rowCount() >= before + queue.model.page_size)
    assert queue.model.rowCount() < 100_000
    loaded = queue.model.rows()
    assert [d.id for d in loaded] == [d.id for d in runtime._drafts[: len(loaded)]]
