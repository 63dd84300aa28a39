"""The event bridge delivers runtime events on the GUI thread; the batcher turns bursts into one redraw."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from PySide6.QtCore import QThread

from cadence.core import views as v
from cadence.qt.bridge import EventBridge, RedrawBatcher
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui


def test_events_from_a_worker_thread_arrive_on_the_gui_thread(qtbot: Any, qloop: Any) -> None:
    runtime = DemoRuntime(pending=0)
    bridge = EventBridge()
    bridge.attach(runtime)
    seen: list[tuple[int, bool]] = []
    gui_thread = QThread.currentThread()
    bridge.queue_changed.connect(
        lambda pending: seen.append((pending, QThread.currentThread() is gui_thread))
    )

    worker = threading.Thread(target=lambda: runtime.emit(v.QueueChanged(pending=7)))
    worker.start()
    worker.join()
    assert seen == []  # queued, not called on the worker
    qtbot.waitUntil(lambda: seen == [(7, True)])
    bridge.detach()
    runtime.emit(v.QueueChanged(pending=8))
    qtbot.wait(20)
    assert seen == [(7, True)]
    bridge.deleteLater()


def test_each_event_kind_reaches_its_signal(qtbot: Any, qloop: Any) -> None:
    runtime = DemoRuntime(pending=0)
    bridge = EventBridge()
    bridge.attach(runtime)
    got: list[str] = []
    bridge.campaigns_changed.connect(lambda: got.append("campaigns"))
    bridge.suppressions_changed.connect(lambda: got.append("suppressions"))
    bridge.deliverability_changed.connect(lambda: got.append("deliverability"))
    bridge.status_changed.connect(lambda s: got.append(f"status:{s.state.value}"))
    bridge.notice.connect(lambda n: got.append(f"notice:{n.kind.value}"))
    runtime.emit(v.CampaignsChanged(3))
    runtime.emit(v.SuppressionsChanged())
    runtime.emit(v.DeliverabilityChanged())
    runtime.emit(v.StatusChanged(v.StatusView(v.SendingState.PAUSED, 1, 2, v.RateSample(0, 1), 0)))
    runtime.emit(v.Notice(v.NoticeKind.AUTH_FAILURE, "Login failed", "535 5.7.8"))
    assert got == ["campaigns", "suppressions", "deliverability", "status:paused", "notice:auth_failure"]
    bridge.detach()
    bridge.deleteLater()


def test_a_burst_of_marks_redraws_each_area_once(qtbot: Any, qloop: Any) -> None:
    batcher = RedrawBatcher(interval_ms=30)
    redraws: list[str] = []
    batcher.register("queue", lambda: redraws.append("queue"))
    batcher.register("activity", lambda: redraws.append("activity"))
    for _ in range(500):
        batcher.mark("queue")
        batcher.mark("activity")
    assert redraws == []
    assert batcher.is_dirty("queue")
    qtbot.waitUntil(lambda: len(redraws) == 2)
    qtbot.wait(60)
    assert sorted(redraws) == ["activity", "queue"]
    assert not batcher.is_dirty("queue")
    batcher.deleteLater()


def test_window_redraws_the_queue_once_for_many_events(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(pending=2)
    window = make_window(runtime)
    reloads: list[int] = []
    window.queue.model.modelReset.connect(lambda: reloads.append(1))
    for _ in range(50):
        runtime.add_pending(1)
    qtbot.waitUntil(lambda: window.queue.model.rowCount() == 52)
    qtbot.wait(100)
    assert len(reloads) == 1
