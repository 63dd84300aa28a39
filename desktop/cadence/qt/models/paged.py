"""A table model that loads rows page by page from an async source (canFetchMore / fetchMore), so a queue
of 100,000 drafts opens with one page in memory and the rest arrives as the user scrolls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from cadence.qt.asyncutil import TaskRunner

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex

_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_FONT = int(Qt.ItemDataRole.FontRole.value)
_SORT = int(SORT_ROLE)
_ROW = int(ROW_ROLE)
_ROLES = frozenset({_DISPLAY, _TOOLTIP, _ALIGN, _FOREGROUND, _FONT, _SORT, _ROW})
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


@dataclass(frozen=True)
class Column:
    title: str
    display: Callable[[Any], str]
    sort_key: Callable[[Any], Any] | None = None
    tooltip: Callable[[Any], str] | None = None
    align_right: bool = False
    foreground: Callable[[Any], QColor | None] | None = None
    bold: Callable[[Any], bool] | None = None
    header_tip: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


Fetch = Callable[[int, int], Awaitable[Sequence[Any]]]
Count = Callable[[], Awaitable[int]]


class PagedTableModel(QAbstractTableModel):
    loaded = Signal()  # after a reload or an appended page
    total_changed = Signal(int)

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        fetch: Fetch,
        count: Count,
        runner: TaskRunner,
        key: Callable[[Any], Any] = lambda row: getattr(row, "id", row),
        page_size: int = 200,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._columns = list(columns)
        self._fetch = fetch
        self._count = count
        self._runner = runner
        self._key = key
        self.page_size = page_size
        self._rows: list[Any] = []
        self._total = 0
        self._fetching = False
        self._generation = 0  # a reload invalidates pages still in flight
        self._bold_font = QFont()
        self._bold_font.setBold(True)

    # --- Qt model API -------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        column = self._columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole and column.header_tip:
            return column.header_tip
        if role == Qt.ItemDataRole.TextAlignmentRole and column.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell and role on each repaint: plain int comparisons, no enum work.
        role = int(role)
        if role not in _ROLES:
            return None
        row_number = index.row()
        if row_number < 0 or row_number >= len(self._rows):
            return None
        row = self._rows[row_number]
        column = self._columns[index.column()]
        if role == _DISPLAY:
            return column.display(row)
        if role == _SORT:
            return column.sort_key(row) if column.sort_key else column.display(row)
        if role == _ROW:
            return row
        if role == _TOOLTIP:
            return column.tooltip(row) if column.tooltip is not None else None
        if role == _ALIGN:
            return _RIGHT if column.align_right else None
        if role == _FOREGROUND:
            if column.foreground is None:
                return None
            color = column.foreground(row)
            return QBrush(color) if color is not None else None
        if role == _FONT:
            return self._bold_font if column.bold is not None and column.bold(row) else None
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._fetching and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._fetching = True
        generation = self._generation
        offset = len(self._rows)
        self._runner.run(
            self._fetch(offset, self.page_size),
            on_success=lambda rows: self._append(generation, offset, rows),
            on_error=self._fetch_failed,
        )

    # --- loading ------------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return self._total

    @property
    def is_loading(self) -> bool:
        return self._fetching

    def rows(self) -> list[Any]:
        return list(self._rows)

    def row_at(self, row: int) -> Any:
        return self._rows[row]

    def reload(self, *, keep_loaded: bool = False) -> None:
        """Re-read the total and the first page (or as many rows as are loaded now, up to 2,000)."""
        self._generation += 1
        generation = self._generation
        self._fetching = True
        limit = max(self.page_size, min(len(self._rows), 2000)) if keep_loaded else self.page_size

        async def load() -> tuple[int, Sequence[Any]]:
            # both asked at once: the page does not queue behind work other tabs asked for in between
            total, rows = await asyncio.gather(self._count(), self._fetch(0, limit))
            return total, rows

        self._runner.run(
            load(), on_success=lambda result: self._replace(generation, *result), on_error=self._fetch_failed
        )

    def set_rows(self, rows: Sequence[Any]) -> None:
        """For small lists read whole (campaigns, accounts): no paging, same columns and sorting."""
        self._generation += 1
        self._replace(self._generation, len(rows), rows)

    def _replace(self, generation: int, total: int, rows: Sequence[Any]) -> None:
        if generation != self._generation:
            return
        self.beginResetModel()
        self._rows = list(rows)
        self._total = max(total, len(self._rows))
        self._fetching = False
        self.endResetModel()
        self.total_changed.emit(self._total)
        self.loaded.emit()

    def _append(self, generation: int, offset: int, rows: Sequence[Any]) -> None:
        if generation != self._generation or offset != len(self._rows):
            return
        self._fetching = False
        if not rows:
            self._total = len(self._rows)
            self.total_changed.emit(self._total)
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()
        self.loaded.emit()

    def _fetch_failed(self, exc: BaseException) -> None:
        self._fetching = False
        from cadence.qt.errors import handle_exception

        handle_exception(exc)

    def remove_keys(self, keys: Iterable[Any]) -> None:
        """Drop rows the user just acted on, without waiting for the next reload."""
        doomed = set(keys)
        for row in range(len(self._rows) - 1, -1, -1):
            if self._key(self._rows[row]) in doomed:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self._total = max(0, self._total - 1)
                self.endRemoveRows()
        self.total_changed.emit(self._total)

    def row_of_key(self, key: Any) -> int | None:
        for row, item in enumerate(self._rows):
            if self._key(item) == key:
                return row
        return None


class SortProxy(QSortFilterProxyModel):
    """Sorts the loaded rows by each column's sort key; fetchMore passes through to the source."""

    def __init__(self, source: PagedTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def lessThan(self, left: Index, right: Index) -> bool:
        a = left.data(SORT_ROLE)
        b = right.data(SORT_ROLE)
        try:
            return bool(a < b)
        except TypeError:
            return str(a) < str(b)
