"""Deferral schedule and the account's AIMD pace."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cadence.core.retry import (
    GiveUp,
    PaceConfig,
    PaceState,
    RetryAt,
    RetryPolicy,
    after_clean_send,
    after_throttle,
    deferral_delay,
    next_retry,
    paced_interval,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "base"), [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (9, 3600)]
)
def test_schedule_with_jitter_bounds(attempt: int, base: float) -> None:
    rng = random.Random(7)
    delays = [deferral_delay(attempt, rng=rng) for _ in range(500)]
    assert min(delays) >= base * 0.8
    assert max(delays) <= base * 1.2
    assert max(delays) - min(delays) > base * 0.3  # actually jittered, not constant


def test_same_seed_same_schedule() -> None:
    first = [deferral_delay(n, rng=random.Random(42)) for n in range(1, 6)]
    again = [deferral_delay(n, rng=random.Random(42)) for n in range(1, 6)]
    assert first == again


def test_next_retry_from_now() -> None:
    decision = next_retry(1, first_failure_at=T0, now=T0, rng=random.Random(1))
    assert isinstance(decision, RetryAt)
    assert timedelta(seconds=240) <= decision.not_before - T0 <= timedelta(seconds=360)


def test_server_retry_after_is_a_floor() -> None:
    decision = next_retry(1, first_failure_at=T0, now=T0, rng=random.Random(1), retry_after_s=1800)
    assert isinstance(decision, RetryAt)
    assert decision.not_before == T0 + timedelta(seconds=1800)
    short = next_retry(3, first_failure_at=T0, now=T0, rng=random.Random(1), retry_after_s=5)
    assert isinstance(short, RetryAt) and short.delay_s >= 1200 * 0.8


def test_gives_up_after_72_hours() -> None:
    late = T0 + timedelta(hours=72)
    assert isinstance(next_retry(40, first_failure_at=T0, now=late, rng=random.Random(1)), GiveUp)
    near = T0 + timedelta(hours=71, minutes=30)  # an hour's step would land past the limit
    assert isinstance(next_retry(40, first_failure_at=T0, now=near, rng=random.Random(1)), GiveUp)
    assert isinstance(
        next_retry(40, first_failure_at=T0, now=T0 + timedelta(hours=60), rng=random.Random(1)), RetryAt
    )


def test_limit_is_configurable() -> None:
    policy = RetryPolicy(give_up_after_s=48 * 3600)
    at_50h = T0 + timedelta(hours=50)
    assert isinstance(
        next_retry(10, first_failure_at=T0, now=at_50h, rng=random.Random(1), policy=policy), GiveUp
    )
    assert isinstance(next_retry(10, first_failure_at=T0, now=at_50h, rng=random.Random(1)), RetryAt)


def test_a_whole_deferral_run_stays_inside_the_limit() -> None:
    rng = random.Random(3)
    now, attempt = T0, 1
    while True:
        decision = next_retry(attempt, first_failure_at=T0, now=now, rng=rng)
        if isinstance(decision, GiveUp):
            break
        assert decision.not_before <= T0 + timedelta(hours=72)
        now, attempt = decision.not_before, attempt + 1
    assert 60 < attempt < 90  # ~5 short steps, then hourly for three days


def test_aimd_pace() -> None:
    rng = random.Random(5)
    state = PaceState()
    state = after_throttle(state, now=T0, rng=rng)
    assert state.factor == 1.0 and state.consecutive_throttles == 1  # one throttle: back off only
    assert state.is_open(T0 + timedelta(minutes=3)) and not state.is_open(T0 + timedelta(minutes=7))
    state = after_throttle(state, now=T0 + timedelta(minutes=7), rng=rng)
    assert state.factor == 0.5  # repeated: multiplicative decrease
    assert state.backoff_until is not None and state.backoff_until >= T0 + timedelta(minutes=7 + 8)
    state = after_throttle(state, now=T0 + timedelta(minutes=30), rng=rng)
    assert state.factor == 0.25
    assert paced_interval(60, state) == 240
    for _ in range(5):
        state = after_clean_send(state)
    assert state.consecutive_throttles == 0
    assert state.factor == pytest.approx(0.5)  # additive increase, 0.05 per clean send
    for _ in range(100):
        state = after_clean_send(state)
    assert state.factor == 1.0


def test_pace_has_a_floor_and_backoff_a_ceiling() -> None:
    config = PaceConfig()
    state = PaceState()
    for minute in range(0, 600, 10):
        state = after_throttle(
            state, now=T0 + timedelta(minutes=minute), rng=random.Random(minute), config=config
        )
    assert state.factor == config.min_factor
    assert state.backoff_until is not None
    assert state.backoff_until <= T0 + timedelta(minutes=590, seconds=config.max_backoff_s * 1.2)


def test_throttle_honours_retry_after_and_never_shortens_an_open_breaker() -> None:
    state = after_throttle(PaceState(), now=T0, rng=random.Random(1), retry_after_s=7200)
    assert state.backoff_until == T0 + timedelta(hours=2)
    again = after_throttle(state, now=T0 + timedelta(minutes=1), rng=random.Random(1))
    assert again.backoff_until == T0 + timedelta(hours=2)
