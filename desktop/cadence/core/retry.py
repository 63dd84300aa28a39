"""When to try a deferred message again, and how fast the account may go after throttling.

Pure functions on values; the clock and the random source are passed in.

Deferrals: 5 → 10 → 20 → 40 → 60 min (then every 60 min), ±20 % jitter, never sooner than the server asked
("try again in N seconds"), and no attempt later than 72 h after the first failure.

Throttling (AIMD, like TCP congestion control): every throttling reply opens the account-wide breaker for a
backoff that doubles with consecutive throttles; from the second consecutive throttle on, the pace factor
halves (multiplicative decrease, down to a floor); each clean send adds a little back (additive increase)
until the pace is whole again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

DEFERRAL_STEPS_S: tuple[float, ...] = (300.0, 600.0, 1200.0, 2400.0, 3600.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    steps_s: tuple[float, ...] = DEFERRAL_STEPS_S  # the last step repeats
    jitter: float = 0.20  # ± fraction of each step
    give_up_after_s: float = 72 * 3600.0  # counted from the first failure


@dataclass(frozen=True, slots=True)
class RetryAt:
    not_before: datetime
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


RetryDecision = RetryAt | GiveUp


def deferral_delay(attempt: int, *, rng: random.Random, policy: RetryPolicy = RetryPolicy()) -> float:
    """Seconds before retry number `attempt` (1 = the first retry after the first deferral), jittered."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    base = policy.steps_s[min(attempt, len(policy.steps_s)) - 1]
    return base * (1.0 + rng.uniform(-policy.jitter, policy.jitter))


def next_retry(
    attempt: int,
    *,
    first_failure_at: datetime,
    now: datetime,
    rng: random.Random,
    retry_after_s: float | None = None,
    policy: RetryPolicy = RetryPolicy(),
) -> RetryDecision:
    """Retry at `now` + the jittered step (at least the server's retry-after), or give up past the limit."""
    deadline = first_failure_at + timedelta(seconds=policy.give_up_after_s)
    if now >= deadline:
        return GiveUp(f"still failing {policy.give_up_after_s / 3600:g} h after the first attempt")
    delay = deferral_delay(attempt, rng=rng, policy=policy)
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    not_before = now + timedelta(seconds=delay)
    if not_before > deadline:
        return GiveUp(f"the next attempt would fall after the {policy.give_up_after_s / 3600:g} h limit")
    return RetryAt(not_before=not_before, delay_s=delay)


@dataclass(frozen=True, slots=True)
class PaceConfig:
    decrease_after: int = 2  # consecutive throttles before the pace factor halves
    decrease_factor: float = 0.5
    increase_step: float = 0.05  # added per clean send
    min_factor: float = 1.0 / 16
    base_backoff_s: float = 300.0  # first throttle: 5 min
    max_backoff_s: float = 6 * 3600.0
    jitter: float = 0.20


@dataclass(frozen=True, slots=True)
class PaceState:
    """Per account. `factor` scales the sending rate (1 = full pace); `backoff_until` is the open breaker."""

    factor: float = 1.0
    consecutive_throttles: int = 0
    backoff_until: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        """True while the breaker holds all sends of the account."""
        return self.backoff_until is not None and now < self.backoff_until


def after_throttle(
    state: PaceState,
    *,
    now: datetime,
    rng: random.Random,
    retry_after_s: float | None = None,
    config: PaceConfig = PaceConfig(),
) -> PaceState:
    """A throttling reply (421, 4.7.x, provider texts): open the breaker, maybe halve the pace."""
    throttles = state.consecutive_throttles + 1
    backoff = min(config.base_backoff_s * 2 ** (throttles - 1), config.max_backoff_s)
    backoff *= 1.0 + rng.uniform(-config.jitter, config.jitter)
    if retry_after_s is not None:
        backoff = max(backoff, retry_after_s)
    until = now + timedelta(seconds=backoff)
    if state.backoff_until is not None and state.backoff_until > until:
        until = state.backoff_until
    factor = state.factor
    if throttles >= config.decrease_after:
        factor = max(config.min_factor, factor * config.decrease_factor)
    return PaceState(factor=factor, consecutive_throttles=throttles, backoff_until=until)


def after_clean_send(state: PaceState, *, config: PaceConfig = PaceConfig()) -> PaceState:
    """A 2xx: the throttle streak ends and the pace grows back by one additive step."""
    return replace(
        state,
        factor=min(1.0, state.factor + config.increase_step),
        consecutive_throttles=0,
    )


def paced_interval(base_interval_s: float, state: PaceState) -> float:
    """The spacing between sends at the current pace (a factor of 0.5 doubles the interval)."""
    return base_interval_s / state.factor
