"""Small shared widgets: headings, empty-state placeholders, a stat tile, a status dot."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QFrame, QLabel, QSizePolicy, QTableView, QVBoxLayout, QWidget


def heading(text: str, *, scale: float = 1.25) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    return label


def muted(text: str = "", *, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class EmptyState(QWidget):
    """Shown in place of an empty table: what this place is for and what to do next."""

    def __init__(self, title: str, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.title = heading(title, scale=1.15)
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.hint = muted(hint)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addStretch(2)

    def set_text(self, title: str, hint: str) -> None:
        self.title.setText(title)
        self.hint.setText(hint)


class StatTile(QFrame):
    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        self.value = heading("—", scale=1.6)
        self.caption = muted(caption, wrap=False)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def set_value(self, value: str, *, sub: str = "", color: QColor | None = None) -> None:
        self.value.setText(value)
        palette = self.value.palette()
        if color is not None:
            palette.setColor(QPalette.ColorRole.WindowText, color)
        else:
            palette = self.palette()
        self.value.setPalette(palette)
        self.setAccessibleName(f"{self.caption.text()}: {value} {sub}".strip())
        self.setToolTip(sub)


class Dot(QWidget):
    def __init__(self, color: QColor | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.color = color or QColor("gray")
        self.setFixedSize(self.sizeHint())

    def sizeHint(self) -> QSize:
        em = self.fontMetrics().height()
        return QSize(int(em * 0.7), int(em * 0.7))

    def set_color(self, color: QColor) -> None:
        self.color = color
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.color)
        painter.drawEllipse(self.rect().adjusted(1, 1, -1, -1))
        painter.end()


def setup_table(table: QTableView, *, name: str, accessible: str, multi: bool = False) -> None:
    """The look every data table shares: whole-row selection, compact rows that scale with the font."""
    table.setObjectName(name)
    table.setAccessibleName(accessible)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(
        QAbstractItemView.SelectionMode.ExtendedSelection
        if multi
        else QAbstractItemView.SelectionMode.SingleSelection
    )
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setTabKeyNavigation(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(int(table.fontMetrics().height() * 1.55))
    table.horizontalHeader().setHighlightSections(False)
