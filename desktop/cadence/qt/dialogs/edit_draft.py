"""Edit a held draft, then approve it. Opened with open(); the owner listens to `submitted` and closes the
dialog when the runtime accepted the change (errors stay in the dialog)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from cadence.core.views import PendingDraft
from cadence.qt.theme import Level, level_color


class EditDraftDialog(QDialog):
    submitted = Signal(int, str, str)

    def __init__(self, draft: PendingDraft, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.draft = draft
        self.setWindowTitle(f"Edit draft to {draft.recipient}")
        self.subject = QLineEdit(draft.subject)
        self.body = QPlainTextEdit(draft.body)
        self.error = QLabel()
        self.error.setWordWrap(True)
        palette = self.error.palette()
        palette.setColor(self.error.foregroundRole(), level_color(Level.BAD))
        self.error.setPalette(palette)
        self.error.hide()
        form = QFormLayout()
        form.addRow("To:", QLabel(f"{draft.lead_name} <{draft.recipient}>"))
        form.addRow("&Subject:", self.subject)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.approve_button = buttons.addButton("Save and &approve", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._submit)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        em = self.fontMetrics().height()
        self.resize(em * 40, em * 28)

    def _submit(self) -> None:
        subject = self.subject.text().strip()
        body = self.body.toPlainText()
        if not subject:
            self.show_error("The subject is empty.")
            return
        if not body.strip():
            self.show_error("The message body is empty.")
            return
        self.error.hide()
        self.submitted.emit(self.draft.id, subject, body)

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
