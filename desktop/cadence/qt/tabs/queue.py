"""Approval queue: drafts held for a human, oldest first. A approves, R rejects, E edits then approves,
Ctrl+A selects every draft waiting (not only the loaded page: approve / reject then run over all of them in
batches, with progress). The preview shows the message exactly as it will be sent."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from cadence.core import views as v
from cadence.core.ports import BulkQueueActor
from cadence.qt import fmt
from cadence.qt.context import WindowContext
from cadence.qt.dialogs.edit_draft import EditDraftDialog
from cadence.qt.errors import handle_exception
from cadence.qt.models.paged import ROW_ROLE, Column, PagedTableModel, SortProxy
from cadence.qt.theme import LevelColors
from cadence.qt.widgets.common import EmptyState, heading, muted, setup_table

CONFIRM_BULK_FROM = 50


class QueueTab(QWidget):
    pending_changed = Signal(int)

    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.pending = 0
        self.colors = LevelColors()
        self.from_address = ""
        now = ctx.now
        columns = [
            Column(
                "",
                lambda d: "⚑" if d.overdue else "",
                sort_key=lambda d: d.overdue,
                tooltip=lambda d: "Waiting more than 24 hours" if d.overdue else "",
                foreground=lambda d: self.colors.warn if d.overdue else None,
                header_tip="Flagged: waiting more than 24 hours",
            ),
            Column("To", lambda d: d.recipient, tooltip=lambda d: f"{d.lead_name} <{d.recipient}>"),
            Column("Lead", lambda d: d.lead_name),
            Column("Campaign", lambda d: d.campaign_name),
            Column("Step", lambda d: str(d.step_index), sort_key=lambda d: d.step_index, align_right=True),
            Column("Subject", lambda d: d.subject),
            Column(
                "Held because", lambda d: ", ".join(fmt.HOLD_TEXT.get(r, r.value) for r in d.hold_reasons)
            ),
            Column(
                "Waiting",
                lambda d: fmt.age(d.waiting_since, now()),
                sort_key=lambda d: -d.waiting_since.timestamp(),
                tooltip=lambda d: f"Since {fmt.clock_time(d.waiting_since)}",
                align_right=True,
                bold=lambda d: d.overdue,
            ),
        ]
        self.model = PagedTableModel(
            columns,
            fetch=ctx.runtime.list_pending_drafts,
            count=ctx.runtime.count_pending,
            runner=ctx.runner,
            page_size=200,
            parent=self,
        )
        self.proxy = SortProxy(self.model, self)
        self.table = QTableView()
        setup_table(self.table, name="queueTable", accessible="Drafts waiting for approval", multi=True)
        self.table.setModel(self.proxy)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setHighlightSections(False)
        em = self.fontMetrics().height()
        for column, width in enumerate((1.6, 13, 8, 10, 3, 14, 7, 4.5)):
            self.table.setColumnWidth(column, int(em * width))
        header.setSectionResizeMode(5, header.ResizeMode.Stretch)

        # toolbar
        self.title = heading("Approval queue")
        self.summary = muted("", wrap=False)
        self.approve_button = QPushButton("&Approve")
        self.approve_button.setToolTip("Approve the selected drafts (A)")
        self.edit_button = QPushButton("&Edit and approve…")
        self.edit_button.setToolTip("Edit the selected draft, then approve it (E)")
        self.reject_button = QPushButton("&Reject")
        self.reject_button.setToolTip("Reject the selected drafts; they are never sent (R)")
        self.approve_button.clicked.connect(self.approve_selected)
        self.edit_button.clicked.connect(self.edit_selected)
        self.reject_button.clicked.connect(self.reject_selected)
        bar = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(self.title)
        titles.addWidget(self.summary)
        bar.addLayout(titles, 1)
        self.all_note = QLabel()
        self.all_note.setTextFormat(Qt.TextFormat.PlainText)
        bold_note = QFont(self.all_note.font())
        bold_note.setBold(True)
        self.all_note.setFont(bold_note)
        self.all_note.hide()
        self.clear_all_button = QPushButton("Clear se&lection")
        self.clear_all_button.setToolTip("Select nothing, then pick drafts by hand (Esc)")
        self.clear_all_button.clicked.connect(self.clear_select_all)
        self.clear_all_button.hide()
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Bulk action progress")
        self.progress.setMinimumWidth(int(em * 15))
        self.progress.hide()
        bar.addWidget(self.all_note)
        bar.addWidget(self.clear_all_button)
        bar.addWidget(self.progress)
        for button in (self.approve_button, self.edit_button, self.reject_button):
            bar.addWidget(button)

        # preview pane
        self.preview = QFrame()
        self.preview.setFrameShape(QFrame.Shape.StyledPanel)
        preview_layout = QVBoxLayout(self.preview)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.preview_from = QLabel()
        self.preview_to = QLabel()
        self.preview_subject = QLabel()
        self.preview_subject.setWordWrap(True)
        bold = QFont(self.preview_subject.font())
        bold.setBold(True)
        self.preview_subject.setFont(bold)
        self.preview_held = QLabel()
        self.preview_held.setWordWrap(True)
        for label in (self.preview_from, self.preview_to, self.preview_subject, self.preview_held):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("From:", self.preview_from)
        form.addRow("To:", self.preview_to)
        form.addRow("Subject:", self.preview_subject)
        form.addRow("Held:", self.preview_held)
        self.preview_body = QPlainTextEdit()
        self.preview_body.setReadOnly(True)
        self.preview_body.setAccessibleName("Message body as it will be sent")
        self.preview_body.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        preview_layout.addLayout(form)
        preview_layout.addWidget(self.preview_body, 1)
        self.preview_empty = EmptyState(
            "No draft selected", "Select a draft to see it exactly as it will be sent."
        )
        self.preview_stack = QStackedWidget()
        self.preview_stack.addWidget(self.preview_empty)
        self.preview_stack.addWidget(self.preview)

        self.empty = EmptyState(
            "Nothing waiting for approval",
            "Drafts held for review — first touches, links, prices, meeting requests — appear here.",
        )
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table_stack)
        self.splitter.addWidget(self.preview_stack)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([int(em * 50), int(em * 30)])

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)

        for key, slot in (
            ("A", self.approve_selected),
            ("R", self.reject_selected),
            ("E", self.edit_selected),
        ):
            shortcut = QShortcut(QKeySequence(key), self.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        select_all = QShortcut(QKeySequence.StandardKey.SelectAll, self)
        select_all.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        select_all.activated.connect(self.select_all)
        clear_all = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.table)
        clear_all.setContext(Qt.ShortcutContext.WidgetShortcut)
        clear_all.activated.connect(self.clear_select_all)  # Esc: no selection, "select all" included
        self.all_selected: v.DraftSelection | None = None  # "select all" over the whole queue
        self.all_count = 0
        self.bulk_running = False
        self.proxy.rowsInserted.connect(self._rows_arrived)

        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.loaded.connect(self._loaded)
        self.model.total_changed.connect(self._total_changed)
        self.model.modelReset.connect(self._selection_changed)
        ctx.bridge.queue_changed.connect(self._queue_event)
        ctx.batcher.register("queue", lambda: self.model.reload(keep_loaded=True))
        ctx.restore_header("queue", header)
        ctx.restore_splitter("queue", self.splitter)
        self._dialog: EditDraftDialog | None = None
        self._confirm: QMessageBox | None = None
        self._update_buttons()

    # --- loading ------------------------------------------------------------------------------------

    def load(self) -> None:
        self.model.reload()

    def save_state(self) -> None:
        self.ctx.save_header("queue", self.table.horizontalHeader())
        self.ctx.save_splitter("queue", self.splitter)

    def _queue_event(self, pending: int) -> None:
        self._set_pending(pending)
        self.ctx.batcher.mark("queue")

    def _set_pending(self, pending: int) -> None:
        if pending != self.pending:
            self.pending = pending
            self.pending_changed.emit(pending)
        self._update_summary()

    def _total_changed(self, total: int) -> None:
        self._set_pending(total)

    def _loaded(self) -> None:
        self.table_stack.setCurrentWidget(self.empty if self.model.total == 0 else self.table)
        self.preview_stack.setVisible(self.model.total > 0)
        self._update_summary()

    def _update_summary(self) -> None:
        selected = len(self.selected_drafts())
        loaded = self.model.rowCount()
        if not self.pending:
            self.summary.setText("All caught up")
            return
        parts = [fmt.count(self.pending, "draft") + " waiting"]
        overdue = sum(1 for d in self.model.rows() if d.overdue)
        if overdue:
            parts.append(f"{overdue:,} over 24 h")
        if loaded < self.pending:
            parts.append(f"{loaded:,} loaded")
        if self.all_selected is None and selected:
            parts.append(f"{selected:,} selected")
        self.summary.setText(" · ".join(parts))

    # --- selection and preview -----------------------------------------------------------------------

    def selected_drafts(self) -> list[v.PendingDraft]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(row, 0).data(ROW_ROLE) for row in rows]

    def select_all(self) -> None:
        """Ctrl+A: the loaded rows, and when more drafts wait than are loaded (and the runtime can act on the
        whole queue) every draft waiting now; drafts arriving later are not part of it."""
        self.table.selectAll()
        runtime = self.ctx.runtime
        total = self.model.total
        if self.bulk_running or total <= self.model.rowCount() or not isinstance(runtime, BulkQueueActor):
            return

        def newest(last: list[v.PendingDraft]) -> None:
            if not last or not self._all_rows_selected():
                return
            newest_id = max([last[0].id, *(d.id for d in self.model.rows())])
            self.all_selected = v.DraftSelection(through_id=newest_id)
            self.all_count = max(total, self.model.rowCount())
            self.all_note.setText(f"All {self.all_count:,} drafts selected")
            self.all_note.show()
            self.clear_all_button.show()
            self._update_buttons()
            self._update_summary()

        self.ctx.runner.run(runtime.list_pending_drafts(total - 1, 1), on_success=newest)

    def clear_select_all(self) -> None:
        self.all_selected = None
        self.all_note.hide()
        self.clear_all_button.hide()
        self.table.clearSelection()
        self._update_buttons()
        self._update_summary()

    def _all_rows_selected(self) -> bool:
        return len(self.table.selectionModel().selectedRows()) >= self.proxy.rowCount()

    def _rows_arrived(self, *_args: object) -> None:
        if self.all_selected is not None:
            self.table.selectAll()  # a page loaded while scrolling is part of "all"

    def _selection_changed(self, *_args: QItemSelection) -> None:
        if self.all_selected is not None and not self._all_rows_selected():
            self.all_selected = None  # the user picked rows by hand
            self.all_note.hide()
            self.clear_all_button.hide()
        drafts = self.selected_drafts()
        self._update_buttons()
        self._update_summary()
        current = self.table.currentIndex()
        draft = current.data(ROW_ROLE) if current.isValid() else None
        if draft is None and drafts:
            draft = drafts[0]
        if draft is None or draft not in drafts:
            draft = drafts[0] if drafts else None
        self.show_preview(draft)

    def show_preview(self, draft: v.PendingDraft | None) -> None:
        if draft is None:
            self.preview_stack.setCurrentWidget(self.preview_empty)
            return
        self.preview_stack.setCurrentWidget(self.preview)
        self.preview_from.setText(self.from_address or "Your account")
        self.preview_to.setText(f"{draft.lead_name} <{draft.recipient}>")
        self.preview_subject.setText(draft.subject)
        held = ", ".join(fmt.HOLD_TEXT.get(r, r.value) for r in draft.hold_reasons)
        waited = fmt.age(draft.waiting_since, self.ctx.now())
        text = f"{held} · waiting {waited} · {draft.campaign_name}, step {draft.step_index}"
        if draft.overdue:
            text = "⚑ " + text
        self.preview_held.setText(text)
        self.preview_body.setPlainText(draft.body)

    def set_from_address(self, sender: str) -> None:
        self.from_address = sender
        current = self.table.currentIndex()
        if current.isValid():
            self.show_preview(current.data(ROW_ROLE))

    def _update_buttons(self) -> None:
        count = self.all_count if self.all_selected is not None else len(self.selected_drafts())
        self.approve_button.setEnabled(count > 0 and not self.bulk_running)
        self.reject_button.setEnabled(count > 0 and not self.bulk_running)
        self.edit_button.setEnabled(count == 1 and not self.bulk_running)
        self.approve_button.setText(f"&Approve {count:,}" if count > 1 else "&Approve")
        self.reject_button.setText(f"&Reject {count:,}" if count > 1 else "&Reject")

    # --- actions ------------------------------------------------------------------------------------

    def approve_selected(self) -> None:
        if self.all_selected is not None:
            self._act_on_all("approve")
        else:
            self._act("approve", self.selected_drafts())

    def reject_selected(self) -> None:
        if self.all_selected is not None:
            self._act_on_all("reject")
        else:
            self._act("reject", self.selected_drafts())

    def _act_on_all(self, verb: str) -> None:
        selection, count = self.all_selected, self.all_count
        if selection is None or self.bulk_running:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"{verb.capitalize()} all {count:,} drafts?",
            f"{verb.capitalize()} every draft waiting for approval ({count:,})?"
            + (" They will be sent within your caps." if verb == "approve" else " They will never be sent."),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.accepted.connect(lambda: self._run_on_all(verb, selection, count))
        self._confirm = box
        box.open()

    def _run_on_all(self, verb: str, selection: v.DraftSelection, count: int) -> None:
        runtime = self.ctx.runtime
        if not isinstance(runtime, BulkQueueActor):
            return
        self.bulk_running = True
        doing = "Approving" if verb == "approve" else "Rejecting"
        self.progress.setRange(0, max(1, count))
        self.progress.setValue(0)
        self.progress.setFormat(f"{doing} 0 of {count:,}")
        self.progress.show()
        self.clear_all_button.hide()
        self._update_buttons()

        def progress(done: int, total: int) -> None:
            if isValid(self.progress):
                self.progress.setMaximum(max(1, total))
                self.progress.setValue(done)
                self.progress.setFormat(f"{doing} {done:,} of {total:,}")

        def finish() -> None:
            self.bulk_running = False
            self.progress.hide()
            self.clear_select_all()
            self.model.reload()

        def done(result: v.BulkResult) -> None:
            finish()
            past = "Approved" if verb == "approve" else "Rejected"
            text = f"{past} {fmt.count(result.done, 'draft')}."
            if result.failed:
                text += f" {len(result.failed):,} could not be changed: {result.failed[0].reason}."
                self.ctx.messages.warning(text)
            else:
                self.ctx.messages.info(text)

        def failed(exc: BaseException) -> None:
            finish()
            handle_exception(exc)

        self.ctx.runner.run(
            runtime.act_on_pending(selection, approve=verb == "approve", on_progress=progress),
            on_success=done,
            on_error=failed,
        )

    def _act(self, verb: str, drafts: Sequence[v.PendingDraft]) -> None:
        if not drafts:
            return
        if len(drafts) >= CONFIRM_BULK_FROM:
            box = QMessageBox(
                QMessageBox.Icon.Question,
                f"{verb.capitalize()} {len(drafts):,} drafts?",
                f"{verb.capitalize()} {len(drafts):,} drafts at once?"
                + (
                    " They will be sent within your caps."
                    if verb == "approve"
                    else " They will never be sent."
                ),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                self,
            )
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.accepted.connect(lambda: self._run(verb, drafts))
            self._confirm = box
            box.open()
            return
        self._run(verb, drafts)

    def _run(self, verb: str, drafts: Sequence[v.PendingDraft]) -> None:
        ids = [d.id for d in drafts]
        call = self.ctx.runtime.approve if verb == "approve" else self.ctx.runtime.reject
        next_row = min(
            self.table.selectionModel().selectedRows(), key=lambda i: i.row(), default=QModelIndex()
        )

        def done(result: v.BulkResult) -> None:
            self.model.remove_keys(set(ids) - {f.id for f in result.failed})
            past = "Approved" if verb == "approve" else "Rejected"
            text = f"{past} {fmt.count(result.done, 'draft')}."
            if result.failed:
                text += f" {len(result.failed)} could not be changed: {result.failed[0].reason}."
                self.ctx.messages.warning(text)
            else:
                self.ctx.messages.info(text)
            if next_row.isValid() and self.proxy.rowCount():
                row = min(next_row.row(), self.proxy.rowCount() - 1)
                self.table.selectRow(row)

        self.ctx.runner.run(call(ids), on_success=done)

    def edit_selected(self) -> None:
        drafts = self.selected_drafts()
        if len(drafts) != 1:
            return
        dialog = EditDraftDialog(drafts[0], self)
        dialog.submitted.connect(self._save_edit)
        self._dialog = dialog
        dialog.open()

    def _save_edit(self, draft_id: int, subject: str, body: str) -> None:
        dialog = self._dialog

        def done(_: None) -> None:
            self.model.remove_keys([draft_id])
            self.ctx.messages.info("Edited and approved.")
            if dialog is not None and isValid(dialog):
                dialog.accept()

        def failed(exc: BaseException) -> None:
            if dialog is not None and isValid(dialog) and dialog.isVisible():
                dialog.show_error(str(exc))
            else:
                handle_exception(exc)

        self.ctx.runner.run(
            self.ctx.runtime.edit_and_approve(draft_id, subject=subject, body=body),
            on_success=done,
            on_error=failed,
        )
