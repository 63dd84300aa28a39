"""Non-modal message banners above the tabs: info / warning / error, each with a close button and an
optional action. User-facing errors end up here, never in a modal box."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget

from cadence.qt.theme import Level, level_color

_LEVELS = {"info": Level.NONE, "warning": Level.WARN, "error": Level.BAD}


class Banner(QFrame):
    closed = Signal()
    action_triggered = Signal()

    def __init__(
        self, text: str, *, level: str = "info", action: str | None = None, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.level = level
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        accent = level_color(_LEVELS.get(level, Level.NONE), self.palette())
        if level == "info":
            accent = self.palette().color(QPalette.ColorRole.Highlight)
        base = self.palette().color(QPalette.ColorRole.Base)
        tint = QColor(
            (accent.red() * 30 + base.red() * 70) // 100,
            (accent.green() * 30 + base.green() * 70) // 100,
            (accent.blue() * 30 + base.blue() * 70) // 100,
        )
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, tint)
        self.setPalette(palette)
        self.setStyleSheet(
            f"#banner {{ border: 1px solid {accent.name()}; border-radius: 4px; "
            f"background-color: {tint.name()}; }}"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(self.label.textInteractionFlags())
        layout.addWidget(self.label, 1)
        self.action_button: QPushButton | None = None
        if action:
            self.action_button = QPushButton(action)
            self.action_button.clicked.connect(self.action_triggered)
            layout.addWidget(self.action_button)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.dismiss)
        layout.addWidget(close)

    def text(self) -> str:
        return self.label.text()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()
        self.deleteLater()


class BannerArea(QWidget):
    """A column of banners; identical messages are not stacked twice, info messages fade after a while."""

    MAX_BANNERS = 3

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._banners: list[Banner] = []
        self.info_timeout_ms = 6000

    def show_message(
        self, level: str, text: str, *, action: str | None = None, on_action: Callable[[], None] | None = None
    ) -> Banner:
        for banner in self._banners:
            if banner.text() == text and banner.level == level:
                return banner
        banner = Banner(text, level=level, action=action, parent=self)
        if on_action is not None:
            banner.action_triggered.connect(on_action)
        banner.closed.connect(lambda b=banner: self._forget(b))
        self._banners.append(banner)
        self._layout.addWidget(banner)
        while len(self._banners) > self.MAX_BANNERS:
            self._banners[0].dismiss()
        if level == "info":
            QTimer.singleShot(self.info_timeout_ms, banner, banner.dismiss)
        return banner

    def _forget(self, banner: Banner) -> None:
        if banner in self._banners:
            self._banners.remove(banner)

    def messages(self) -> list[tuple[str, str]]:
        return [(b.level, b.text()) for b in self._banners]
