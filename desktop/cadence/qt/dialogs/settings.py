"""Account settings: the mailbox (SMTP/IMAP), sending limits, warm-up and safety rules. Opened with open();
Save runs in the background and the dialog closes only when the runtime accepted the settings."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.core.model import Guardrails
from cadence.core.policy import cap_raise_advice
from cadence.qt.context import WindowContext
from cadence.qt.dialogs.mailbox_page import MailboxPage
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.common import muted

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _spin(low: int, high: int, value: int, *, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    return box


def _time(minutes: int) -> QTimeEdit:
    edit = QTimeEdit(QTime(minutes // 60, minutes % 60))
    edit.setDisplayFormat("HH:mm")
    return edit


class AccountSettingsDialog(QDialog):
    saved = Signal(int)

    def __init__(
        self, ctx: WindowContext, settings: v.AccountSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.original = settings
        g = settings.guardrails
        self.setWindowTitle("Account settings" if settings.account_id else "Add an account")
        self.tabs = QTabWidget()

        # mailbox
        self.mailbox = MailboxPage(ctx, settings)
        page = self.mailbox
        self.email, self.display_name, self.username, self.password = (
            page.email,
            page.display_name,
            page.username,
            page.password,
        )
        self.smtp_host, self.smtp_port, self.smtp_tls = page.smtp_host, page.smtp_port, page.smtp_tls
        self.imap_host, self.imap_port = page.imap_host, page.imap_port
        mailbox = QScrollArea()
        mailbox.setWidgetResizable(True)
        mailbox.setFrameShape(QFrame.Shape.NoFrame)
        mailbox.setWidget(self.mailbox)
        self.tabs.addTab(mailbox, "&Mailbox")

        # limits
        self.daily_cap = _spin(1, 2000, g.daily_cap, suffix=" per day")
        self.hourly_cap = _spin(1, 500, g.hourly_cap, suffix=" per hour")
        self.domain_cap = _spin(1, 500, g.domain_cap, suffix=" per domain per day")
        self.min_delay = _spin(0, 3600, int(g.min_delay_s), suffix=" s")
        self.jitter = _spin(0, 3600, int(g.jitter_s), suffix=" s")
        self.hours_start = _time(g.hours_start_min)
        self.hours_end = _time(g.hours_end_min)
        self.days = [QCheckBox(name) for name in DAY_NAMES]
        for i, box in enumerate(self.days):
            box.setChecked(i in g.business_days)
        self.timezone = QLineEdit(g.timezone)
        self.recipient_tz = QCheckBox("Use the recipient's time zone when it is known")
        self.recipient_tz.setChecked(g.use_recipient_timezone)
        limits = QWidget()
        form = QFormLayout(limits)
        form.addRow("&Daily cap:", self.daily_cap)
        # Above 30 cold emails a day from a primary mailbox, advise a secondary sending domain.
        self.cap_advice = muted("")
        self.cap_advice.setWordWrap(True)
        form.addRow("", self.cap_advice)
        self.daily_cap.valueChanged.connect(self._show_cap_advice)
        self._show_cap_advice(self.daily_cap.value())
        form.addRow("&Hourly cap:", self.hourly_cap)
        form.addRow("Per-&domain cap:", self.domain_cap)
        form.addRow("Minimum &gap:", self.min_delay)
        form.addRow("Random &extra gap:", self.jitter)
        hours = QHBoxLayout()
        hours.addWidget(self.hours_start)
        hours.addWidget(QLabel("to"))
        hours.addWidget(self.hours_end)
        hours.addStretch(1)
        form.addRow("Sending hours:", hours)
        days = QHBoxLayout()
        for box in self.days:
            days.addWidget(box)
        days.addStretch(1)
        form.addRow("Sending days:", days)
        form.addRow("&Time zone:", self.timezone)
        form.addRow("", self.recipient_tz)
        form.addRow(
            "",
            muted("Providers allow far more (Gmail ~500/day); staying well below protects your domain."),
        )
        self.tabs.addTab(limits, "Sending &limits")

        # warm-up and safety
        self.warmup = QGroupBox("Warm up a new mailbox")
        self.warmup.setCheckable(True)
        self.warmup.setChecked(g.warmup_enabled)
        self.warmup_start = _spin(1, 200, g.warmup_start, suffix=" on the first day")
        self.warmup_step = _spin(1, 100, g.warmup_step, suffix=" more")
        self.warmup_every = _spin(1, 30, g.warmup_every_days, suffix=" days")
        wform = QFormLayout(self.warmup)
        wform.addRow("Start with:", self.warmup_start)
        wform.addRow("Add:", self.warmup_step)
        wform.addRow("Every:", self.warmup_every)
        self.breaker = QDoubleSpinBox()
        self.breaker.setRange(0.5, 20.0)
        self.breaker.setSingleStep(0.5)
        self.breaker.setDecimals(1)
        self.breaker.setSuffix(" %")
        self.breaker.setValue(g.bounce_breaker_rate * 100)
        self.breaker_sample = _spin(5, 1000, g.bounce_breaker_min_sample, suffix=" sends at least")
        self.manual_buffer = _spin(
            0, 90, round(g.manual_mail_buffer * 100), suffix=" % kept for your own mail"
        )
        self.approve_first = QCheckBox("Hold every first touch for my approval")
        self.approve_first.setChecked(g.approve_first_touch)
        self.expire = QDoubleSpinBox()
        self.expire.setRange(0.5, 60)
        self.expire.setDecimals(1)
        self.expire.setSuffix(" days")
        self.expire.setValue(g.expire_after_days)
        safety_box = QGroupBox("Safety")
        sform = QFormLayout(safety_box)
        sform.addRow("Pause when bounces exceed:", self.breaker)
        sform.addRow("…measured over:", self.breaker_sample)
        sform.addRow("Leave free:", self.manual_buffer)
        sform.addRow("", self.approve_first)
        sform.addRow("Drop unsent drafts after:", self.expire)
        safety = QWidget()
        slayout = QVBoxLayout(safety)
        slayout.addWidget(self.warmup)
        slayout.addWidget(safety_box)
        slayout.addStretch(1)
        self.tabs.addTab(safety, "&Warm-up and safety")

        self.error = QLabel()
        self.error.setWordWrap(True)
        palette = self.error.palette()
        palette.setColor(self.error.foregroundRole(), level_color(Level.BAD))
        self.error.setPalette(palette)
        self.error.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.finished.connect(lambda _result: self.mailbox.shutdown())
        em = self.fontMetrics().height()
        self.resize(int(em * 48), int(em * 46))

    def _show_cap_advice(self, daily_cap: int) -> None:
        advice = cap_raise_advice(daily_cap)
        self.cap_advice.setText(f"⚠ {advice}" if advice else "")
        self.cap_advice.setVisible(advice is not None)

    def collected(self) -> v.AccountSettings:
        start = self.hours_start.time()
        end = self.hours_end.time()
        guardrails: Guardrails = replace(
            self.original.guardrails,
            daily_cap=self.daily_cap.value(),
            hourly_cap=self.hourly_cap.value(),
            domain_cap=self.domain_cap.value(),
            min_delay_s=float(self.min_delay.value()),
            jitter_s=float(self.jitter.value()),
            hours_start_min=start.hour() * 60 + start.minute(),
            hours_end_min=end.hour() * 60 + end.minute(),
            business_days=frozenset(i for i, box in enumerate(self.days) if box.isChecked()),
            timezone=self.timezone.text().strip() or "UTC",
            use_recipient_timezone=self.recipient_tz.isChecked(),
            warmup_enabled=self.warmup.isChecked(),
            warmup_start=self.warmup_start.value(),
            warmup_step=self.warmup_step.value(),
            warmup_every_days=self.warmup_every.value(),
            bounce_breaker_rate=self.breaker.value() / 100,
            bounce_breaker_min_sample=self.breaker_sample.value(),
            manual_mail_buffer=self.manual_buffer.value() / 100,
            approve_first_touch=self.approve_first.isChecked(),
            expire_after_days=self.expire.value(),
        )
        return self.mailbox.settings_from(replace(self.original, guardrails=guardrails))

    def problems(self, settings: v.AccountSettings) -> list[str]:
        found = []
        g = settings.guardrails
        if not settings.email or "@" not in settings.email:
            found.append("Enter the email address you send from.")
        if not settings.smtp_host:
            found.append("Enter the SMTP server.")
        if g.hours_end_min <= g.hours_start_min:
            found.append("Sending hours must end after they start.")
        if not g.business_days:
            found.append("Pick at least one sending day.")
        if g.hourly_cap > g.daily_cap:
            found.append("The hourly cap cannot be above the daily cap.")
        return found

    def save(self) -> None:
        settings = self.collected()
        problems = self.problems(settings)
        if problems:
            self.show_error(" ".join(problems))
            return
        password = self.password.text() or None
        self.save_button.setEnabled(False)
        self.error.hide()

        def done(account_id: int) -> None:
            self.password.clear()
            self.saved.emit(account_id)
            self.ctx.messages.info("Settings saved.")
            self.accept()

        def failed(exc: BaseException) -> None:
            self.save_button.setEnabled(True)
            self.show_error(str(exc))

        self.ctx.runner.run(
            self.ctx.runtime.save_account_settings(settings, password=password),
            on_success=done,
            on_error=failed,
        )

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
