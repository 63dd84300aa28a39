"""The desktop window (PySide6 + qasync). Imports core and services, never adapters.

Entry point for the app bootstrap: `cadence.qt.run_window(runtime_factory, ...)`; the window itself is
`cadence.qt.main_window.MainWindow(runtime, ...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadence.qt.run import run_window as run_window


def __getattr__(name: str) -> Any:
    if name == "run_window":
        from cadence.qt.run import run_window

        return run_window
    raise AttributeError(name)
