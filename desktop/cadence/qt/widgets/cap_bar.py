"""A labelled usage bar for a cap (daily, hourly, per domain) that turns amber, then red, near its limit."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from cadence.core.views import CapUsage
from cadence.qt.theme import Level, cap_level, level_color


class CapBar(QWidget):
    def __init__(self, usage: CapUsage | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.usage = usage or CapUsage("", 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.set_usage(self.usage)

    def set_usage(self, usage: CapUsage) -> None:
        self.usage = usage
        text = f"{usage.label}: {usage.used} of {usage.limit}"
        if usage.detail:
            text += f" ({usage.detail})"
        self.setAccessibleName(text)
        self.setToolTip(text)
        self.update()

    @property
    def level(self) -> Level:
        return cap_level(self.usage.used, self.usage.limit)

    def sizeHint(self) -> QSize:
        em = self.fontMetrics().height()
        return QSize(em * 16, int(em * 2.3))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        em = self.fontMetrics().height()
        width = self.width()
        text_color = palette.color(QPalette.ColorRole.WindowText)
        painter.setPen(text_color)
        painter.drawText(
            QRectF(0, 0, width * 0.65, em),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            self.fontMetrics().elidedText(self.usage.label, Qt.TextElideMode.ElideMiddle, int(width * 0.65)),
        )
        painter.drawText(
            QRectF(width * 0.35, 0, width * 0.65, em),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            f"{self.usage.used} / {self.usage.limit}",
        )
        bar = QRectF(0, em * 1.25, width, em * 0.6)
        track = palette.color(QPalette.ColorRole.Mid)
        track.setAlpha(80)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(track)
        painter.drawRoundedRect(bar, bar.height() / 2, bar.height() / 2)
        if self.usage.limit > 0 and self.usage.used > 0:
            share = min(self.usage.used / self.usage.limit, 1.0)
            filled = QRectF(bar.x(), bar.y(), max(bar.height(), bar.width() * share), bar.height())
            painter.setBrush(level_color(self.level, palette))
            painter.drawRoundedRect(filled, bar.height() / 2, bar.height() / 2)
        painter.end()
