"""Colours and levels. The window follows the OS palette; only the semantic green/amber/red are fixed,
with a lighter variant on dark palettes so they keep their contrast."""

from __future__ import annotations

from enum import Enum

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BOUNCE_AMBER_FROM = 0.02
"""Bounce-rate gauge: green below 2 % (where the strictest tools start to pause), amber from 2 %, red from the
breaker rate (5 % by default) upwards: at the breaker the next bounce trips it."""

CAP_AMBER_FROM = 0.75
CAP_RED_FROM = 0.9
"""Cap bars: amber from 75 % of the limit used, red from 90 %."""


class Level(Enum):
    OK = "ok"
    WARN = "warn"
    BAD = "bad"
    NONE = "none"  # no data yet


_LIGHT = {Level.OK: "#1e8e3e", Level.WARN: "#b26a00", Level.BAD: "#c5221f"}
_DARK = {Level.OK: "#5bb974", Level.WARN: "#f9ab00", Level.BAD: "#f28b82"}


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def level_color(level: Level, palette: QPalette | None = None) -> QColor:
    palette = palette or QApplication.palette()
    if level is Level.NONE:
        return palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
    return QColor((_DARK if is_dark(palette) else _LIGHT)[level])


class LevelColors:
    """Level colours looked up once (for table cells painted many times a second)."""

    def __init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.ok = level_color(Level.OK)
        self.warn = level_color(Level.WARN)
        self.bad = level_color(Level.BAD)
        self.none = level_color(Level.NONE)

    def __getitem__(self, level: Level) -> QColor:
        return {Level.OK: self.ok, Level.WARN: self.warn, Level.BAD: self.bad, Level.NONE: self.none}[level]


def bounce_level(rate: float | None, *, breaker: float) -> Level:
    if rate is None:
        return Level.NONE
    if rate >= breaker:
        return Level.BAD
    if rate >= BOUNCE_AMBER_FROM:
        return Level.WARN
    return Level.OK


def cap_level(used: int, limit: int) -> Level:
    if limit <= 0:
        return Level.BAD if used > 0 else Level.NONE
    share = used / limit
    if share >= CAP_RED_FROM:
        return Level.BAD
    if share >= CAP_AMBER_FROM:
        return Level.WARN
    return Level.OK


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"
