"""The settings dialog's "Mailbox" page: type an address, get the servers proposed, sign in, test.

Typing an address asks the runtime for a proposal (debounced; an answer for an address typed over since is
dropped) and fills every server field, which all stay editable. A "Sign in with Google/Microsoft" button
appears where OAuth applies. "Test connection" streams each step (DNS, TCP, TLS, certificate, login, Sent
folder) into a checklist with ✔/✖ and the advice for what failed; it runs in the background and can be
cancelled. The password field never shows a stored password: its placeholder says it is in the keyring.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.core.oauth import AuthMethod, OAuthProvider, provider_for_key
from cadence.core.ports import UserFacingError
from cadence.qt.context import WindowContext
from cadence.qt.errors import handle_exception
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.common import muted

PROPOSAL_DELAY_MS = 450
STORED_PLACEHOLDER = "stored in your keyring — leave empty to keep it"

_PROVIDER_NAMES = {OAuthProvider.GOOGLE: "Google", OAuthProvider.MICROSOFT: "Microsoft"}
_OAUTH_METHODS = {
    OAuthProvider.GOOGLE: AuthMethod.OAUTH_GOOGLE,
    OAuthProvider.MICROSOFT: AuthMethod.OAUTH_MICROSOFT,
}
_METHOD_PROVIDERS = {method: provider for provider, method in _OAUTH_METHODS.items()}
_MARKS = {v.StepState.OK: "✔", v.StepState.FAILED: "✖", v.StepState.SKIPPED: "–"}


def _spin(value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(1, 65535)
    box.setValue(value)
    return box


def _colored(label: QLabel, level: Level) -> QLabel:
    palette = label.palette()
    palette.setColor(label.foregroundRole(), level_color(level))
    label.setPalette(palette)
    return label


def _said(error: BaseException) -> str:
    """A user-facing error's sentence; anything else is a bug: the crash dialog, and a neutral line here."""
    if isinstance(error, UserFacingError):
        return str(error)
    handle_exception(error)
    return "Something went wrong; the details are in the log."


class MailboxPage(QWidget):
    """Fields for one mailbox; `settings_from(base)` reads them back into an AccountSettings view."""

    proposal_applied = Signal(object)  # v.AccountProposal
    test_finished = Signal(object)  # v.ConnectionTestView, or None when cancelled or failed
    step_shown = Signal(object)  # v.ConnectionStepView

    def __init__(
        self, ctx: WindowContext, settings: v.AccountSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.original = settings
        self.provider_key = settings.provider_key
        self.auth_method = settings.auth_method
        self.signed_in = settings.has_oauth_sign_in  # the keyring holds a refresh token for this account
        self.proposal: v.AccountProposal | None = None
        self._proposed_for = settings.email.strip().lower()
        self._proposal_seq = 0
        self._test_task: asyncio.Task[v.ConnectionTestView] | None = None
        self._sign_in_task: asyncio.Task[None] | None = None

        self.email = QLineEdit(settings.email)
        self.email.setPlaceholderText("you@company.com")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.details = muted()
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.display_name = QLineEdit(settings.display_name)
        self.smtp_host = QLineEdit(settings.smtp_host)
        self.smtp_port = _spin(settings.smtp_port)
        self.smtp_tls = QComboBox()
        self.smtp_tls.addItem("STARTTLS (usually port 587)", v.TlsMode.STARTTLS)
        self.smtp_tls.addItem("TLS from the start (usually port 465)", v.TlsMode.IMPLICIT)
        self.smtp_tls.setCurrentIndex(0 if settings.smtp_tls is v.TlsMode.STARTTLS else 1)
        self.imap_host = QLineEdit(settings.imap_host)
        self.imap_port = _spin(settings.imap_port)
        self.username = QLineEdit(settings.username)
        self.username.setPlaceholderText("same as the email address")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")

        self.sign_in_button = QPushButton()
        self.sign_in_button.clicked.connect(self.sign_in)
        self.use_password_button = QPushButton("Use a password instead")
        self.use_password_button.setFlat(True)
        self.use_password_button.clicked.connect(self.use_password)
        self.sign_in_state = QLabel()
        self.sign_in_state.setWordWrap(True)
        sign_in_row = QHBoxLayout()
        sign_in_row.addWidget(self.sign_in_button)
        sign_in_row.addWidget(self.use_password_button)
        sign_in_row.addWidget(self.sign_in_state, 1)

        self.test_button = QPushButton("&Test connection")
        self.test_button.clicked.connect(self.start_test)
        self.cancel_test_button = QPushButton("Cancel test")
        self.cancel_test_button.clicked.connect(self.cancel_test)
        self.cancel_test_button.hide()
        self.test_summary = QLabel()
        self.test_summary.setWordWrap(True)
        self.domain_button = QPushButton("Check &domain records")
        self.domain_button.setToolTip("SPF, DKIM and DMARC: what receiving servers check before trusting you")
        self.domain_button.clicked.connect(self.check_domain)
        self.domain_checks = QLabel()
        self.domain_checks.setWordWrap(True)
        self.domain_checks.setTextFormat(Qt.TextFormat.PlainText)
        self.domain_checks.hide()
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.cancel_test_button)
        test_row.addWidget(self.test_summary, 1)
        test_row.addWidget(self.domain_button)
        self.steps = QListWidget()
        self.steps.setWordWrap(True)
        self.steps.setAccessibleName("Connection test steps")
        self.steps.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.steps.setMinimumHeight(self.fontMetrics().height() * 12)
        self.steps.hide()
        self.advice = _colored(QLabel(), Level.BAD)
        self.advice.setWordWrap(True)
        self.advice.setTextFormat(Qt.TextFormat.PlainText)
        self.advice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.advice.hide()

        form = QFormLayout()
        form.addRow("&Email address:", self.email)
        form.addRow("", self.note)
        self._note_row = form.rowCount() - 1
        form.addRow("&Your name:", self.display_name)
        smtp = QHBoxLayout()
        smtp.addWidget(self.smtp_host, 3)
        smtp.addWidget(QLabel("Port"))
        smtp.addWidget(self.smtp_port)
        form.addRow("SMTP server:", smtp)
        form.addRow("Encryption:", self.smtp_tls)
        imap = QHBoxLayout()
        imap.addWidget(self.imap_host, 3)
        imap.addWidget(QLabel("Port"))
        imap.addWidget(self.imap_port)
        form.addRow("IMAP server:", imap)
        form.addRow("User &name:", self.username)
        form.addRow("&Password:", self.password)
        form.addRow("", sign_in_row)
        self._sign_in_row = form.rowCount() - 1
        form.addRow("", self.details)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.domain_checks)
        layout.addWidget(self.advice)
        layout.addWidget(self.steps, 1)
        layout.addStretch(0)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(PROPOSAL_DELAY_MS)
        self._debounce.timeout.connect(self.request_proposal)
        self.email.textEdited.connect(lambda _text: self._debounce.start())
        self.email.editingFinished.connect(self._propose_now)
        self._set_note("")
        self._show_auth()
        self.details.setText("IMAP is read with TLS on port 993; Cadence never marks your mail as read.")

    # --- proposal -----------------------------------------------------------------------------------------

    def _propose_now(self) -> None:
        if self._debounce.isActive():
            self._debounce.stop()
            self.request_proposal()

    def request_proposal(self) -> None:
        email = self.email.text().strip().lower()
        if not email or "@" not in email or email.endswith("@") or email == self._proposed_for:
            return
        self._proposal_seq += 1
        seq = self._proposal_seq
        self._set_note("Looking up the servers for this address…")

        def done(proposal: v.AccountProposal) -> None:
            if seq == self._proposal_seq and self.email.text().strip().lower() == email:
                self._proposed_for = email
                self.apply_proposal(proposal)

        def failed(error: BaseException) -> None:
            if seq == self._proposal_seq:
                self._set_note(_said(error), Level.BAD)

        self.ctx.runner.run(self.ctx.runtime.propose_account(email), on_success=done, on_error=failed)

    def apply_proposal(self, proposal: v.AccountProposal) -> None:
        """Fill the server fields (they stay editable) and say what the user should know."""
        self.proposal = proposal
        self.clear_test()  # results for other servers would mislead
        self.domain_checks.hide()
        self.provider_key = proposal.provider_key
        self.smtp_host.setText(proposal.smtp.host)
        self.smtp_port.setValue(proposal.smtp.port)
        self.smtp_tls.setCurrentIndex(0 if proposal.smtp.tls is v.TlsMode.STARTTLS else 1)
        self.imap_host.setText(proposal.imap.host)
        self.imap_port.setValue(proposal.imap.port)
        warn = proposal.guessed or not proposal.password_accepted
        self._set_note(proposal.note, Level.WARN if warn else Level.NONE)
        extra = [n for n in proposal.notes if n != proposal.note]
        if proposal.smtp_alternatives:
            others = ", ".join(f"{c.host}:{c.port}" for c in proposal.smtp_alternatives)
            extra.append(f"Also possible for SMTP: {others}.")
        if proposal.limits and not any("allows about" in note for note in extra):
            extra.append(proposal.limits)
        self.details.setText("\n".join(extra))
        if _METHOD_PROVIDERS.get(self.auth_method) != proposal.oauth_provider:
            self.auth_method = AuthMethod.PASSWORD
        self._show_auth()
        self.proposal_applied.emit(proposal)

    def _set_note(self, text: str, level: Level = Level.NONE) -> None:
        self.note.setText(text)
        self.form.setRowVisible(self._note_row, bool(text))
        self._set_note_level(level)

    def _set_note_level(self, level: Level) -> None:
        palette = self.note.palette()
        color = level_color(level) if level is not Level.NONE else self.palette().color(self.foregroundRole())
        palette.setColor(self.note.foregroundRole(), QColor(color))
        self.note.setPalette(palette)

    # --- sign-in ------------------------------------------------------------------------------------------

    def _oauth_provider(self) -> OAuthProvider | None:
        if self.proposal is not None:
            return self.proposal.oauth_provider
        return _METHOD_PROVIDERS.get(self.auth_method) or provider_for_key(self.provider_key)

    def _show_auth(self) -> None:
        provider = self._oauth_provider()
        oauth = self.auth_method is not AuthMethod.PASSWORD
        self.sign_in_button.setVisible(provider is not None)
        self.form.setRowVisible(self._sign_in_row, provider is not None or oauth)
        if provider is not None:
            name = _PROVIDER_NAMES[provider]
            again = oauth and self.signed_in
            self.sign_in_button.setText(f"Sign in again with {name}" if again else f"Sign in with {name}")
        self.use_password_button.setVisible(oauth)
        self.password.setEnabled(not oauth)
        if oauth:
            self.password.clear()
            self.password.setPlaceholderText("not needed: you signed in through the browser")
            method_name = _PROVIDER_NAMES[_METHOD_PROVIDERS[self.auth_method]]
            if self.signed_in:
                self.sign_in_state.setText(
                    f"✔ Signed in with {method_name}; the sign-in is kept in your keyring."
                )
                _colored(self.sign_in_state, Level.OK)
            else:
                self.sign_in_state.setText(
                    f"⚠ Not signed in: the keyring has no {method_name} sign-in for this account, so "
                    f"nothing can be sent. Use “Sign in with {method_name}”."
                )
                _colored(self.sign_in_state, Level.WARN)
        else:
            self.sign_in_state.setText("")
            if self.proposal is not None and not self.proposal.password_accepted:
                self.password.setPlaceholderText("passwords are refused here: sign in instead")
            elif (
                self.original.has_password
                and self.email.text().strip().lower() == self.original.email.lower()
            ):
                self.password.setPlaceholderText(STORED_PLACEHOLDER)
            elif self.proposal is not None and self.proposal.needs_app_password:
                self.password.setPlaceholderText("app password")
            else:
                self.password.setPlaceholderText("password or app password")

    def _same_address(self) -> bool:
        return self.email.text().strip().lower() == self.original.email.strip().lower()

    def sign_in(self) -> None:
        provider = self._oauth_provider()
        email = self.email.text().strip()
        if provider is None or not email:
            return
        name = _PROVIDER_NAMES[provider]
        self.sign_in_button.setEnabled(False)
        self.sign_in_state.setText(f"Finish signing in with {name} in your browser…")
        _colored(self.sign_in_state, Level.NONE)

        def done(_result: None) -> None:
            self._sign_in_task = None
            self.sign_in_button.setEnabled(True)
            self.auth_method = _OAUTH_METHODS[provider]
            self.signed_in = True
            self._show_auth()

        def failed(error: BaseException) -> None:
            self._sign_in_task = None
            self.sign_in_button.setEnabled(True)
            self.sign_in_state.setText(_said(error))
            _colored(self.sign_in_state, Level.BAD)

        self._sign_in_task = self.ctx.runner.run(
            self.ctx.runtime.sign_in_oauth(email, provider), on_success=done, on_error=failed
        )

    def use_password(self) -> None:
        self.auth_method = AuthMethod.PASSWORD
        self._show_auth()

    # --- connection test ------------------------------------------------------------------------------------

    @property
    def testing(self) -> bool:
        return self._test_task is not None and not self._test_task.done()

    def start_test(self) -> None:
        if self.testing:
            return
        settings = self.settings_from(self.original)
        if not settings.email or not settings.smtp_host:
            self._show_advice("Enter the email address and the SMTP server first.")
            return
        self.steps.clear()
        self.steps.show()
        self.advice.hide()
        self.test_summary.setText("Testing…")
        _colored(self.test_summary, Level.NONE)
        self.test_button.setEnabled(False)
        self.cancel_test_button.show()
        password = self.password.text() or None

        def done(report: v.ConnectionTestView) -> None:
            self._end_test()
            failures = report.failures
            if report.ok:
                self.test_summary.setText("✔ Everything works: Cadence can send and read replies.")
                _colored(self.test_summary, Level.OK)
            else:
                self.test_summary.setText(
                    f"✖ {len(failures)} step{'s' if len(failures) != 1 else ''} failed."
                )
                _colored(self.test_summary, Level.BAD)
                self._show_advice("\n\n".join(f"{f.title}: {f.message}" for f in failures))
            self.test_finished.emit(report)

        def failed(error: BaseException) -> None:
            self._end_test()
            self.test_summary.setText("")
            self._show_advice(_said(error))
            self.test_finished.emit(None)

        self._test_task = self.ctx.runner.run(
            self.ctx.runtime.test_connection(settings, password=password, on_step=self._step_arrived),
            on_success=done,
            on_error=failed,
        )

    def _step_arrived(self, step: v.ConnectionStepView) -> None:
        mark = _MARKS[step.state]
        item = QListWidgetItem(f"{mark}  {step.title} — {step.message}")
        level = {v.StepState.OK: Level.OK, v.StepState.FAILED: Level.BAD}.get(step.state, Level.NONE)
        item.setForeground(level_color(level))
        item.setData(Qt.ItemDataRole.UserRole, step.state.value)
        item.setToolTip(step.message)
        self.steps.addItem(item)
        self.steps.scrollToBottom()
        self.step_shown.emit(step)

    def cancel_test(self) -> None:
        if self._test_task is not None and not self._test_task.done():
            self._test_task.cancel()
        self._end_test()
        self.test_summary.setText("Test cancelled.")
        _colored(self.test_summary, Level.NONE)
        self.test_finished.emit(None)

    def clear_test(self) -> None:
        if self.testing:
            self.cancel_test()
        self.steps.clear()
        self.steps.hide()
        self.advice.hide()
        self.test_summary.setText("")

    def _end_test(self) -> None:
        self._test_task = None
        self.test_button.setEnabled(True)
        self.cancel_test_button.hide()

    def _show_advice(self, text: str) -> None:
        self.advice.setText(text)
        self.advice.show()

    def shutdown(self) -> None:
        """The dialog is closing: stop what still runs so no callback touches these widgets."""
        self._debounce.stop()
        if self._test_task is not None and not self._test_task.done():
            self._test_task.cancel()
        self._test_task = None
        if self._sign_in_task is not None and not self._sign_in_task.done():
            self._sign_in_task.cancel()
        self._sign_in_task = None

    # --- domain records -----------------------------------------------------------------------------------

    def check_domain(self) -> None:
        email = self.email.text().strip()
        if "@" not in email:
            self._show_advice("Enter the email address first.")
            return
        self.domain_button.setEnabled(False)
        self.domain_checks.setText(f"Checking the records of {email.rpartition('@')[2]}…")
        self.domain_checks.show()

        def done(checks: list[v.HealthCheck]) -> None:
            self.domain_button.setEnabled(True)
            marks = {v.CheckState.PASS: "✔", v.CheckState.WARN: "⚠", v.CheckState.FAIL: "✖"}
            lines = [f"{marks.get(c.state, '?')} {c.name}: {c.detail}" for c in checks]
            self.domain_checks.setText("\n".join(lines) or "No records to check.")

        def failed(error: BaseException) -> None:
            self.domain_button.setEnabled(True)
            self.domain_checks.setText(_said(error))

        self.ctx.runner.run(self.ctx.runtime.domain_health(email), on_success=done, on_error=failed)

    # --- reading back -----------------------------------------------------------------------------------

    def settings_from(self, base: v.AccountSettings) -> v.AccountSettings:
        return replace(
            base,
            email=self.email.text().strip(),
            display_name=self.display_name.text().strip(),
            smtp_host=self.smtp_host.text().strip(),
            smtp_port=self.smtp_port.value(),
            smtp_tls=v.TlsMode(self.smtp_tls.currentData()),
            imap_host=self.imap_host.text().strip(),
            imap_port=self.imap_port.value(),
            username=self.username.text().strip(),
            provider_key=self.provider_key,
            auth_method=self.auth_method,
        )
