"""A clock that runs `speed` times faster than real time from a chosen start instant."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ScaledClock:
    """core.ports.FastClock: `now()` advances `speed` simulated seconds per real second."""

    def __init__(
        self, start: datetime, *, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the start instant needs a time zone")
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = float(speed)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed

    def elapsed(self) -> timedelta:
        """Simulated time since the start."""
        return self.now() - self.start


def demo_start(today: datetime) -> datetime:
    """Where the demo's week begins: the Monday of `today`'s week at 07:50 UTC, just before business
    hours, so the first sends go out within simulated minutes whatever day it really is."""
    day = today.astimezone(UTC).date() - timedelta(days=today.astimezone(UTC).weekday())
    return datetime(day.year, day.month, day.day, 7, 50, tzinfo=UTC)
