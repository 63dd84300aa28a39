"""New campaign: leads from CSV (column mapping, preview, skipped rows with reasons), the steps, and a live
merge-field preview for a chosen lead with risk warnings. Opened with open(); nothing is stored until
Create."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.core.model import Lead, Step
from cadence.core.ports import ImportProgress, ProgressiveCampaignCreator
from cadence.qt import csvio, fmt
from cadence.qt.context import WindowContext
from cadence.qt.models.simple import RecordsModel
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.common import heading, muted, setup_table

FIELD_LABELS = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "timezone": "Time zone",
    "consent": "Consent",
}
IGNORE = ""

DEFAULT_STEP = Step(
    index=1,
    subject="Quick question, {first_name|there}",
    body=(
        "Hi {first_name|there},\n\n…\n\n"
        "If this isn't relevant, just reply \"no thanks\" and I won't write again."
    ),
)


def _table(name: str, model: RecordsModel, accessible: str) -> QTableView:
    table = QTableView()
    setup_table(table, name=name, accessible=accessible)
    table.setModel(model)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _fit_columns(table: QTableView, *, max_em: float = 18) -> None:
    table.resizeColumnsToContents()
    limit = int(table.fontMetrics().height() * max_em)
    for column in range(table.model().columnCount()):
        table.setColumnWidth(column, min(table.columnWidth(column), limit))


def lead_from_record(record: Mapping[str, str]) -> Lead:
    known = set(FIELD_LABELS)
    return Lead(
        email=record.get("email", ""),
        first_name=record.get("first_name", ""),
        last_name=record.get("last_name", ""),
        company=record.get("company", ""),
        fields={k: val for k, val in record.items() if k not in known},
    )


class NewCampaignDialog(QDialog):
    created = Signal(int)
    preview_ready = Signal()  # the import preview arrived (tests and screenshots wait on it)
    import_stopped = Signal()  # the user stopped reading the file or saving the campaign

    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("New campaign")
        self.csv_bytes = b""
        self.csv_name = ""
        self.import_preview: v.ImportPreview | None = None
        self._preview_task: asyncio.Task[v.ImportPreview] | None = None
        self._preview_generation = 0
        self._create_task: asyncio.Task[int] | None = None
        self._stop_flag: threading.Event | None = None
        self.mapping: dict[str, str] = {}
        self.steps: list[Step] = [DEFAULT_STEP]
        self.accounts: list[v.AccountView] = []
        self.tabs = QTabWidget()
        self.tabs.addTab(self._leads_page(), "1 · &Leads")
        self.tabs.addTab(self._steps_page(), "2 · &Steps")
        self.tabs.addTab(self._preview_page(), "3 · &Preview")
        self.tabs.currentChanged.connect(self._page_changed)

        self.error = QLabel()
        self.error.setWordWrap(True)
        palette = self.error.palette()
        palette.setColor(self.error.foregroundRole(), level_color(Level.BAD))
        self.error.setPalette(palette)
        self.error.hide()
        self.back_button = QPushButton("&Back")
        self.next_button = QPushButton("&Next")
        self.create_button = QPushButton("&Create campaign")
        self.cancel_button = QPushButton("Cancel")
        self.back_button.clicked.connect(lambda: self.tabs.setCurrentIndex(self.tabs.currentIndex() - 1))
        self.next_button.clicked.connect(lambda: self.tabs.setCurrentIndex(self.tabs.currentIndex() + 1))
        self.create_button.clicked.connect(self.create_campaign)
        self.cancel_button.clicked.connect(self.reject)
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Import progress")
        self.stop_button = QPushButton("&Stop import")
        self.stop_button.clicked.connect(self.stop_import)
        self.progress_row = QWidget()
        progress_layout = QHBoxLayout(self.progress_row)
        progress_layout.setContentsMargins(0, 0, 0, 0)
        progress_layout.addWidget(self.progress_label)
        progress_layout.addWidget(self.progress_bar, 1)
        progress_layout.addWidget(self.stop_button)
        self.progress_row.hide()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)
        buttons.addWidget(self.create_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.progress_row)
        layout.addLayout(buttons)
        em = self.fontMetrics().height()
        self.resize(int(em * 68), int(em * 44))
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(300)
        self._preview_timer.timeout.connect(self.refresh_render)
        self._dialogs: list[QWidget] = []
        self._page_changed(0)
        ctx.runner.run(ctx.runtime.list_accounts(), on_success=self._set_accounts)

    # --- page 1: leads ------------------------------------------------------------------------------

    def _leads_page(self) -> QWidget:
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Regional fleets — Q1")
        self.account = QComboBox()
        self.file_label = muted("No file chosen", wrap=False)
        choose = QPushButton("C&hoose CSV file…")
        choose.clicked.connect(self.choose_file)
        file_row = QHBoxLayout()
        file_row.addWidget(choose)
        file_row.addWidget(self.file_label, 1)
        form = QFormLayout()
        form.addRow("Campaign &name:", self.name)
        form.addRow("Send &from:", self.account)
        form.addRow("Leads:", file_row)

        self.mapping_box = QGroupBox("Columns in the file")
        self.mapping_box.setMinimumWidth(int(self.fontMetrics().height() * 20))
        self.mapping_form = QFormLayout()
        mapping_inner = QWidget()
        mapping_inner.setLayout(self.mapping_form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(mapping_inner)
        QVBoxLayout(self.mapping_box).addWidget(scroll)
        self.mapping_combos: dict[str, QComboBox] = {}

        self.import_summary = heading("", scale=1.0)
        self.import_warnings = QLabel()
        self.import_warnings.setWordWrap(True)
        self.rows_model = RecordsModel()
        self.rows_table = _table("importRows", self.rows_model, "Leads that will be imported")
        self.skipped_model = RecordsModel(("Line", "Why it was skipped", "Row"))
        self.skipped_table = _table("skippedRows", self.skipped_model, "Skipped rows and why")
        self.skipped_box = QGroupBox("Skipped rows")
        QVBoxLayout(self.skipped_box).addWidget(self.skipped_table)
        rows_box = QGroupBox("Leads (first 50)")
        QVBoxLayout(rows_box).addWidget(self.rows_table)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(rows_box)
        right.addWidget(self.skipped_box)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.mapping_box)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(self.import_summary)
        layout.addWidget(self.import_warnings)
        layout.addWidget(split, 1)
        self._set_import(None)
        return page

    def _set_accounts(self, accounts: list[v.AccountView]) -> None:
        self.accounts = accounts
        self.account.clear()
        for account in accounts:
            self.account.addItem(f"{account.display_name} <{account.email}>", account.id)
        if not accounts:
            self.account.addItem("No account yet — add one in Account settings", None)

    def choose_file(self) -> None:
        self._dialogs.append(
            csvio.ask_path(self, title="Choose a CSV file of leads", save=False, on_chosen=self.load_file)
        )

    def load_file(self, path: Path) -> None:
        self.ctx.runner.run(
            csvio.read_bytes(path),
            on_success=lambda data: self.load_csv_bytes(data, name=path.name),
            on_error=lambda exc: self.show_error(f"{path.name} cannot be read: {exc}"),
        )

    def load_csv_bytes(self, data: bytes, *, name: str = "leads.csv") -> None:
        self.csv_bytes = data
        self.csv_name = name
        self.file_label.setText(f"{name} · {len(data):,} bytes")
        if not self.name.text():
            self.name.setText(Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize())
        self.mapping = {}
        self._request_preview(None)

    def _request_preview(self, mapping: Mapping[str, str] | None) -> None:
        if self._preview_task is not None:
            self._preview_task.cancel()  # a newer mapping replaces it; its result would be stale
        self._show_progress(f"Reading {self.csv_name or 'the file'}…", done=0, total=0, can_stop=True)
        self._preview_generation += 1
        generation = self._preview_generation
        self._preview_task = self.ctx.runner.run(
            self.ctx.runtime.import_leads_preview(self.csv_bytes, mapping=mapping),
            on_success=lambda preview: self._preview_arrived(preview, generation),
            on_error=lambda exc: self._preview_failed(exc, generation),
        )

    def _preview_arrived(self, preview: v.ImportPreview, generation: int) -> None:
        if generation != self._preview_generation:
            return  # finished just as a newer request replaced it
        self._preview_task = None
        self._hide_progress()
        self._set_import(preview)

    def _preview_failed(self, exc: BaseException, generation: int) -> None:
        if generation != self._preview_generation:
            return
        self._preview_task = None
        self._hide_progress()
        self.show_error(str(exc))

    # --- progress and stopping --------------------------------------------------------------------------

    def is_importing(self) -> bool:
        return self._preview_task is not None or self._create_task is not None

    def _show_progress(self, text: str, *, done: int, total: int, can_stop: bool) -> None:
        self.progress_label.setText(text)
        self.progress_bar.setRange(0, total)  # 0..0: busy, no known end yet
        self.progress_bar.setValue(done)
        self.stop_button.setEnabled(can_stop)
        self.stop_button.setToolTip(
            "" if can_stop else "Saving cannot be interrupted here; it finishes in one go."
        )
        self.progress_row.show()

    def _hide_progress(self) -> None:
        self.progress_row.hide()

    def _create_progress(self, progress: ImportProgress) -> None:
        if self._create_task is None:
            return
        text = progress.stage
        if progress.total:
            text = f"{progress.stage} {progress.done:,} of {progress.total:,}"
        stopping = self._stop_flag is not None and self._stop_flag.is_set()
        self._show_progress(
            "Stopping after the current batch…" if stopping else text,
            done=progress.done,
            total=progress.total,
            can_stop=not stopping,
        )

    def stop_import(self) -> None:
        """Stop reading the file (nothing is kept) or saving the campaign (at the next batch)."""
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
            self._preview_generation += 1
            self._hide_progress()
            self.csv_bytes = b""
            self.csv_name = ""
            self.file_label.setText("No file chosen")
            self._set_import(None)
            self.import_summary.setText("Import stopped. Choose the file again to import it.")
            self.import_stopped.emit()
        if self._create_task is not None and self._stop_flag is not None:
            self._stop_flag.set()
            self.progress_label.setText("Stopping after the current batch…")
            self.stop_button.setEnabled(False)

    def reject(self) -> None:
        if self.is_importing():
            self.stop_import()
            if self._create_task is not None:
                if self._stop_flag is None:
                    self.show_error("The campaign is being saved; this window closes when that is done.")
                return  # otherwise it stays open until saving has stopped, to say what was kept
        super().reject()

    def _set_import(self, preview: v.ImportPreview | None) -> None:
        self.import_preview = preview
        if preview is None:
            self.import_summary.setText("Choose a CSV file with one lead per row and a header line.")
            self.import_warnings.hide()
            self.skipped_box.hide()
            self.mapping_box.setEnabled(False)
            return
        self.error.hide()
        self.mapping = dict(preview.mapping)
        self._build_mapping(preview)
        self.mapping_box.setEnabled(True)
        skipped = len(preview.skipped)
        self.import_summary.setText(
            f"{fmt.count(preview.accepted, 'lead')} ready"
            + (f" · {fmt.count(skipped, 'row')} skipped" if skipped else " · no rows skipped")
        )
        self.import_warnings.setText("\n".join(f"⚠ {w}" for w in preview.warnings))
        self.import_warnings.setVisible(bool(preview.warnings))
        fields = [f for f in dict.fromkeys(self.mapping.values()) if f]
        headers = [FIELD_LABELS.get(f, f.removeprefix("fields.")) for f in fields]
        keys = [f.removeprefix("fields.") for f in fields]
        self.rows_model.set_records(headers, [tuple(r.get(k, "") for k in keys) for r in preview.rows])
        self.skipped_model.set_records(
            ("Line", "Why it was skipped", "Row"), [(str(s.line), s.reason, s.raw) for s in preview.skipped]
        )
        _fit_columns(self.rows_table)
        _fit_columns(self.skipped_table, max_em=20)
        self.skipped_box.setVisible(bool(skipped))
        self.skipped_box.setTitle(f"Skipped rows ({skipped})")
        self._fill_lead_choices()
        self.preview_ready.emit()

    def _build_mapping(self, preview: v.ImportPreview) -> None:
        if set(self.mapping_combos) == set(preview.columns):
            for column, combo in self.mapping_combos.items():
                combo.blockSignals(True)
                combo.setCurrentIndex(max(0, combo.findData(self.mapping.get(column, IGNORE))))
                combo.blockSignals(False)
            return
        while self.mapping_form.rowCount():
            self.mapping_form.removeRow(0)
        self.mapping_combos = {}
        for column in preview.columns:
            if not column:
                continue
            combo = QComboBox()
            for key, label in FIELD_LABELS.items():
                combo.addItem(label, key)
            combo.addItem(f"Merge field {{{column}}}", f"fields.{column}")
            combo.addItem("Ignore", IGNORE)
            combo.setCurrentIndex(max(0, combo.findData(self.mapping.get(column, IGNORE))))
            combo.currentIndexChanged.connect(self._mapping_changed)
            combo.setAccessibleName(f"Column {column} maps to")
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            self.mapping_combos[column] = combo
            self.mapping_form.addRow(f"{column}:", combo)

    def _mapping_changed(self, *_args: object) -> None:
        mapping = {column: str(combo.currentData() or "") for column, combo in self.mapping_combos.items()}
        self._request_preview(mapping)

    # --- page 2: steps ------------------------------------------------------------------------------

    def _steps_page(self) -> QWidget:
        self.step_list = QListWidget()
        self.step_list.setAccessibleName("Steps")
        self.step_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.step_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.step_list.currentRowChanged.connect(self._show_step)
        add = QPushButton("&Add step")
        remove = QPushButton("Remo&ve step")
        add.clicked.connect(self.add_step)
        remove.clicked.connect(self.remove_step)
        left = QVBoxLayout()
        left.addWidget(self.step_list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        left.addLayout(row)
        self.subject = QLineEdit()
        self.delay = QDoubleSpinBox()
        self.delay.setRange(0, 60)
        self.delay.setDecimals(1)
        self.delay.setSuffix(" days after the previous step")
        self.body = QPlainTextEdit()
        self.body.setAccessibleName("Step body")
        self.insert_field = QComboBox()
        self.insert_field.setAccessibleName("Insert a merge field")
        self.insert_field.activated.connect(self._insert_field)
        form = QFormLayout()
        form.addRow("S&ubject:", self.subject)
        form.addRow("&Wait:", self.delay)
        form.addRow("Insert &field:", self.insert_field)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.body, 1)
        right.addWidget(
            muted(
                "Merge fields: {first_name}, with a fallback: {first_name|there}. Literal braces: {{ and }}."
            )
        )
        for signal in (self.subject.textEdited, self.body.textChanged, self.delay.valueChanged):
            signal.connect(self._step_edited)
        page = QWidget()
        layout = QHBoxLayout(page)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(int(self.fontMetrics().height() * 16))
        layout.addWidget(left_widget)
        layout.addLayout(right, 1)
        self._refresh_step_list(0)
        return page

    def _refresh_step_list(self, select: int) -> None:
        self.step_list.blockSignals(True)
        self.step_list.clear()
        for step in self.steps:
            self.step_list.addItem(f"{step.index}. {step.subject or '(no subject)'}")
        self.step_list.blockSignals(False)
        self.step_list.setCurrentRow(min(select, len(self.steps) - 1))

    def _show_step(self, row: int) -> None:
        if not 0 <= row < len(self.steps):
            return
        step = self.steps[row]
        for widget in (self.subject, self.body, self.delay):
            widget.blockSignals(True)
        self.subject.setText(step.subject)
        self.body.setPlainText(step.body)
        self.delay.setValue(step.delay_days)
        self.delay.setEnabled(row > 0)
        for widget in (self.subject, self.body, self.delay):
            widget.blockSignals(False)

    def _step_edited(self, *_args: object) -> None:
        row = self.step_list.currentRow()
        if not 0 <= row < len(self.steps):
            return
        self.steps[row] = Step(
            index=row + 1,
            subject=self.subject.text(),
            body=self.body.toPlainText(),
            delay_days=self.delay.value() if row else 0.0,
        )
        item = self.step_list.item(row)
        if item is not None:
            item.setText(f"{row + 1}. {self.subject.text() or '(no subject)'}")
        self._preview_timer.start()

    def add_step(self) -> None:
        index = len(self.steps) + 1
        self.steps.append(Step(index=index, subject=f"Re: {self.steps[0].subject}", body="", delay_days=3.0))
        self._refresh_step_list(index - 1)
        self.body.setFocus()

    def remove_step(self) -> None:
        row = self.step_list.currentRow()
        if len(self.steps) <= 1 or not 0 <= row < len(self.steps):
            return
        del self.steps[row]
        self.steps = [
            Step(i + 1, s.subject, s.body, s.delay_days if i else 0.0) for i, s in enumerate(self.steps)
        ]
        self._refresh_step_list(row)

    def _insert_field(self, index: int) -> None:
        name = self.insert_field.itemData(index)
        if name:
            self.body.insertPlainText(f"{{{name}}}")
            self.body.setFocus()

    # --- page 3: preview ----------------------------------------------------------------------------

    def _preview_page(self) -> QWidget:
        self.preview_lead = QComboBox()
        self.preview_lead.setAccessibleName("Preview for lead")
        self.preview_step = QComboBox()
        self.preview_step.setAccessibleName("Preview step")
        self.preview_lead.currentIndexChanged.connect(lambda _i: self._preview_timer.start())
        self.preview_step.currentIndexChanged.connect(lambda _i: self._preview_timer.start())
        self.rendered_subject = heading("", scale=1.05)
        self.rendered_subject.setWordWrap(True)
        self.rendered_body = QPlainTextEdit()
        self.rendered_body.setReadOnly(True)
        self.rendered_body.setAccessibleName("Rendered message")
        self.missing = QLabel()
        self.missing.setWordWrap(True)
        self.risks = QLabel()
        self.risks.setWordWrap(True)
        self.start_now = QCheckBox("Start sending as soon as it is created")
        self.test_button = QPushButton("Send a &test to me")
        self.test_button.clicked.connect(self.send_test)
        pickers = QHBoxLayout()
        pickers.addWidget(QLabel("Lead:"))
        pickers.addWidget(self.preview_lead, 2)
        pickers.addWidget(QLabel("Step:"))
        pickers.addWidget(self.preview_step, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.start_now, 1)
        bottom.addWidget(self.test_button)
        risk_box = QGroupBox("Before you send")
        risk_layout = QVBoxLayout(risk_box)
        risk_layout.addWidget(self.missing)
        risk_layout.addWidget(self.risks)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(pickers)
        layout.addWidget(self.rendered_subject)
        layout.addWidget(self.rendered_body, 1)
        layout.addWidget(risk_box)
        layout.addLayout(bottom)
        return page

    def _fill_lead_choices(self) -> None:
        self.preview_lead.blockSignals(True)
        self.preview_lead.clear()
        rows = self.import_preview.rows if self.import_preview else ()
        for record in rows:
            name = " ".join(x for x in (record.get("first_name", ""), record.get("last_name", "")) if x)
            self.preview_lead.addItem(
                f"{name} <{record.get('email', '')}>" if name else record.get("email", ""), record
            )
        if not rows:
            self.preview_lead.addItem(
                "Sample lead (no file yet)", {"email": "sam@example.com", "first_name": "Sam"}
            )
        self.preview_lead.blockSignals(False)
        fields = ["first_name", "last_name", "company", "email"]
        if self.import_preview:
            fields += [
                f.removeprefix("fields.")
                for f in self.import_preview.mapping.values()
                if f.startswith("fields.")
            ]
        self.insert_field.clear()
        self.insert_field.addItem("Insert…", None)
        for name in dict.fromkeys(fields):
            self.insert_field.addItem(name, name)

    def _page_changed(self, index: int) -> None:
        last = self.tabs.count() - 1
        self.back_button.setEnabled(index > 0)
        self.next_button.setVisible(index < last)
        self.create_button.setDefault(index == last)
        self.next_button.setDefault(index < last)
        if index == last:
            if self.preview_lead.count() == 0:
                self._fill_lead_choices()
            self.preview_step.blockSignals(True)
            current = max(0, self.preview_step.currentIndex())
            self.preview_step.clear()
            for step in self.steps:
                self.preview_step.addItem(f"Step {step.index}", step.index)
            self.preview_step.setCurrentIndex(min(current, len(self.steps) - 1))
            self.preview_step.blockSignals(False)
            self.refresh_render()

    def current_lead(self) -> Lead:
        record = self.preview_lead.currentData() or {"email": "sam@example.com", "first_name": "Sam"}
        return lead_from_record(record)

    def current_step(self) -> Step:
        index = max(0, self.preview_step.currentIndex())
        return self.steps[min(index, len(self.steps) - 1)]

    def refresh_render(self) -> None:
        if self.tabs.currentIndex() != self.tabs.count() - 1:
            return
        self.ctx.runner.run(
            self.ctx.runtime.preview(self.current_step(), self.current_lead()), on_success=self._show_render
        )

    def _show_render(self, rendered: v.RenderedPreview) -> None:
        self.rendered_subject.setText(rendered.subject or "(empty subject)")
        self.rendered_body.setPlainText(rendered.body)
        if rendered.missing_fields:
            self.missing.setText(
                "This lead has no value for: " + ", ".join(rendered.missing_fields) + " (fallback used)."
            )
        else:
            self.missing.setText("✔ Every merge field has a value for this lead.")
        if rendered.warnings:
            self.risks.setText("\n".join(f"⚠ {w}" for w in rendered.warnings))
            palette = self.risks.palette()
            palette.setColor(self.risks.foregroundRole(), level_color(Level.WARN))
            self.risks.setPalette(palette)
        else:
            self.risks.setText("✔ No risky wording, links or attachments found.")
            self.risks.setPalette(self.palette())

    def send_test(self) -> None:
        account_id = self.account.currentData()
        account = next((a for a in self.accounts if a.id == account_id), None)
        if account is None:
            self.show_error("Add an account first.")
            return
        self.ctx.runner.run(
            self.ctx.runtime.send_test(
                self.current_step(), self.current_lead(), account_id=account.id, to=account.email
            ),
            on_success=lambda _r: self.ctx.messages.info(f"Test sent to {account.email}."),
            on_error=lambda exc: self.show_error(str(exc)),
        )

    # --- create -------------------------------------------------------------------------------------

    def spec(self) -> v.NewCampaign | None:
        problems = []
        if not self.name.text().strip():
            problems.append("Give the campaign a name.")
        if self.account.currentData() is None:
            problems.append("Add an account first.")
        if not self.import_preview or not self.import_preview.accepted:
            problems.append("Choose a CSV file with at least one usable lead.")
        empty = [s.index for s in self.steps if not s.subject.strip() or not s.body.strip()]
        if empty:
            problems.append(f"Step {empty[0]} needs a subject and a body.")
        if problems:
            self.show_error(" ".join(problems))
            return None
        return v.NewCampaign(
            name=self.name.text().strip(),
            account_id=self.account.currentData(),
            steps=tuple(self.steps),
            csv_bytes=self.csv_bytes,
            mapping=dict(self.mapping),
            start_now=self.start_now.isChecked(),
        )

    def create_campaign(self) -> None:
        if self.is_importing():
            return
        spec = self.spec()
        if spec is None:
            return
        self.create_button.setEnabled(False)
        self.error.hide()

        def done(campaign_id: int) -> None:
            self._create_task = None
            self._stop_flag = None
            self._hide_progress()
            self.ctx.messages.info(f"Campaign “{spec.name}” created.")
            self.created.emit(campaign_id)
            self.accept()

        def failed(exc: BaseException) -> None:
            stopped = self._stop_flag is not None and self._stop_flag.is_set()
            self._create_task = None
            self._stop_flag = None
            self._hide_progress()
            self.create_button.setEnabled(True)
            self.show_error(str(exc))
            if stopped:
                self.import_stopped.emit()

        runtime = self.ctx.runtime
        if isinstance(runtime, ProgressiveCampaignCreator):
            self._stop_flag = threading.Event()
            self._show_progress("Saving leads…", done=0, total=0, can_stop=True)
            work = runtime.create_campaign_with_progress(
                spec, on_progress=self._create_progress, stop=self._stop_flag
            )
        else:
            self._show_progress("Saving leads…", done=0, total=0, can_stop=False)
            work = runtime.create_campaign(spec)
        self._create_task = self.ctx.runner.run(work, on_success=done, on_error=failed)

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
