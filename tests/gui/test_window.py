"""The rest of the window: status line, suppression, activity, settings, errors, remembered layout."""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from cadence.core import views as v
from cadence.core.model import SuppressionReason
from cadence.core.ports import UserFacingError
from cadence.core.views import ActivityKind
from cadence.qt.errors import CrashHandler, handle_exception, messages
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui


def test_status_line_shows_state_sends_next_send_and_bounce_rate(make_window: Any) -> None:
    window = make_window(DemoRuntime())
    text = window.status_panel.text()
    assert text.startswith("Sending · Today 14 / 20 · Next send ")
    assert text.endswith("Bounces 24 h 3.2 %")


def test_add_and_remove_a_suppression_with_confirmation(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.suppression
    window.tabs.setCurrentWidget(tab)
    total = tab.model.total
    tab.add_value.setText("  Someone@Competitor.example ")
    tab.add_reason.setCurrentIndex(tab.add_reason.findData(SuppressionReason.NOT_INTERESTED))
    tab.add_button.click()
    qtbot.waitUntil(lambda: tab.model.total == total + 1)
    first = tab.model.row_at(0)
    assert first.value == "someone@competitor.example" and first.reason is SuppressionReason.NOT_INTERESTED
    assert tab.add_value.text() == ""

    tab.table.selectRow(tab.proxy.mapFromSource(tab.model.index(0, 0)).row())
    assert tab.remove_button.isEnabled()
    tab.remove_button.click()
    box = next(d for d in tab._dialogs if isinstance(d, QMessageBox))
    assert "someone@competitor.example" in box.text()
    remove = next(b for b in box.buttons() if b.text() == "Remove")
    remove.click()
    qtbot.waitUntil(lambda: tab.model.total == total)
    assert runtime.calls[-1] == "remove_suppression"


def test_a_bad_suppression_shows_a_banner_not_a_crash(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.suppression
    tab.add_value.setText("not valid at all")
    tab.add_button.click()
    qtbot.waitUntil(lambda: bool(window.banners.messages()))
    level, text = window.banners.messages()[-1]
    assert level == "error" and "neither an address nor a domain" in text
    assert tab.add_value.text() == "not valid at all"


def test_search_filters_and_forget_keeps_only_a_hash(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.suppression
    qtbot.waitUntil(lambda: tab.model.total > 0)
    target = tab.model.row_at(3).value
    tab.search.setText(target)
    qtbot.waitUntil(lambda: tab.model.total == 1)
    assert tab.summary.text().endswith(f"matching “{target}”")
    tab._forget(target)
    qtbot.waitUntil(lambda: tab.model.total == 0)
    assert tab.stack.currentWidget() is tab.empty
    assert all(s.value != target for s in runtime._suppressions)
    assert runtime._suppressions[0].reason is SuppressionReason.ERASED


def test_export_suppressions_and_filtered_activity_to_csv(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    out = tmp_path / "suppressions.csv"
    window.suppression.export_file(out)
    qtbot.waitUntil(out.exists)
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["value", "kind", "reason", "added_at", "detail"]
    assert len(rows) - 1 == len(runtime._suppressions)

    activity = window.activity
    for kind, box in activity.kind_boxes.items():
        box.setChecked(kind is ActivityKind.ERROR)
    qtbot.waitUntil(
        lambda: activity.model.total == sum(1 for e in runtime._activity if e.kind is ActivityKind.ERROR)
    )
    log = tmp_path / "activity.csv"
    activity.export_file(log)
    qtbot.waitUntil(log.exists)
    exported = list(csv.DictReader(log.open(encoding="utf-8")))
    assert exported and {row["kind"] for row in exported} == {"error"}


def test_settings_dialog_validates_then_saves(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    dialog = window._show_settings(runtime.account)
    dialog.hours_end.setTime(dialog.hours_start.time().addSecs(-3600))
    dialog.save_button.click()
    assert dialog.error.isVisible() and "end after they start" in dialog.error.text()
    assert "save_account_settings" not in runtime.calls
    dialog.hours_end.setTime(dialog.hours_start.time().addSecs(9 * 3600))
    dialog.daily_cap.setValue(40)
    dialog.password.setText("app-password-123")
    with qtbot.waitSignal(dialog.saved):
        dialog.save_button.click()
    assert runtime.account.guardrails.daily_cap == 40
    assert runtime.account.guardrails.hours_end_min - runtime.account.guardrails.hours_start_min == 9 * 60
    assert dialog.password.text() == ""
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_user_errors_go_to_the_banner_and_bugs_to_one_crash_dialog_per_kind(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window(DemoRuntime())
    handle_exception(UserFacingError("The SMTP server refused the password."))
    assert ("error", "The SMTP server refused the password.") in window.banners.messages()

    crash = CrashHandler(parent=lambda: window)
    for _ in range(3):
        try:
            raise KeyError("boom")
        except KeyError:
            crash(*sys.exc_info())  # type: ignore[arg-type]
    try:
        raise ZeroDivisionError
    except ZeroDivisionError:
        crash(*sys.exc_info())  # type: ignore[arg-type]
    assert crash.shown == ["KeyError", "ZeroDivisionError"]
    for box in list(crash._dialogs):
        box.close()


def test_messages_posted_before_a_window_exists_are_delivered(make_window: Any) -> None:
    messages().warning("Database was migrated to version 3.")
    window = make_window(DemoRuntime())
    assert ("warning", "Database was migrated to version 3.") in window.banners.messages()


def test_geometry_and_header_state_are_remembered(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    state = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    window = make_window(DemoRuntime(pending=3), state=state)
    window.resize(1100, 700)
    window.queue.table.setColumnWidth(1, 333)
    window.deliverability.deferred_table.setColumnWidth(0, 222)
    window.tabs.setCurrentWidget(window.activity)
    window.close()
    qtbot.waitUntil(window.is_shut_down)
    assert state.value("window/geometry") is not None

    again = make_window(
        DemoRuntime(pending=3), state=QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    )
    assert again.queue.table.columnWidth(1) == 333
    assert again.deliverability.deferred_table.columnWidth(0) == 222
    assert again.tabs.currentWidget() is again.activity
    assert again.size().width() == 1280  # the fixture resizes after restoring; the stored value was read
    assert not (tmp_path / "layout.ini").read_text().count("daily_cap")


def test_closing_shuts_the_runtime_down(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    window.close()
    qtbot.waitUntil(window.is_shut_down)
    assert runtime._closed
    assert not runtime._listeners


def test_import_suppressions_from_csv_reports_skipped_lines(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.suppression
    before = tab.model.total
    source = tmp_path / "do-not-contact.csv"
    source.write_text("email\nnew.person@acme-tools.example\nrivals.example\nnot valid\n", encoding="utf-8")
    tab.import_file(source)
    qtbot.waitUntil(lambda: tab.model.total == before + 2)
    level, text = window.banners.messages()[-1]
    assert level == "warning"
    assert text.startswith("Imported 2 entries from do-not-contact.csv. 1 skipped (first: line 3:")
    values = {s.value for s in runtime._suppressions}
    assert {"new.person@acme-tools.example", "rivals.example"} <= values


def test_a_missing_import_file_is_a_banner_not_a_crash(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    window = make_window(DemoRuntime())
    window.suppression.import_file(tmp_path / "gone.csv")
    qtbot.waitUntil(lambda: bool(window.banners.messages()))
    level, text = window.banners.messages()[-1]
    assert level == "error" and "gone.csv" in text


def test_switching_to_a_dark_palette_recolours_the_semantic_colours(qtbot: Any, make_window: Any) -> None:
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    from cadence.qt.theme import Level, level_color

    window = make_window(DemoRuntime())
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    original = app.palette()
    light_warn = window.queue.colors.warn.name()
    dark = QPalette(original)
    dark.setColor(QPalette.ColorRole.Window, QColor("#202020"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#eeeeee"))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(lambda: window.queue.colors.warn.name() != light_warn)
        assert window.queue.colors.warn.name() == level_color(Level.WARN, dark).name()
    finally:
        app.setPalette(original)


def test_a_send_event_redraws_the_status_bar_without_a_status_event(qtbot: Any, make_window: Any) -> None:
    class SendingRuntime(DemoRuntime):
        sent = 14

        async def status(self) -> v.StatusView:
            return replace(await super().status(), sent_today=self.sent)

    runtime = SendingRuntime()
    window = make_window(runtime)
    qtbot.waitUntil(lambda: "Today 14 / " in window.status_panel.text())
    runtime.sent = 15
    runtime.emit(v.DeliverabilityChanged())  # what a send, a bounce or a pause publishes
    qtbot.waitUntil(lambda: "Today 15 / " in window.status_panel.text(), timeout=3000)


def test_a_cold_cap_above_30_advises_a_secondary_sending_domain(make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    dialog = window._show_settings(runtime.account)
    dialog.daily_cap.setValue(30)
    assert dialog.cap_advice.isHidden()
    dialog.daily_cap.setValue(31)
    assert not dialog.cap_advice.isHidden()
    assert "secondary domain" in dialog.cap_advice.text()
    dialog.reject()
