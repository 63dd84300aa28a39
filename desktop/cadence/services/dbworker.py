"""All store calls run on ONE worker thread (as Anki does): SQLite work never blocks the event loop, and the
store never sees two calls at once from this process."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class DbWorker:
    """`await db.call(store.method, arg, key=value)` runs the call on the database thread."""

    def __init__(self, *, name: str = "cadence-db") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    @property
    def executor(self) -> ThreadPoolExecutor:
        """For services that take an Executor (the inbox watcher's sink calls)."""
        return self._executor

    async def call(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise RuntimeError("the database worker is shut down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    def shutdown(self) -> None:
        """Wait for the call in progress (if any) and stop the thread. Idempotent."""
        self._closed = True
        self._executor.shutdown(wait=True)
