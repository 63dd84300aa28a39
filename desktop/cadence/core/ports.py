"""Protocols the services depend on; adapters implement them, tests may pass real or clock fakes.

Each area keeps its protocols in its own section below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from cadence.core.model import SendResult


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- sending ------------------------------------------------------------------------------------------


class Mailer(Protocol):
    """One account's submission connection. Never raises library exceptions: every result is a SendResult."""

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult: ...

    async def close(self) -> None: ...


# --- secrets ------------------------------------------------------------------------------------------


class SecretStore(Protocol):
    """The OS keyring, called off the event loop. Secrets never touch disk anywhere else."""

    async def get(self, account: str) -> str | None: ...

    async def set(self, account: str, secret: str) -> None: ...

    async def delete(self, account: str) -> None: ...
