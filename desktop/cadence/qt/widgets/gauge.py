"""The bounce-rate gauge: a painted half-dial against the breaker rate, coloured green / amber / red."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cadence.core.views import RateSample
from cadence.qt.theme import BOUNCE_AMBER_FROM, Level, bounce_level, level_color, percent


class BounceGauge(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.sample = RateSample(0, 0)
        self.breaker = 0.05
        self.min_sample = 20
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self._update_accessible()

    def set_sample(self, sample: RateSample, *, breaker: float, min_sample: int) -> None:
        self.sample = sample
        self.breaker = breaker
        self.min_sample = min_sample
        self._update_accessible()
        self.update()

    @property
    def level(self) -> Level:
        return bounce_level(self.sample.rate, breaker=self.breaker)

    def caption(self) -> str:
        if not self.sample.sample:
            return "no sends yet"
        text = f"{self.sample.events} of {self.sample.sample} sends"
        if self.sample.sample < self.min_sample:
            text += f" · breaker waits for {self.min_sample}"
        return text

    def _update_accessible(self) -> None:
        summary = (
            f"{self.title}: {percent(self.sample.rate)}, {self.caption()}, breaker at {percent(self.breaker)}"
        )
        self.setAccessibleName(summary)
        self.setToolTip(
            f"{summary}\nGreen below {percent(BOUNCE_AMBER_FROM)}, amber from {percent(BOUNCE_AMBER_FROM)}, "
            f"red from the breaker ({percent(self.breaker)})."
        )

    def sizeHint(self) -> QSize:
        em = self.fontMetrics().height()
        return QSize(int(em * 12), int(em * 10.5))

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        em = self.fontMetrics().height()
        width = self.width()
        thickness = em * 0.9
        diameter = min(width - thickness - 4, (self.height() - em * 4.4 - thickness / 2) * 2)
        arc = QRectF((width - diameter) / 2, em * 1.6 + thickness / 2, diameter, diameter)
        # scale: 0 .. 2 × breaker, so the breaker sits at the top of the dial
        full = self.breaker * 2

        def angle(rate: float) -> float:
            return 180.0 - 180.0 * min(max(rate / full, 0.0), 1.0)

        track = palette.color(QPalette.ColorRole.Mid)
        track.setAlpha(90)
        painter.setPen(QPen(track, thickness, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
        painter.drawArc(arc, 0, 180 * 16)
        # faint zones
        zones = (
            (0.0, BOUNCE_AMBER_FROM, Level.OK),
            (BOUNCE_AMBER_FROM, self.breaker, Level.WARN),
            (self.breaker, full, Level.BAD),
        )
        for start, end, level in zones:
            color = QColor(level_color(level, palette))
            color.setAlpha(55)
            painter.setPen(QPen(color, thickness, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
            painter.drawArc(arc, int(angle(end) * 16), int((angle(start) - angle(end)) * 16))
        rate = self.sample.rate
        level = self.level
        if rate is not None and rate > 0:
            painter.setPen(
                QPen(level_color(level, palette), thickness, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap)
            )
            painter.drawArc(arc, int(angle(rate) * 16), int((180 - angle(rate)) * 16))
        # breaker tick
        painter.save()
        painter.translate(arc.center())
        painter.rotate(-angle(self.breaker))
        painter.setPen(QPen(palette.color(QPalette.ColorRole.WindowText), max(2.0, em / 8)))
        painter.drawLine(int(diameter / 2 - thickness / 2 - 2), 0, int(diameter / 2 + thickness / 2 + 2), 0)
        painter.restore()
        # texts
        painter.setPen(palette.color(QPalette.ColorRole.WindowText))
        title_font = QFont(self.font())
        title_font.setBold(True)
        painter.setFont(title_font)
        painter.drawText(QRectF(0, 0, width, em * 1.4), Qt.AlignmentFlag.AlignHCenter, self.title)
        value_font = QFont(self.font())
        value_font.setPointSizeF(self.font().pointSizeF() * 1.8)
        value_font.setBold(True)
        painter.setFont(value_font)
        painter.setPen(
            level_color(level, palette)
            if level is not Level.NONE
            else palette.color(QPalette.ColorRole.WindowText)
        )
        value_rect = QRectF(0, arc.center().y() - em * 2.1, width, em * 2.2)
        painter.drawText(
            value_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, percent(rate)
        )
        painter.setFont(self.font())
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        caption_rect = QRectF(0, arc.center().y() + em * 0.3, width, em * 1.3)
        painter.drawText(caption_rect, Qt.AlignmentFlag.AlignHCenter, self.caption())
        painter.drawText(
            QRectF(0, arc.center().y() + em * 1.4, width, em * 1.3),
            Qt.AlignmentFlag.AlignHCenter,
            f"breaker {percent(self.breaker)}",
        )
        painter.end()
