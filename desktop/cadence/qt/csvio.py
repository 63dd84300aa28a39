"""CSV import/export for the window's tables, off the event loop (files can be large, disks slow)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QWidget

from cadence.qt.errors import KnownEnvironmentError

PAGE = 1000


async def collect(fetch: Callable[[int, int], Awaitable[Sequence[Any]]]) -> list[Any]:
    rows: list[Any] = []
    while True:
        page = await fetch(len(rows), PAGE)
        rows.extend(page)
        if len(page) < PAGE:
            return rows


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


async def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    try:
        await asyncio.to_thread(_write, path, header, rows)
    except OSError as exc:
        raise KnownEnvironmentError(f"Could not write {path}: {exc.strerror or exc}") from exc


async def read_bytes(path: Path) -> bytes:
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise KnownEnvironmentError(f"Could not read {path}: {exc.strerror or exc}") from exc


def first_column(data: bytes) -> list[str]:
    """Values from a one-column CSV (or the column named email/address/domain/value), header optional."""
    text = data.decode("utf-8-sig", errors="replace")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = 0
    for name in ("email", "address", "value", "domain", "email address"):
        if name in header:
            column = header.index(name)
            rows = rows[1:]
            break
    else:
        if "@" not in rows[0][0] and "." not in rows[0][0]:
            rows = rows[1:]
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def ask_path(
    parent: QWidget, *, title: str, save: bool, on_chosen: Callable[[Path], None], suggested: str = ""
) -> QFileDialog:
    """A non-blocking file dialog (open(), never exec() from a coroutine)."""
    dialog = QFileDialog(parent, title)
    dialog.setNameFilters(["CSV files (*.csv)", "All files (*)"])
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("csv")
        dialog.selectFile(suggested)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.fileSelected.connect(lambda name: on_chosen(Path(name)))
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog
