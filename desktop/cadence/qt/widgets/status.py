"""The status line: sending / paused (why) / outside hours, today's sends against the effective cap, the
next send time and the 24 h bounce rate. The same text feeds the tray tooltip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from cadence.core import views as v
from cadence.qt import fmt
from cadence.qt.theme import Level, bounce_level, cap_level, level_color, percent
from cadence.qt.widgets.common import Dot

STATE_TEXT = {
    v.SendingState.SENDING: "Sending",
    v.SendingState.IDLE: "Idle — nothing due",
    v.SendingState.PAUSED: "Paused",
    v.SendingState.OUTSIDE_HOURS: "Outside sending hours",
    v.SendingState.CAP_REACHED: "Today's cap reached",
    v.SendingState.NO_ACCOUNT: "No account set up",
}

STATE_LEVEL = {
    v.SendingState.SENDING: Level.OK,
    v.SendingState.IDLE: Level.OK,
    v.SendingState.PAUSED: Level.BAD,
    v.SendingState.OUTSIDE_HOURS: Level.NONE,
    v.SendingState.CAP_REACHED: Level.WARN,
    v.SendingState.NO_ACCOUNT: Level.WARN,
}


def state_text(status: v.StatusView) -> str:
    text = STATE_TEXT[status.state]
    if status.state is v.SendingState.PAUSED and status.pause_reason:
        text += f": {status.pause_reason}"
    return text


def status_lines(status: v.StatusView, now: datetime) -> list[str]:
    lines = [state_text(status), f"Today {status.sent_today} of {status.cap_today}"]
    if status.next_send_at is not None and status.state is not v.SendingState.PAUSED:
        lines.append(f"Next send {fmt.clock_time(status.next_send_at, now=now)}")
    rate = status.bounce_24h
    lines.append(f"Bounces 24 h {percent(rate.rate)} ({rate.events}/{rate.sample})")
    if status.pending_approval:
        lines.append(f"{status.pending_approval:,} waiting for approval")
    return lines


class StatusPanel(QWidget):
    def __init__(self, now: Callable[[], datetime], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._now = now
        self.status: v.StatusView | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(6)
        self.dot = Dot()
        self.state = QLabel("Starting…")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.sent = QLabel()
        self.next_send = QLabel()
        self.bounce = QLabel()
        layout.addWidget(self.dot)
        layout.addWidget(self.state)
        layout.addStretch(1)
        for i, label in enumerate((self.sent, self.next_send, self.bounce)):
            if i:
                layout.addWidget(QLabel("·"))
            layout.addWidget(label)
        self.setAccessibleName("Sending status")

    def set_status(self, status: v.StatusView) -> None:
        self.status = status
        now = self._now()
        self.dot.set_color(level_color(STATE_LEVEL[status.state]))
        text = state_text(status)
        self.state.setText(
            self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, self.fontMetrics().height() * 30)
        )
        self.state.setToolTip(text + (f"\n{status.detail}" if status.detail else ""))
        self.sent.setText(f"Today {status.sent_today} / {status.cap_today}")
        cap = cap_level(status.sent_today, status.cap_today)
        self.sent.setToolTip(
            f"{status.sent_today} sent today; effective cap {status.cap_today}"
            + (" — close to the limit" if cap is Level.BAD else "")
        )
        if status.state is v.SendingState.PAUSED:
            self.next_send.setText("Next send: paused")
        elif status.next_send_at is None:
            self.next_send.setText("Next send: —")
        else:
            self.next_send.setText(f"Next send {fmt.clock_time(status.next_send_at, now=now)}")
            self.next_send.setToolTip(fmt.until(status.next_send_at, now))
        rate = status.bounce_24h
        self.bounce.setText(f"Bounces 24 h {percent(rate.rate)}")
        self.bounce.setToolTip(f"{rate.events} bounced of {rate.sample} sent in the last 24 hours")
        level = bounce_level(rate.rate, breaker=status.breaker_rate)
        palette = self.bounce.palette()
        if level in (Level.WARN, Level.BAD):
            palette.setColor(self.bounce.foregroundRole(), level_color(level))
        else:
            palette = self.palette()
        self.bounce.setPalette(palette)
        self.setAccessibleDescription("; ".join(status_lines(status, now)))

    def text(self) -> str:
        return " · ".join(
            label.text() for label in (self.state, self.sent, self.next_send, self.bounce) if label.text()
        )
