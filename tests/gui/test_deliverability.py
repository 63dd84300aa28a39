"""Deliverability: the gauge's colour at its thresholds, cap bars, the pause banner and Resume."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QMessageBox

from cadence.core.views import CapUsage, RateSample
from cadence.qt.theme import Level, bounce_level, cap_level, level_color
from cadence.qt.widgets.cap_bar import CapBar
from cadence.qt.widgets.gauge import BounceGauge
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui


def colours_in(image: QImage) -> set[str]:
    found = set()
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            found.add(QColor(image.pixel(x, y)).name())
    return found


@pytest.mark.parametrize(
    ("events", "sample", "expected"),
    [
        (19, 1000, Level.OK),  # 1.9 %
        (20, 1000, Level.WARN),  # 2.0 %: amber starts here
        (30, 1000, Level.WARN),  # 3 %
        (49, 1000, Level.WARN),  # 4.9 %
        (50, 1000, Level.BAD),  # 5.0 %: at the breaker, the next bounce trips it
        (51, 1000, Level.BAD),  # 5.1 %
    ],
)
def test_gauge_paints_the_level_colour(qtbot: Any, events: int, sample: int, expected: Level) -> None:
    gauge = BounceGauge("Bounces, last 24 h")
    qtbot.addWidget(gauge)
    gauge.set_sample(RateSample(events, sample), breaker=0.05, min_sample=20)
    gauge.resize(gauge.sizeHint())
    assert gauge.level is expected
    painted = colours_in(gauge.grab().toImage())
    others = {Level.OK, Level.WARN, Level.BAD} - {expected}
    assert level_color(expected).name() in painted
    for other in others:
        assert level_color(other).name() not in painted, f"{other} colour painted for {events}/{sample}"
    assert f"{events} of {sample} sends" in gauge.accessibleName()


def test_gauge_without_sends_shows_no_level(qtbot: Any) -> None:
    gauge = BounceGauge("Bounces, last 24 h")
    qtbot.addWidget(gauge)
    gauge.set_sample(RateSample(0, 0), breaker=0.05, min_sample=20)
    assert gauge.level is Level.NONE
    assert gauge.caption() == "no sends yet"
    gauge.set_sample(RateSample(1, 8), breaker=0.05, min_sample=20)
    assert "breaker waits for 20" in gauge.caption()


def test_thresholds_follow_the_breaker_setting() -> None:
    assert bounce_level(0.025, breaker=0.03) is Level.WARN
    assert bounce_level(0.03, breaker=0.03) is Level.BAD
    assert bounce_level(None, breaker=0.05) is Level.NONE


@pytest.mark.parametrize(
    ("used", "limit", "expected"), [(5, 20, Level.OK), (15, 20, Level.WARN), (18, 20, Level.BAD)]
)
def test_cap_bar_turns_red_near_the_limit(qtbot: Any, used: int, limit: int, expected: Level) -> None:
    bar = CapBar(CapUsage("Today", used, limit))
    qtbot.addWidget(bar)
    bar.resize(300, bar.sizeHint().height())
    assert bar.level is expected is cap_level(used, limit)
    assert level_color(expected).name() in colours_in(bar.grab().toImage())


def test_pause_banner_shows_the_reason_and_resume_asks_while_the_cause_persists(
    qtbot: Any, make_window: Any
) -> None:
    runtime = DemoRuntime(paused=True)
    window = make_window(runtime)
    tab = window.deliverability
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.view is not None and tab.pause_banner.isVisible())
    assert "Bounce rate 6.1 %" in tab.pause_banner.reason.text()
    assert tab.pause_banner.persists.isVisible()
    assert window.status_panel.state.text().startswith("Paused")

    tab.pause_banner.resume_button.click()
    box = tab._confirm
    assert box is not None and box.isVisible()
    assert "resume" not in runtime.calls
    resume_anyway = next(b for b in box.buttons() if b.text() == "Resume anyway")
    resume_anyway.click()
    qtbot.waitUntil(lambda: "resume" in runtime.calls)
    qtbot.waitUntil(lambda: not tab.pause_banner.isVisible())
    qtbot.waitUntil(lambda: window.status_panel.state.text() == "Sending")


def test_resume_cancelled_keeps_the_pause(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(paused=True)
    window = make_window(runtime)
    tab = window.deliverability
    qtbot.waitUntil(lambda: tab.view is not None)
    tab.pause_banner.resume_button.click()
    assert tab._confirm is not None
    tab._confirm.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(50)
    assert "resume" not in runtime.calls
    assert not tab.pause_banner.isHidden()
    assert runtime._pause is not None


def test_breaker_notice_shows_a_banner_and_resume_goes_straight_through_when_the_cause_is_gone(
    qtbot: Any, make_window: Any
) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.deliverability
    window.tabs.setCurrentWidget(window.campaigns)
    runtime.trip_breaker(persists=False)
    assert any("Sending paused" in text for _level, text in window.banners.messages())
    qtbot.waitUntil(lambda: window.status_panel.state.text().startswith("Paused"))
    qtbot.waitUntil(lambda: tab.view is not None and tab.view.pause is not None)
    window.tabs.setCurrentWidget(tab)
    assert tab.pause_banner.isVisible()
    assert not tab.pause_banner.persists.isVisible()
    tab.pause_banner.resume_button.click()
    qtbot.waitUntil(lambda: "resume" in runtime.calls)
    assert tab._confirm is None
