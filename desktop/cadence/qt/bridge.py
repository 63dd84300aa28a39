"""Runtime events → Qt signals on the GUI thread (Electrum's listener pattern), plus a batching timer so
dashboards redraw at most a few times a second however many events arrive."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from cadence.core import views as v
from cadence.core.ports import RuntimeApi


class EventBridge(QObject):
    queue_changed = Signal(int)
    campaigns_changed = Signal()
    suppressions_changed = Signal()
    deliverability_changed = Signal()
    status_changed = Signal(object)  # StatusView
    activity_added = Signal(object)  # ActivityEntry
    notice = Signal(object)  # Notice

    _incoming = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = None
        # Emitted from a worker thread this is queued onto the GUI thread; from the GUI thread it is direct.
        self._incoming.connect(self._dispatch, Qt.ConnectionType.AutoConnection)

    def attach(self, runtime: RuntimeApi) -> None:
        self.detach()
        self._unsubscribe = runtime.subscribe(self._incoming.emit)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @Slot(object)
    def _dispatch(self, event: object) -> None:
        match event:
            case v.QueueChanged(pending=pending):
                self.queue_changed.emit(pending)
            case v.CampaignsChanged():
                self.campaigns_changed.emit()
            case v.SuppressionsChanged():
                self.suppressions_changed.emit()
            case v.DeliverabilityChanged():
                self.deliverability_changed.emit()
            case v.StatusChanged(status=status):
                self.status_changed.emit(status)
            case v.ActivityAdded(entry=entry):
                self.activity_added.emit(entry)
            case v.Notice():
                self.notice.emit(event)


class RedrawBatcher(QObject):
    """Marks areas dirty; a single GUI timer calls each dirty area's redraw once per interval."""

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = 250) -> None:
        super().__init__(parent)
        self._redraw: dict[str, Callable[[], None]] = {}
        self._dirty: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    def register(self, area: str, redraw: Callable[[], None]) -> None:
        self._redraw[area] = redraw

    def mark(self, area: str) -> None:
        self._dirty.add(area)
        if not self._timer.isActive():
            self._timer.start()

    def is_dirty(self, area: str) -> bool:
        return area in self._dirty

    @Slot()
    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for area in sorted(dirty):
            redraw = self._redraw.get(area)
            if redraw is not None:
                redraw()

    def stop(self) -> None:
        self._timer.stop()
        self._dirty.clear()
