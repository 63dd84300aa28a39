"""Activity: the audit log with SMTP and IMAP events, newest first; filter by kind, severity and text;
export what the filter shows to CSV."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.qt import csvio, fmt
from cadence.qt.context import WindowContext
from cadence.qt.models.paged import Column, PagedTableModel, SortProxy
from cadence.qt.theme import Level, LevelColors
from cadence.qt.widgets.common import EmptyState, heading, muted, setup_table

KIND_TEXT = {
    v.ActivityKind.AUDIT: "Decision",
    v.ActivityKind.SMTP: "Sending",
    v.ActivityKind.IMAP: "Inbox",
    v.ActivityKind.ERROR: "Error",
}
SEVERITY_LEVEL = {v.Severity.INFO: None, v.Severity.WARNING: Level.WARN, v.Severity.ERROR: Level.BAD}


class ActivityTab(QWidget):
    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.filter = v.ActivityFilter()

        self.colors = colors = LevelColors()

        def colour(entry: v.ActivityEntry) -> QColor | None:
            level = SEVERITY_LEVEL[entry.severity]
            return colors[level] if level is not None else None

        columns = [
            Column(
                "Time",
                lambda e: fmt.local(e.at).strftime("%d %b %H:%M"),
                sort_key=lambda e: e.at.timestamp(),
            ),
            Column("Kind", lambda e: KIND_TEXT[e.kind], foreground=colour),
            Column("What happened", lambda e: e.summary, tooltip=lambda e: e.summary, foreground=colour),
            Column("Detail", lambda e: e.detail, tooltip=lambda e: e.detail),
        ]
        self.model = PagedTableModel(
            columns,
            fetch=lambda offset, limit: ctx.runtime.list_activity(self.filter, offset, limit),
            count=lambda: ctx.runtime.count_activity(self.filter),
            runner=ctx.runner,
            parent=self,
        )
        self.proxy = SortProxy(self.model, self)
        self.table = QTableView()
        setup_table(self.table, name="activityTable", accessible="Activity log", multi=True)
        self.table.setModel(self.proxy)
        em = self.fontMetrics().height()
        for column, width in enumerate((7.5, 5.5, 26)):
            self.table.setColumnWidth(column, int(em * width))
        self.table.horizontalHeader().setStretchLastSection(True)
        ctx.restore_header("activity", self.table.horizontalHeader())

        self.kind_boxes: dict[v.ActivityKind, QCheckBox] = {}
        filters = QHBoxLayout()
        for kind in v.ActivityKind:
            box = QCheckBox(KIND_TEXT[kind])
            box.setChecked(True)
            box.toggled.connect(self._filter_changed)
            self.kind_boxes[kind] = box
            filters.addWidget(box)
        self.severity = QComboBox()
        self.severity.addItem("All levels", v.Severity.INFO)
        self.severity.addItem("Warnings and errors", v.Severity.WARNING)
        self.severity.addItem("Errors only", v.Severity.ERROR)
        self.severity.setAccessibleName("Minimum level")
        self.severity.currentIndexChanged.connect(self._filter_changed)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by address, code or text")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter activity")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._filter_changed)
        self.search.textChanged.connect(lambda _t: self._timer.start())
        self.export_button = QPushButton("E&xport CSV…")
        self.export_button.clicked.connect(self.choose_export)
        filters.addSpacing(em)
        filters.addWidget(self.severity)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.export_button)

        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(heading("Activity"))
        self.summary = muted(wrap=False)
        titles.addWidget(self.summary)

        self.empty = EmptyState(
            "No activity", "Sends, replies, bounces and every decision Cadence makes show up here."
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.addLayout(titles)
        layout.addLayout(filters)
        layout.addWidget(self.stack, 1)

        self.model.loaded.connect(self._loaded)
        ctx.bridge.activity_added.connect(lambda _e: ctx.batcher.mark("activity"))
        ctx.batcher.register("activity", lambda: self.model.reload(keep_loaded=True))
        self._dialogs: list[QWidget] = []

    def load(self) -> None:
        self.model.reload()

    def save_state(self) -> None:
        self.ctx.save_header("activity", self.table.horizontalHeader())

    def _filter_changed(self, *_args: object) -> None:
        kinds = frozenset(kind for kind, box in self.kind_boxes.items() if box.isChecked())
        self.filter = v.ActivityFilter(
            kinds=kinds, text=self.search.text().strip(), min_severity=v.Severity(self.severity.currentData())
        )
        self.model.reload()

    def _loaded(self) -> None:
        filtered = self.filter != v.ActivityFilter()
        if not self.model.total and filtered:
            self.empty.set_text("Nothing matches", "Widen the filter to see more.")
        self.stack.setCurrentWidget(self.table if self.model.total else self.empty)
        self.summary.setText(fmt.count(self.model.total, "event") + (" (filtered)" if filtered else ""))

    def choose_export(self) -> None:
        dialog = csvio.ask_path(
            self, title="Export activity", save=True, on_chosen=self.export_file, suggested="activity.csv"
        )
        self._dialogs.append(dialog)

    def export_file(self, path: Path) -> None:
        current = self.filter

        async def run() -> int:
            entries = await csvio.collect(
                lambda offset, limit: self.ctx.runtime.list_activity(current, offset, limit)
            )
            rows = [
                (e.at.isoformat(), e.kind.value, e.severity.value, e.account_email, e.summary, e.detail)
                for e in entries
            ]
            await csvio.write_csv(path, ("at", "kind", "severity", "account", "summary", "detail"), rows)
            return len(rows)

        self.ctx.runner.run(
            run(), on_success=lambda n: self.ctx.messages.info(f"Exported {fmt.count(n, 'event')} to {path}.")
        )
