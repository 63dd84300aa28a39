"""Suppression list: search, add, remove (confirmed), open the evidence (the raw bounce, reply or SMTP
transcript), import / export CSV, and "Forget this person"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.core.model import SuppressionReason
from cadence.core.ports import SuppressionEvidenceReader
from cadence.qt import csvio, fmt
from cadence.qt.context import WindowContext
from cadence.qt.models.paged import ROW_ROLE, Column, PagedTableModel, SortProxy
from cadence.qt.widgets.common import EmptyState, heading, muted, setup_table

ADDABLE_REASONS = (
    SuppressionReason.MANUAL,
    SuppressionReason.UNSUBSCRIBE,
    SuppressionReason.NOT_INTERESTED,
    SuppressionReason.HARD_BOUNCE,
    SuppressionReason.COMPLAINT,
)


class SuppressionTab(QWidget):
    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.query = ""
        columns = [
            Column(
                "Address or domain",
                lambda s: ("Whole domain: " if s.is_domain else "") + s.value,
                sort_key=lambda s: s.value,
            ),
            Column("Reason", lambda s: fmt.SUPPRESSION_TEXT.get(s.reason, s.reason.value)),
            Column("Added", lambda s: fmt.day_text(s.added_at), sort_key=lambda s: s.added_at.timestamp()),
            Column("Detail", lambda s: s.detail, tooltip=lambda s: s.detail),
        ]
        self.model = PagedTableModel(
            columns,
            fetch=lambda offset, limit: ctx.runtime.list_suppressions(self.query, offset, limit),
            count=lambda: ctx.runtime.count_suppressions(self.query),
            runner=ctx.runner,
            key=lambda s: s.value,
            parent=self,
        )
        self.proxy = SortProxy(self.model, self)
        self.table = QTableView()
        setup_table(
            self.table, name="suppressionTable", accessible="Suppressed addresses and domains", multi=True
        )
        self.table.setModel(self.proxy)
        em = self.fontMetrics().height()
        for column, width in enumerate((22, 13, 8)):
            self.table.setColumnWidth(column, int(em * width))
        self.table.horizontalHeader().setStretchLastSection(True)
        ctx.restore_header("suppression", self.table.horizontalHeader())

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search addresses, domains or reasons")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the suppression list")
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(250)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())

        self.add_value = QLineEdit()
        self.add_value.setPlaceholderText("name@company.com or company.com")
        self.add_value.setAccessibleName("Address or domain to suppress")
        self.add_reason = QComboBox()
        for reason in ADDABLE_REASONS:
            self.add_reason.addItem(fmt.SUPPRESSION_TEXT[reason], reason)
        self.add_reason.setAccessibleName("Reason")
        self.add_button = QPushButton("&Add")
        self.add_button.clicked.connect(self.add)
        self.add_value.returnPressed.connect(self.add)

        self.remove_button = QPushButton("&Remove…")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.confirm_remove)
        self.evidence_button = QPushButton("Open &evidence…")
        self.evidence_button.setToolTip("The bounce, reply or server answer this entry was added on (Enter)")
        self.evidence_button.setEnabled(False)
        self.evidence_button.clicked.connect(self.open_evidence)
        self.table.activated.connect(lambda _index: self.open_evidence())
        self.import_button = QPushButton("&Import CSV…")
        self.import_button.clicked.connect(self.choose_import)
        self.export_button = QPushButton("E&xport CSV…")
        self.export_button.clicked.connect(self.choose_export)
        self.forget_button = QPushButton("&Forget this person…")
        self.forget_button.setToolTip(
            "Erase everything Cadence holds about one person (GDPR). Only a salted hash stays, so they are "
            "never written to again."
        )
        self.forget_button.clicked.connect(self.ask_forget)

        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(heading("Suppression list"))
        self.summary = muted(wrap=False)
        titles.addWidget(self.summary)
        top = QHBoxLayout()
        top.addLayout(titles, 1)
        top.addWidget(self.search, 1)

        add_row = QHBoxLayout()
        add_row.addWidget(self.add_value, 2)
        add_row.addWidget(self.add_reason, 1)
        add_row.addWidget(self.add_button)
        add_row.addSpacing(em)
        add_row.addWidget(self.remove_button)
        add_row.addWidget(self.evidence_button)
        add_row.addStretch(1)
        add_row.addWidget(self.import_button)
        add_row.addWidget(self.export_button)
        add_row.addWidget(self.forget_button)

        self.empty = EmptyState(
            "No one is suppressed",
            "Bounced addresses, unsubscribes and people who said no are added automatically. "
            "You can add an address or a whole domain above.",
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(add_row)
        layout.addWidget(self.stack, 1)

        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.loaded.connect(self._loaded)
        ctx.bridge.suppressions_changed.connect(lambda: ctx.batcher.mark("suppression"))
        ctx.batcher.register("suppression", lambda: self.model.reload(keep_loaded=True))
        self._dialogs: list[QWidget] = []

    def load(self) -> None:
        self.model.reload()

    def save_state(self) -> None:
        self.ctx.save_header("suppression", self.table.horizontalHeader())

    def _apply_search(self) -> None:
        self.query = self.search.text().strip()
        self.model.reload()

    def _loaded(self) -> None:
        searching = bool(self.query)
        if self.model.total == 0 and searching:
            self.empty.set_text("No matches", f"Nothing on the list matches “{self.query}”.")
        self.stack.setCurrentWidget(self.table if self.model.total else self.empty)
        text = fmt.count(self.model.total, "entry", "entries")
        self.summary.setText(text + (f" matching “{self.query}”" if searching else ""))

    def selected(self) -> list[v.SuppressionEntry]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(row, 0).data(ROW_ROLE) for row in rows]

    def _selection_changed(self, *_args: object) -> None:
        selected = self.selected()
        self.remove_button.setEnabled(len(selected) == 1)
        self.evidence_button.setEnabled(
            len(selected) == 1
            and selected[0].evidence_id is not None
            and isinstance(self.ctx.runtime, SuppressionEvidenceReader)
        )

    def open_evidence(self) -> None:
        selected = self.selected()
        runtime = self.ctx.runtime
        if len(selected) != 1 or not isinstance(runtime, SuppressionEvidenceReader):
            return
        entry = selected[0]
        if entry.evidence_id is None:
            source = entry.detail or "added by hand"
            self.ctx.messages.info(f"No message was kept for {entry.value} ({source}).")
            return
        self.ctx.runner.run(
            runtime.suppression_evidence(entry.evidence_id),
            on_success=lambda text: self._show_evidence(entry, text),
        )

    def _show_evidence(self, entry: v.SuppressionEntry, text: str) -> QDialog:
        dialog = QDialog(self)
        dialog.setObjectName("evidenceDialog")
        dialog.setWindowTitle(f"Evidence — {entry.value}")
        layout = QVBoxLayout(dialog)
        reason = fmt.SUPPRESSION_TEXT.get(entry.reason, entry.reason.value)
        layout.addWidget(muted(f"{reason} · {fmt.day_text(entry.added_at)} · {entry.detail}"))
        view = QPlainTextEdit(text)
        view.setReadOnly(True)
        view.setAccessibleName("Raw evidence")
        view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        layout.addWidget(view, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        em = self.fontMetrics().height()
        dialog.resize(int(em * 50), int(em * 32))
        self._keep(dialog)
        dialog.open()
        return dialog

    # --- actions ------------------------------------------------------------------------------------

    def add(self) -> None:
        value = self.add_value.text().strip()
        if not value:
            self.add_value.setFocus()
            return
        reason = SuppressionReason(self.add_reason.currentData())

        def done(_: None) -> None:
            self.add_value.clear()
            self.ctx.messages.info(f"{value} will never be written to.")

        self.ctx.runner.run(self.ctx.runtime.add_suppression(value, reason=reason), on_success=done)

    def confirm_remove(self) -> None:
        entries = self.selected()
        if len(entries) != 1:
            return
        entry = entries[0]
        if entry.reason is SuppressionReason.ERASED:
            self.ctx.messages.warning("An erased person stays suppressed: their address is no longer known.")
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Remove from the suppression list?",
            f"Remove {entry.value} from the suppression list?",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            f"Reason: {fmt.SUPPRESSION_TEXT.get(entry.reason, entry.reason.value).lower()}. "
            "Cadence may write to it again."
        )
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self._remove(entry.value) if button is remove else None)
        self._keep(box)
        box.open()

    def _remove(self, value: str) -> None:
        self.ctx.runner.run(
            self.ctx.runtime.remove_suppression(value),
            on_success=lambda _r: self.ctx.messages.info(f"{value} removed from the suppression list."),
        )

    def ask_forget(self) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Forget this person")
        dialog.setLabelText(
            "Address of the person who asked to be forgotten.\n"
            "Their lead, messages and history are deleted; only a salted hash is kept so they are never "
            "contacted again. This cannot be undone."
        )
        dialog.setOkButtonText("Forget")
        selected = self.selected()
        if len(selected) == 1 and not selected[0].is_domain and "@" in selected[0].value:
            dialog.setTextValue(selected[0].value)
        dialog.textValueSelected.connect(self._forget)
        self._keep(dialog)
        dialog.open()

    def _forget(self, address: str) -> None:
        address = address.strip()
        if not address:
            return
        self.ctx.runner.run(
            self.ctx.runtime.forget_person(address),
            on_success=lambda _r: self.ctx.messages.info(
                "Erased. Only a salted hash of the address is kept."
            ),
        )

    def choose_import(self) -> None:
        self._keep(csvio.ask_path(self, title="Import suppressions", save=False, on_chosen=self.import_file))

    def import_file(self, path: Path) -> None:
        async def run() -> v.BulkResult:
            values = csvio.first_column(await csvio.read_bytes(path))
            return await self.ctx.runtime.import_suppressions(values, reason=SuppressionReason.MANUAL)

        def done(result: v.BulkResult) -> None:
            text = f"Imported {fmt.count(result.done, 'entry', 'entries')} from {path.name}."
            if result.failed:
                first = result.failed[0]
                text += f" {len(result.failed)} skipped (first: line {first.id}: {first.reason})."
                self.ctx.messages.warning(text)
            else:
                self.ctx.messages.info(text)

        self.ctx.runner.run(run(), on_success=done)

    def choose_export(self) -> None:
        self._keep(
            csvio.ask_path(
                self,
                title="Export suppressions",
                save=True,
                on_chosen=self.export_file,
                suggested="suppressions.csv",
            )
        )

    def export_file(self, path: Path) -> None:
        async def run() -> int:
            entries = await csvio.collect(
                lambda offset, limit: self.ctx.runtime.list_suppressions("", offset, limit)
            )
            rows = [
                (
                    e.value,
                    "domain" if e.is_domain else "address",
                    e.reason.value,
                    e.added_at.isoformat(),
                    e.detail,
                )
                for e in entries
            ]
            await csvio.write_csv(path, ("value", "kind", "reason", "added_at", "detail"), rows)
            return len(rows)

        self.ctx.runner.run(
            run(),
            on_success=lambda n: self.ctx.messages.info(
                f"Exported {fmt.count(n, 'entry', 'entries')} to {path}."
            ),
        )

    def _keep(self, widget: QWidget) -> None:
        self._dialogs = [d for d in self._dialogs if d.isVisible()]
        self._dialogs.append(widget)
