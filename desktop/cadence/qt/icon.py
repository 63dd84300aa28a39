"""The app icon (resources/icons/cadence.svg, painted if missing); the tray icon adds a status dot."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from cadence.resources import icon_path


def _paint_fallback(painter: QPainter, size: int) -> None:
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#3b5bdb"))
    radius = size * 0.22
    painter.drawRoundedRect(QRectF(0, 0, size, size), radius, radius)
    painter.setPen(QColor("white"))
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(8, int(size * 0.62)))
    painter.setFont(font)
    painter.drawText(QRectF(0, 0, size, size * 0.98), Qt.AlignmentFlag.AlignCenter, "C")


def app_icon(status: QColor | None = None) -> QIcon:
    icon = QIcon()
    svg = icon_path()
    renderer = QSvgRenderer(str(svg)) if svg is not None else None
    if renderer is not None and not renderer.isValid():
        renderer = None
    for size in (16, 22, 32, 48, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if renderer is not None:
            renderer.render(painter, QRectF(0, 0, size, size))
        else:
            _paint_fallback(painter, size)
        if status is not None:
            dot = size * 0.38
            painter.setPen(QColor("white"))
            painter.setBrush(status)
            painter.drawEllipse(QRectF(size - dot - 1, size - dot - 1, dot, dot))
        painter.end()
        icon.addPixmap(pixmap)
    return icon
