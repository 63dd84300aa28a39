"""Background work for widgets, Anki-style: run(coroutine, on_success=…, on_error=…) with a default error
path. The runner keeps a strong reference to every task (asyncio only keeps weak ones) and cancels and
awaits them on shutdown, so no widget ever fires and forgets."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal
from shiboken6 import isValid

from cadence.qt.errors import handle_exception

T = TypeVar("T")


class TaskRunner(QObject):
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def run(
        self,
        coro: Awaitable[T],
        *,
        on_success: Callable[[T], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
    ) -> asyncio.Task[T] | None:
        if self._closed:
            if inspect.iscoroutine(coro):
                coro.close()
            return None
        task = asyncio.ensure_future(coro)
        was_busy = self.busy
        self._tasks.add(task)
        if not was_busy:
            self.busy_changed.emit(True)

        def done(finished: asyncio.Task[T]) -> None:
            self._tasks.discard(finished)
            if not self._tasks and not self._closed:
                self.busy_changed.emit(False)
            if finished.cancelled() or self._closed or not isValid(self):
                return  # the window is going away: its widgets must not be touched any more
            exc = finished.exception()
            if exc is not None:
                (on_error or handle_exception)(exc)
            elif on_success is not None:
                on_success(finished.result())

        task.add_done_callback(done)
        return task

    async def shutdown(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
