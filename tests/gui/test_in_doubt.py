"""Messages in doubt on the Deliverability tab: visible with a count and an explanation, settled with
"It arrived — mark sent" or "Send again", hidden once nothing is in doubt; a refusal shows a banner."""

from __future__ import annotations

from typing import Any

import pytest

from cadence.core import views as v
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui


def test_in_doubt_panel_lists_messages_and_settles_them(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.deliverability
    window.tabs.setCurrentWidget(tab)
    panel = tab.in_doubt
    qtbot.waitUntil(lambda: panel.isVisible() and len(panel.rows) == 2)
    assert panel.title.text().startswith("In doubt (2)")
    assert "may or may not have taken them" in panel.explanation.text()
    first, second = panel.rows
    assert first.item.recipient in first.title.text() and first.item.subject in first.title.text()
    assert first.item.message_id in first.detail.text()
    assert first.mark_sent_button.text() == "It arrived — mark sent"
    assert second.send_again_button.text() == "Send again"

    first.mark_sent_button.click()
    assert not first.mark_sent_button.isEnabled()  # no second click while it is being settled
    qtbot.waitUntil(lambda: "settle_in_doubt:sent" in runtime.calls)
    qtbot.waitUntil(lambda: len(panel.rows) == 1)
    assert panel.title.text().startswith("In doubt (1)")
    assert panel.rows[0].item.id == second.item.id
    assert any("marked as sent" in text for _level, text in window.banners.messages())

    panel.rows[0].send_again_button.click()
    qtbot.waitUntil(lambda: "settle_in_doubt:resend" in runtime.calls)
    qtbot.waitUntil(lambda: not panel.isVisible())
    assert panel.rows == []


def test_a_refused_settlement_shows_why_and_keeps_the_row(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.deliverability
    window.tabs.setCurrentWidget(tab)
    panel = tab.in_doubt
    qtbot.waitUntil(lambda: len(panel.rows) == 2)
    row = panel.rows[0]
    # settled elsewhere meanwhile (the CLI, another window): the runtime refuses, the window says so
    runtime._in_doubt = [m for m in runtime._in_doubt if m.id != row.item.id]
    row.send_again_button.click()
    qtbot.waitUntil(lambda: any("no longer in doubt" in text for _level, text in window.banners.messages()))
    qtbot.waitUntil(lambda: len(panel.rows) == 1)
    assert "settle_in_doubt:resend" not in runtime.calls


def test_panel_is_hidden_when_nothing_is_in_doubt(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    runtime._in_doubt = []
    window = make_window(runtime)
    tab = window.deliverability
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.view is not None and not window.runner.busy)
    assert not tab.in_doubt.isVisible()
    tab.in_doubt.set_items(
        [
            v.InDoubtView(
                id=i,
                recipient=f"p{i}@example.com",
                subject="Hello",
                message_id=f"<m{i}@example.com>",
                since=runtime.now(),
                account_email="me@example.com",
            )
            for i in range(40)
        ]
    )
    assert tab.in_doubt.isVisible()
    assert len(tab.in_doubt.rows) == 25 and "15 more" in tab.in_doubt.more.text()
