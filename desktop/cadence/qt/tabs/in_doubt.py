"""Messages in doubt: the connection dropped after a message was handed over, so nobody knows whether it
went out. Cadence never sends such a message again by itself; this panel (on the Deliverability tab) lets
the user settle each one: "It arrived — mark sent" or "Send again" (same Message-ID)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cadence.core import views as v
from cadence.qt import fmt
from cadence.qt.context import WindowContext
from cadence.qt.errors import handle_exception
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.common import heading, muted

MAX_ROWS = 25  # more than this is a sign of a broken connection, not something to settle one by one

EXPLANATION = (
    "The connection to the mail server dropped right after these messages were handed over, so the server "
    "may or may not have taken them. Cadence does not send them again by itself. Look in the Sent folder "
    "of your mail program, or ask the recipient: if a message is there, mark it sent; if not, send it "
    "again. A message sent again keeps its Message-ID, so a server that did take the first copy can drop "
    "the second."
)


class InDoubtRow(QFrame):
    settle_requested = Signal(int, bool)  # outbox id, sent (True: it arrived; False: send again)

    def __init__(self, item: v.InDoubtView, *, now_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        texts = QVBoxLayout()
        self.title = QLabel(f"{item.recipient} — {item.subject}")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = muted(
            f"Handed over {now_text} from {item.account_email} · Message-ID {item.message_id}"
        )
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        texts.addWidget(self.title)
        texts.addWidget(self.detail)
        layout.addLayout(texts, 1)
        self.mark_sent_button = QPushButton("It arrived — mark sent")
        self.mark_sent_button.setToolTip(
            "You found it in Sent or the recipient has it: count it as sent; the next step follows as "
            "planned."
        )
        self.send_again_button = QPushButton("Send again")
        self.send_again_button.setToolTip(
            "It is not in Sent: queue it again with the same Message-ID (caps and pacing still apply)."
        )
        self.mark_sent_button.clicked.connect(lambda: self._settle(sent=True))
        self.send_again_button.clicked.connect(lambda: self._settle(sent=False))
        for button in (self.mark_sent_button, self.send_again_button):
            button.setAccessibleDescription(f"{item.recipient}: {item.subject}")
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.setToolTip(item.why)

    def _settle(self, *, sent: bool) -> None:
        self.mark_sent_button.setEnabled(False)
        self.send_again_button.setEnabled(False)
        self.settle_requested.emit(self.item.id, sent)

    def enable(self) -> None:
        self.mark_sent_button.setEnabled(True)
        self.send_again_button.setEnabled(True)


class InDoubtPanel(QFrame):
    """Hidden while nothing is in doubt; otherwise a tinted box that is hard to miss."""

    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("inDoubtPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Messages in doubt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        self.title = heading("In doubt", scale=1.1)
        self.explanation = QLabel(EXPLANATION)
        self.explanation.setWordWrap(True)
        layout.addWidget(self.title)
        layout.addWidget(self.explanation)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(0)
        layout.addLayout(self.rows_layout)
        self.more = muted()
        layout.addWidget(self.more)
        self.rows: list[InDoubtRow] = []
        self.items: list[v.InDoubtView] = []
        self.hide()
        self._tint()

    def _tint(self) -> None:
        accent = level_color(Level.WARN, self.palette())
        base = self.palette().color(QPalette.ColorRole.Base)
        tint = QColor(
            (accent.red() * 16 + base.red() * 84) // 100,
            (accent.green() * 16 + base.green() * 84) // 100,
            (accent.blue() * 16 + base.blue() * 84) // 100,
        )
        self.setStyleSheet(
            f"#inDoubtPanel {{ border: 1px solid {accent.name()}; border-radius: 4px; "
            f"background-color: {tint.name()}; }}"
        )

    def load(self) -> None:
        self.ctx.runner.run(self.ctx.runtime.list_in_doubt(), on_success=self.set_items)

    def set_items(self, items: list[v.InDoubtView]) -> None:
        self.items = list(items)
        for row in self.rows:
            self.rows_layout.removeWidget(row)
            row.deleteLater()
        self.rows = []
        now = self.ctx.now()
        for item in self.items[:MAX_ROWS]:
            when = f"{fmt.clock_time(item.since, now=now)} ({fmt.age(item.since, now)} ago)"
            row = InDoubtRow(item, now_text=when)
            row.settle_requested.connect(self.settle)
            self.rows_layout.addWidget(row)
            self.rows.append(row)
        hidden = len(self.items) - len(self.rows)
        self.more.setVisible(hidden > 0)
        self.more.setText(f"… and {hidden} more (settle the ones above first)." if hidden > 0 else "")
        self.title.setText(f"In doubt ({len(self.items)}): did these messages go out?")
        self.setVisible(bool(self.items))

    def settle(self, outbox_id: int, sent: bool) -> None:
        row = next((r for r in self.rows if r.item.id == outbox_id), None)

        def done(_: None) -> None:
            what = "marked as sent" if sent else "queued to be sent again"
            recipient = row.item.recipient if row is not None else "the recipient"
            self.ctx.messages.info(f"The message to {recipient} was {what}.")
            self.load()

        def failed(error: BaseException) -> None:
            if row is not None and row in self.rows:
                row.enable()
            handle_exception(error)  # a UserFacingError becomes the banner; a bug, the crash dialog
            self.load()

        self.ctx.runner.run(
            self.ctx.runtime.settle_in_doubt(outbox_id, sent=sent), on_success=done, on_error=failed
        )
