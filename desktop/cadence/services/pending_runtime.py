"""A RuntimeApi that exists before the real one: the window is built and shown over it while the database,
keyring and services open in the background, then `attach(runtime)` hands every call on to the real one.

Until then each RuntimeApi coroutine waits for the real runtime (a tab's first load simply takes longer),
listeners are kept and subscribed on attach, and `aclose()` waits for the outcome and closes what opened.
If opening fails, `fail(error)` ends every wait with a UserFacingError carrying the same sentence.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from cadence.core.ports import RuntimeApi, RuntimeListener, UserFacingError


class _Subscription:
    def __init__(self, listener: RuntimeListener) -> None:
        self.listener = listener
        self.unsubscribe: Callable[[], None] | None = None  # the real runtime's, once attached


def _is_coroutine_member(name: str) -> bool:
    return not name.startswith("_") and inspect.iscoroutinefunction(getattr(RuntimeApi, name, None))


class PendingRuntime:
    """Stands in for a RuntimeApi until `attach()`; after it, attribute access goes to the real runtime."""

    def __init__(self) -> None:
        self._runtime: RuntimeApi | None = None
        self._error: BaseException | None = None
        self._settled = asyncio.Event()
        self._subscriptions: list[_Subscription] = []

    @property
    def ready(self) -> bool:
        return self._runtime is not None

    @property
    def settled(self) -> bool:
        """Attached or failed: nothing is waiting for the outcome any more."""
        return self._settled.is_set()

    def attach(self, runtime: RuntimeApi) -> None:
        if self._settled.is_set():
            raise RuntimeError("the pending runtime was already attached or failed")
        self._runtime = runtime
        for subscription in self._subscriptions:
            subscription.unsubscribe = runtime.subscribe(subscription.listener)
        self._subscriptions.clear()
        self._settled.set()

    def fail(self, error: BaseException) -> None:
        """Opening failed: calls waiting now (and later) raise UserFacingError with the error's sentence."""
        if self._settled.is_set():
            raise RuntimeError("the pending runtime was already attached or failed")
        self._error = error
        self._settled.set()

    async def runtime(self) -> RuntimeApi:
        """The real runtime, once it is there."""
        await self._settled.wait()
        if self._runtime is None:
            raise UserFacingError(str(self._error))
        return self._runtime

    def subscribe(self, listener: RuntimeListener) -> Callable[[], None]:
        if self._runtime is not None:
            return self._runtime.subscribe(listener)
        subscription = _Subscription(listener)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            if subscription.unsubscribe is not None:
                subscription.unsubscribe()
                subscription.unsubscribe = None

        return unsubscribe

    async def aclose(self) -> None:
        """Closes the real runtime; when it is still opening, waits for it first (nothing is left open)."""
        await self._settled.wait()
        if self._runtime is not None:
            await self._runtime.aclose()

    def __getattr__(self, name: str) -> Any:
        runtime = self.__dict__.get("_runtime")
        if runtime is not None:
            return getattr(runtime, name)
        if not _is_coroutine_member(name):
            raise AttributeError(name)

        async def call_when_ready(*args: Any, **kwargs: Any) -> Any:
            real = await self.runtime()
            method: Callable[..., Awaitable[Any]] = getattr(real, name)
            return await method(*args, **kwargs)

        call_when_ready.__name__ = name
        return call_when_ready
