"""When the next cold send may go: business window, rolling caps, warm-up, provider limits, spacing.

Every rule is a hard constraint on a candidate time `t`; `earliest_send_time` moves `t` forward until no
rule objects (a fixpoint), so the time it gives is exact: a decision asked at that instant allows the
send. Rolling windows are half-open: a send at `s` counts against a window of length W at `t` while
`t - W < s`, so it stops counting at exactly `s + W`.

Spacing: each business window plans `n` sends (the smallest of the day's caps), on a grid of
`g = window / n`; the k-th send of the window may not go before `start + k·g`, and never sooner than a
catch-up gap after the previous one. Jitter (at most min(jitter, g/2)) is added to that pacing target
only, never to the hard limits, so the schedule cannot drift later day after day under the rolling
24 h cap, and every window can reach its planned count.

Times inside the engine are integer microseconds since the Unix epoch: exact, no rounding surprises at
window boundaries.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadence.core.model import DeferReason, Guardrails, PacingSnapshot, ProviderLimits, SentRecord
from cadence.core.providers import provider_for_host, usable_limits

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime.max.replace(tzinfo=UTC)  # "not by itself": the user has to change something
_ONE_US = timedelta(microseconds=1)
_MAX_ROUNDS = 10_000


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the engine needs timezone-aware times")
    return (moment - EPOCH) // _ONE_US


def from_us(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


FOREVER_US = to_us(FOREVER)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """A ZoneInfo by IANA name; ValueError (with the name) for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_valid_timezone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


# --- rolling windows ----------------------------------------------------------------------------------


class RollingWindow:
    """Send times, sorted, with a moving head: counting a rolling window is a binary search."""

    __slots__ = ("_head", "_times")

    def __init__(self, times: Iterable[int] = ()) -> None:
        self._times: list[int] = sorted(times)
        self._head = 0

    @classmethod
    def from_sorted(cls, times: list[int]) -> RollingWindow:
        window = cls()
        window._times = times
        return window

    def add(self, moment: int) -> None:
        if not self._times or moment >= self._times[-1]:
            self._times.append(moment)
        else:
            insort(self._times, moment, lo=self._head)

    def prune(self, before: int) -> None:
        """Forget sends older than `before` (no window the caller still asks about reaches them)."""
        self._head = bisect_left(self._times, before, lo=self._head)
        if self._head > 4096 and self._head * 2 > len(self._times):
            del self._times[: self._head]
            self._head = 0

    def count_after(self, moment: int) -> int:
        """Sends strictly after `moment`."""
        return len(self._times) - bisect_right(self._times, moment, lo=self._head)

    def count_from(self, moment: int) -> int:
        """Sends at or after `moment`."""
        return len(self._times) - bisect_left(self._times, moment, lo=self._head)

    def release_time(self, *, at: int, span: int, cap: int) -> int | None:
        """None if fewer than `cap` sends fall in (at - span, …]; else when enough of them have aged out."""
        first = bisect_right(self._times, at - span, lo=self._head)
        count = len(self._times) - first
        if count < cap:
            return None
        return self._times[first + count - cap] + span

    def last(self) -> int | None:
        return self._times[-1] if len(self._times) > self._head else None

    def __len__(self) -> int:
        return len(self._times) - self._head


class LedgerIndex:
    """The send ledger arranged for pacing: built from a snapshot, or kept up to date by the planner."""

    __slots__ = ("automated", "cold", "domains", "provider")

    def __init__(self) -> None:
        self.cold = RollingWindow()  # cold sends Cadence made (the cold caps)
        self.automated = RollingWindow()  # every send Cadence made (the bounce breaker's sample)
        self.provider = RollingWindow()  # every send from the account, manual ones included
        self.domains: dict[str, RollingWindow] = {}  # cold sends per recipient domain

    @classmethod
    def from_records(cls, records: Iterable[SentRecord]) -> LedgerIndex:
        return cls.from_timed([(to_us(record.at), record) for record in records])

    @classmethod
    def from_timed(cls, timed: list[tuple[int, SentRecord]]) -> LedgerIndex:
        """From (microseconds, record) pairs in any order."""
        rows = sorted(timed, key=itemgetter(0))
        index = cls()
        index.provider = RollingWindow.from_sorted([moment for moment, _ in rows])
        automated = [(moment, record) for moment, record in rows if not record.manual]
        index.automated = RollingWindow.from_sorted([moment for moment, _ in automated])
        cold = [(moment, record) for moment, record in automated if record.cold]
        index.cold = RollingWindow.from_sorted([moment for moment, _ in cold])
        by_domain: dict[str, list[int]] = {}
        for moment, record in cold:
            by_domain.setdefault(record.recipient.rpartition("@")[2].lower(), []).append(moment)
        index.domains = {domain: RollingWindow.from_sorted(times) for domain, times in by_domain.items()}
        return index

    def record(self, *, at: int, domain: str, cold: bool = True, manual: bool = False) -> None:
        self.provider.add(at)
        if manual:
            return
        self.automated.add(at)
        if cold:
            self.cold.add(at)
            window = self.domains.get(domain)
            if window is None:
                window = self.domains[domain] = RollingWindow()
            window.add(at)

    def prune(self, before: int) -> None:
        self.cold.prune(before)
        self.automated.prune(before)
        self.provider.prune(before)


def normal_subject(subject: str) -> str:
    return " ".join(subject.split()).casefold()


class SnapshotView:
    """A snapshot's ledger arranged once for every decision asked about it (read-only)."""

    __slots__ = ("by_recipient", "index")

    def __init__(self, sends: tuple[SentRecord, ...]) -> None:
        timed = [(to_us(record.at), record) for record in sends]
        self.index = LedgerIndex.from_timed(timed)
        self.by_recipient: dict[str, list[tuple[int, SentRecord]]] = {}
        for moment, record in timed:
            self.by_recipient.setdefault(record.recipient.strip().lower(), []).append((moment, record))

    def subject_times(self, recipient: str, subject: str) -> list[int]:
        """When `recipient` (any case) was sent `subject` (ignoring case and runs of spaces)."""
        wanted = normal_subject(subject)
        return [
            moment
            for moment, record in self.by_recipient.get(recipient.strip().lower(), ())
            if normal_subject(record.subject) == wanted
        ]


_last_view: tuple[tuple[SentRecord, ...], SnapshotView] | None = None


def snapshot_view(sends: tuple[SentRecord, ...]) -> SnapshotView:
    """The view of `sends`; the scheduler asks about many candidates with one snapshot, so the last
    view is kept (by identity of the tuple) and the ledger is sorted once per snapshot, not per question."""
    global _last_view
    cached = _last_view
    if cached is not None and cached[0] is sends:
        return cached[1]
    view = SnapshotView(sends)
    _last_view = (sends, view)
    return view


# --- business window ----------------------------------------------------------------------------------


def _local_to_us(day: date, minutes: int, tz: ZoneInfo) -> int:
    extra_days, minutes = divmod(minutes, 1440)
    day = day + timedelta(days=extra_days)
    return to_us(datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=tz))


@lru_cache(maxsize=8192)
def _day_window(tz: ZoneInfo, ordinal: int, start_min: int, end_min: int) -> tuple[int, int]:
    day = date.fromordinal(ordinal)
    return _local_to_us(day, start_min, tz), _local_to_us(day, end_min, tz)


class _LocalCalendar:
    """Local day of a moment in one zone; remembers the last day's bounds (callers move forward in time).
    The bounds live in one tuple so that a reader on another thread never sees half an update."""

    __slots__ = ("_day", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._day = (0, 0, 0)  # start, end, ordinal

    def ordinal(self, moment: int) -> int:
        start, end, ordinal = self._day
        if start <= moment < end:
            return ordinal
        ordinal = from_us(moment).astimezone(self.tz).toordinal()
        day = date.fromordinal(ordinal)
        start, end = _local_to_us(day, 0, self.tz), _local_to_us(day, 1440, self.tz)
        if start <= moment < end:  # else midnight was skipped by a DST change: do not remember
            self._day = (start, end, ordinal)
        return ordinal


_calendars: dict[ZoneInfo, _LocalCalendar] = {}


def local_ordinal(moment: int, tz: ZoneInfo) -> int:
    """Proleptic ordinal of the local date of `moment` in `tz`."""
    calendar = _calendars.get(tz)
    if calendar is None:
        calendar = _calendars[tz] = _LocalCalendar(tz)
    return calendar.ordinal(moment)


@dataclass(frozen=True, slots=True)
class WindowState:
    open: bool
    start: int  # the window containing the moment, or the next one to open
    end: int
    reason: DeferReason | None  # why it is closed (outside hours / outside days)


_open_windows: dict[tuple[ZoneInfo, int, int, frozenset[int]], WindowState] = {}


def business_window(moment: int, *, tz: ZoneInfo, guardrails: Guardrails) -> WindowState:
    """The business window containing `moment`, or the next one that opens after it."""
    start_min, end_min, days = guardrails.hours_start_min, guardrails.hours_end_min, guardrails.business_days
    key = (tz, start_min, end_min, days)
    last_open = _open_windows.get(key)
    if last_open is not None and last_open.start <= moment < last_open.end:
        return last_open
    state = _business_window(moment, tz=tz, start_min=start_min, end_min=end_min, days=days)
    if state.open and not _offset_changes(tz, state.start, state.end):
        _open_windows[key] = state
    return state


def _offset_changes(tz: ZoneInfo, start: int, end: int) -> bool:
    return from_us(start).astimezone(tz).utcoffset() != from_us(end - 1).astimezone(tz).utcoffset()


def _business_window(
    moment: int, *, tz: ZoneInfo, start_min: int, end_min: int, days: frozenset[int]
) -> WindowState:
    today = local_ordinal(moment, tz)
    weekday = (today - 1) % 7  # date.fromordinal(1) is a Monday
    if weekday in days:
        start, end = _day_window(tz, today, start_min, end_min)
        if start <= moment < end:
            if _offset_changes(tz, start, end):
                # Clocks went back inside the window: the repeated stretch before the second
                # occurrence of the opening time is outside business hours on the wall clock.
                local = from_us(moment).astimezone(tz)
                if local.hour * 60 + local.minute < start_min:
                    day = date.fromordinal(today)
                    again = datetime(
                        day.year, day.month, day.day, start_min // 60, start_min % 60, tzinfo=tz, fold=1
                    )
                    return WindowState(False, max(to_us(again), moment + 1), end, DeferReason.OUTSIDE_HOURS)
            return WindowState(True, start, end, None)
        if moment < start:
            return WindowState(False, start, end, DeferReason.OUTSIDE_HOURS)
    reason = DeferReason.OUTSIDE_HOURS if weekday in days else DeferReason.OUTSIDE_DAYS
    for ahead in range(1, 9):
        if (weekday + ahead) % 7 in days:
            start, end = _day_window(tz, today + ahead, start_min, end_min)
            if start > moment:
                return WindowState(False, start, end, reason)
    return WindowState(False, FOREVER_US, FOREVER_US, reason)


def next_business_day_start(moment: int, *, tz: ZoneInfo, guardrails: Guardrails) -> int:
    """Opening of the first business window on a later local day than `moment`'s."""
    today = local_ordinal(moment, tz)
    for ahead in range(1, 9):
        if (today + ahead - 1) % 7 in guardrails.business_days:
            return _day_window(tz, today + ahead, guardrails.hours_start_min, guardrails.hours_end_min)[0]
    return FOREVER_US


# --- the rules, prepared once per account and decision ------------------------------------------------


def check_guardrails(guardrails: Guardrails) -> None:
    """ValueError with a one-line message for settings the engine cannot work with."""
    g = guardrails
    for name in ("daily_cap", "hourly_cap", "domain_cap", "warmup_start", "warmup_step"):
        if getattr(g, name) < 0:
            raise ValueError(f"{name} must not be negative")
    if g.warmup_every_days < 1:
        raise ValueError("warmup_every_days must be at least 1")
    for name in ("min_delay_s", "jitter_s", "bounce_breaker_rate", "manual_mail_buffer", "expire_after_days"):
        if not math.isfinite(getattr(g, name)):
            raise ValueError(f"{name} must be a finite number")
    if g.min_delay_s < 0 or g.jitter_s < 0:
        raise ValueError("min delay and jitter must not be negative")
    if not 0 <= g.hours_start_min < g.hours_end_min <= 24 * 60:
        raise ValueError("business hours must start before they end, within one day")
    if not g.business_days or not g.business_days <= set(range(7)):
        raise ValueError("business days must be a non-empty set of weekdays 0 (Mon) .. 6 (Sun)")
    if not 0 <= g.bounce_breaker_rate <= 1:
        raise ValueError("bounce breaker rate must be between 0 and 1")
    if not 0 <= g.manual_mail_buffer < 1:
        raise ValueError("manual mail buffer must be in [0, 1)")
    if g.expire_after_days <= 0:
        raise ValueError("expire_after_days must be positive")
    zone(g.timezone)


def warmup_cap(guardrails: Guardrails, *, days_since_start: int) -> int | None:
    """The warm-up ramp's daily allowance (None when warm-up is off): start, +step every N days."""
    if not guardrails.warmup_enabled:
        return None
    steps = max(0, days_since_start) // guardrails.warmup_every_days
    return guardrails.warmup_start + guardrails.warmup_step * steps


def _scaled(cap: int, pace_factor: float) -> int:
    if cap <= 0:
        return 0
    return max(1, math.floor(cap * pace_factor + 1e-9))


class PacingRules:
    """Guardrails turned into numbers for one account: caps, provider share, time zones, warm-up origin."""

    def __init__(
        self,
        guardrails: Guardrails,
        *,
        warmup_started_at: datetime | None,
        pace_factor: float = 1.0,
        provider: ProviderLimits | None = None,
        workspace: bool = False,
    ) -> None:
        check_guardrails(guardrails)
        # The factor comes from storage (throttling backoff); a bad value must slow down, never crash.
        pace_factor = min(1.0, max(0.01, pace_factor)) if math.isfinite(pace_factor) else 0.01
        self.guardrails = guardrails
        self.sender_tz = zone(guardrails.timezone)
        preset = provider or provider_for_host(guardrails.provider_host, workspace=workspace)
        self.provider = (
            usable_limits(preset, manual_mail_buffer=guardrails.manual_mail_buffer) if preset else None
        )
        self.pace_factor = pace_factor
        self.warmup_origin = (
            local_ordinal(to_us(warmup_started_at), self.sender_tz) if warmup_started_at is not None else None
        )
        self.min_delay_us = round(guardrails.min_delay_s * SECOND_US)
        self.jitter_us = round(guardrails.jitter_s * SECOND_US)
        self.hourly_cap = _scaled(guardrails.hourly_cap, pace_factor)
        self.domain_cap = guardrails.domain_cap
        self._planned: dict[tuple[int, int], int] = {}
        self._daily: dict[int, tuple[int, DeferReason]] = {}

    def warmup_cap_on(self, ordinal: int) -> int | None:
        if self.warmup_origin is None:
            return warmup_cap(self.guardrails, days_since_start=0)
        return warmup_cap(self.guardrails, days_since_start=ordinal - self.warmup_origin)

    def cold_daily_cap(self, ordinal: int) -> tuple[int, DeferReason]:
        """The rolling-24 h cold cap on a sender-local day, and the rule that sets it."""
        cached = self._daily.get(ordinal)
        if cached is not None:
            return cached
        daily = self.guardrails.daily_cap
        ramp = self.warmup_cap_on(ordinal)
        if ramp is not None and ramp < daily:
            cap = (_scaled(ramp, self.pace_factor), DeferReason.WARMUP_CAP)
        else:
            cap = (_scaled(daily, self.pace_factor), DeferReason.DAILY_CAP)
        self._daily[ordinal] = cap
        return cap

    def planned_count(self, start: int, end: int) -> int:
        """How many cold sends a business window [start, end) is paced for: the smallest cap that applies."""
        key = (start, end)
        cached = self._planned.get(key)
        if cached is not None:
            return cached
        length = end - start
        counts = [self.cold_daily_cap(local_ordinal(start, self.sender_tz))[0]]
        counts.append(length * self.hourly_cap // HOUR_US)
        if self.min_delay_us > 0:
            counts.append(length // self.min_delay_us)
        if self.provider is not None:
            if self.provider.per_day is not None:
                counts.append(self.provider.per_day)
            if self.provider.per_hour is not None:
                counts.append(length * self.provider.per_hour // HOUR_US)
            if self.provider.per_minute is not None:
                counts.append(length * self.provider.per_minute // MINUTE_US)
        planned = max(0, min(counts))
        self._planned[key] = planned
        return planned

    def catch_up_gap(self, grid: int) -> int:
        """Least gap after the previous send when a window started late: no burst to catch up."""
        gaps = [grid // 2, self.min_delay_us]
        if self.hourly_cap > 0:
            gaps.append(-(-HOUR_US // self.hourly_cap))
        return min(grid, max(gaps))


# --- the fixpoint ---------------------------------------------------------------------------------------


def _violation(
    index: LedgerIndex,
    rules: PacingRules,
    moment: int,
    domain: str | None,
    window_tz: ZoneInfo,
    cold: bool,
    jitter_u: float,
    /,
) -> tuple[int, DeferReason] | None:
    """The first rule that forbids a send at `moment`, with the earliest time that rule allows."""
    provider = rules.provider
    if cold:
        window = business_window(moment, tz=window_tz, guardrails=rules.guardrails)
        if not window.open:
            return window.start, window.reason or DeferReason.OUTSIDE_HOURS
        ordinal = (
            local_ordinal(moment, rules.sender_tz)
            if window_tz is not rules.sender_tz
            else local_ordinal(window.start, window_tz)
        )
        daily_cap, daily_reason = rules.cold_daily_cap(ordinal)
        if daily_cap <= 0:
            return FOREVER_US, daily_reason
        release = index.cold.release_time(at=moment, span=DAY_US, cap=daily_cap)
        if release is not None:
            return release, daily_reason
        if rules.hourly_cap <= 0:
            return FOREVER_US, DeferReason.HOURLY_CAP
        release = index.cold.release_time(at=moment, span=HOUR_US, cap=rules.hourly_cap)
        if release is not None:
            return release, DeferReason.HOURLY_CAP
        if domain is not None:
            if rules.domain_cap <= 0:
                return FOREVER_US, DeferReason.DOMAIN_CAP
            domain_window = index.domains.get(domain)
            if domain_window is not None:
                release = domain_window.release_time(at=moment, span=DAY_US, cap=rules.domain_cap)
                if release is not None:
                    return release, DeferReason.DOMAIN_CAP
    if provider is not None:
        for limit, span, reason in (
            (provider.per_day, DAY_US, DeferReason.PROVIDER_DAY),
            (provider.per_hour, HOUR_US, DeferReason.PROVIDER_HOUR),
            (provider.per_minute, MINUTE_US, DeferReason.PROVIDER_MINUTE),
        ):
            if limit is None:
                continue
            if limit <= 0:
                return FOREVER_US, reason
            release = index.provider.release_time(at=moment, span=span, cap=limit)
            if release is not None:
                return release, reason
    if not cold:
        return None
    last = index.cold.last()
    if last is not None and moment < last + rules.min_delay_us:
        return last + rules.min_delay_us, DeferReason.MIN_DELAY
    planned = rules.planned_count(window.start, window.end)
    if planned <= 0:
        return FOREVER_US, DeferReason.SPACING
    sent_in_window = index.cold.count_from(window.start)
    if sent_in_window >= planned:
        return window.end, DeferReason.SPACING
    grid = (window.end - window.start) // planned
    jitter = min(rules.jitter_us, grid // 2)
    target = window.start + sent_in_window * grid
    if last is not None and last >= window.start:
        target = max(target, last + rules.catch_up_gap(grid) - jitter)
    target += int(jitter_u * jitter) // SECOND_US * SECOND_US  # whole seconds: readable plans
    if moment < target:
        return target, DeferReason.SPACING
    return None


def earliest_us(
    index: LedgerIndex,
    rules: PacingRules,
    *,
    start: int,
    domain: str | None,
    window_tz: ZoneInfo,
    cold: bool = True,
    jitter_u: float = 0.0,
) -> tuple[int, DeferReason | None]:
    """Earliest moment ≥ start at which no rule objects, and the first rule that objected at `start`."""
    moment = start
    first_reason: DeferReason | None = None
    for _ in range(_MAX_ROUNDS):
        violation = _violation(index, rules, moment, domain, window_tz, cold, jitter_u)
        if violation is None:
            return moment, first_reason
        later, reason = violation
        if first_reason is None:
            first_reason = reason
        if later >= FOREVER_US:
            return FOREVER_US, first_reason
        if later <= moment:  # a rule that cannot move time forward would loop for ever
            raise RuntimeError(f"pacing rule {reason.value} did not advance time")
        moment = later
    raise RuntimeError("pacing did not settle")


# --- public API on snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerState:
    tripped: bool
    sends_24h: int  # in the breaker's sample: the last 24 h, or since its own pause ended
    hard_bounces_24h: int
    until: datetime | None  # when cold sending resumes (start of the next business day)

    @property
    def bounce_rate(self) -> float | None:
        return self.hard_bounces_24h / self.sends_24h if self.sends_24h else None


# The pause the scheduler records when the breaker trips; once that pause has ended, the breaker judges a
# fresh sample (see `breaker_sample_start`).
BREAKER_PAUSE_REASON = "Automatic pause: too many hard bounces in the last 24 hours (bounce breaker)"


def breaker_sample_start(snapshot: PacingSnapshot) -> datetime:
    """Where the breaker's sample begins: 24 h back, or the end of the breaker's own pause when that came
    later. The sends and bounces that tripped it were answered by the pause; judged again when the next
    business day opens (still within 24 h of them) they would trip it again and again."""
    start = snapshot.now - timedelta(days=1)
    ended = snapshot.paused_until
    if snapshot.paused_reason == BREAKER_PAUSE_REASON and ended is not None and start < ended <= snapshot.now:
        return ended
    return start


def bounce_breaker(*, guardrails: Guardrails, snapshot: PacingSnapshot) -> BreakerState:
    """Too many hard bounces (over a large enough sample) stop cold sending until the next business day.

    The sample is the last 24 h, or what came after the breaker's own pause ended: the sends from that
    moment on and the bounces recorded since. A snapshot without the bounce times cannot tell old bounces
    from new ones: then the whole 24 h counts (the safe side)."""
    now = to_us(snapshot.now)
    automated = snapshot_view(snapshot.sends).index.automated
    sample_start = breaker_sample_start(snapshot)
    bounce_times_known = len(snapshot.hard_bounce_times) == snapshot.hard_bounces_24h
    if bounce_times_known and sample_start > snapshot.now - timedelta(days=1):
        sends = automated.count_from(to_us(sample_start)) - automated.count_after(now)
        bounces = sum(1 for moment in snapshot.hard_bounce_times if sample_start <= moment <= snapshot.now)
    else:
        sends = automated.count_after(now - DAY_US) - automated.count_after(now)
        bounces = snapshot.hard_bounces_24h
    tripped = (
        sends >= guardrails.bounce_breaker_min_sample and bounces > guardrails.bounce_breaker_rate * sends
    )
    until = None
    if tripped:
        until = from_us(next_business_day_start(now, tz=zone(guardrails.timezone), guardrails=guardrails))
    return BreakerState(tripped, sends, bounces, until)


def rules_for(guardrails: Guardrails, snapshot: PacingSnapshot, *, workspace: bool = False) -> PacingRules:
    return PacingRules(
        guardrails,
        warmup_started_at=snapshot.warmup_started_at or snapshot.now,
        pace_factor=snapshot.pace_factor,
        workspace=workspace,
    )


def _window_zone(guardrails: Guardrails, recipient_timezone: str | None) -> ZoneInfo:
    """The recipient's zone when enabled and known; an unknown name falls back to the sender's."""
    if guardrails.use_recipient_timezone and recipient_timezone and is_valid_timezone(recipient_timezone):
        return zone(recipient_timezone)
    return zone(guardrails.timezone)


def account_hold(
    *, guardrails: Guardrails, snapshot: PacingSnapshot, cold: bool
) -> tuple[datetime, DeferReason] | None:
    """Account-wide stops that come before any cap: pause, backoff, and (cold only) the bounce breaker."""
    now = snapshot.now
    paused_until = snapshot.paused_until
    # the store keeps the reason of a timed pause after it ended: an ended pause holds nothing, and must
    # not hide the backoff or the breaker either
    if (snapshot.paused_reason is not None and paused_until is None) or (
        paused_until is not None and paused_until > now
    ):
        return paused_until or FOREVER, DeferReason.PAUSED
    if snapshot.backoff_until is not None and snapshot.backoff_until > now:
        return snapshot.backoff_until, DeferReason.BACKOFF
    if cold:
        breaker = bounce_breaker(guardrails=guardrails, snapshot=snapshot)
        if breaker.tripped and breaker.until is not None:
            return breaker.until, DeferReason.BOUNCE_BREAKER
    return None


def earliest_send_time(
    *,
    guardrails: Guardrails,
    snapshot: PacingSnapshot,
    recipient_domain: str | None,
    recipient_timezone: str | None = None,
    cold: bool = True,
    not_before: datetime | None = None,
    workspace: bool = False,
) -> tuple[datetime, DeferReason | None]:
    """The exact earliest time a send is allowed (no jitter), and the first rule that delays it (None: now).

    Returns FOREVER when only the user can unblock it (cap set to 0, paused without an end).
    """
    start = snapshot.now if not_before is None else max(snapshot.now, not_before)
    first_reason: DeferReason | None = DeferReason.STEP_NOT_DUE if start > snapshot.now else None
    hold = account_hold(guardrails=guardrails, snapshot=snapshot, cold=cold)
    if hold is not None:
        if hold[0] >= FOREVER:
            return FOREVER, hold[1]
        if hold[0] > start:
            start, first_reason = hold[0], first_reason or hold[1]
    rules = rules_for(guardrails, snapshot, workspace=workspace)
    index = snapshot_view(snapshot.sends).index
    moment, reason = earliest_us(
        index,
        rules,
        start=to_us(start),
        domain=recipient_domain.lower() if recipient_domain else None,
        window_tz=_window_zone(guardrails, recipient_timezone),
        cold=cold,
    )
    return from_us(moment), first_reason or reason


def next_send_time(
    *,
    guardrails: Guardrails,
    snapshot: PacingSnapshot,
    recipient_domain: str | None,
    rng: random.Random,
    recipient_timezone: str | None = None,
    cold: bool = True,
    not_before: datetime | None = None,
    workspace: bool = False,
) -> datetime:
    """When the scheduler should send next: the earliest allowed time plus the pacing jitter.

    Always ≥ `earliest_send_time(...)`, so `policy.evaluate` at the returned instant allows the send.
    """
    start = snapshot.now if not_before is None else max(snapshot.now, not_before)
    hold = account_hold(guardrails=guardrails, snapshot=snapshot, cold=cold)
    if hold is not None:
        if hold[0] >= FOREVER:
            return FOREVER
        start = max(start, hold[0])
    rules = rules_for(guardrails, snapshot, workspace=workspace)
    moment, _ = earliest_us(
        snapshot_view(snapshot.sends).index,
        rules,
        start=to_us(start),
        domain=recipient_domain.lower() if recipient_domain else None,
        window_tz=_window_zone(guardrails, recipient_timezone),
        cold=cold,
        jitter_u=rng.random(),
    )
    return from_us(moment)


def effective_daily_cap(
    *,
    guardrails: Guardrails,
    at: datetime,
    warmup_started_at: datetime | None,
    pace_factor: float = 1.0,
    workspace: bool = False,
) -> int:
    """Cold sends a business day at `at` can carry: smallest of daily cap, warm-up, provider share, hourly
    cap over the window, and what the minimum delay lets fit."""
    rules = PacingRules(
        guardrails, warmup_started_at=warmup_started_at, pace_factor=pace_factor, workspace=workspace
    )
    ordinal = local_ordinal(to_us(at), rules.sender_tz)
    start, end = _day_window(rules.sender_tz, ordinal, guardrails.hours_start_min, guardrails.hours_end_min)
    return rules.planned_count(start, end)


# --- capacity report for the UI ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapUsage:
    used: int
    limit: int | None  # None: no such limit applies


@dataclass(frozen=True, slots=True)
class CapacityReport:
    daily: CapUsage  # cold sends in the last 24 h vs the daily cap (after pace factor)
    hourly: CapUsage  # cold sends in the last 60 min vs the hourly cap
    warmup: CapUsage | None  # cold sends in 24 h vs today's warm-up allowance; None when warm-up is off
    provider_day: CapUsage  # all sends incl. manual vs the provider's usable share
    provider_hour: CapUsage
    provider_minute: CapUsage
    provider_name: str | None
    domain_cap: int
    busiest_domains: tuple[tuple[str, int], ...]  # cold sends in 24 h per recipient domain, most first
    effective_daily_cap: int  # what today's business window is paced for
    breaker: BreakerState
    paused: bool
    next_slot: datetime | None  # earliest next cold send (any domain); None: not by itself
    next_slot_reason: DeferReason | None


def capacity_report(
    *, guardrails: Guardrails, snapshot: PacingSnapshot, workspace: bool = False, top_domains: int = 5
) -> CapacityReport:
    rules = rules_for(guardrails, snapshot, workspace=workspace)
    index = snapshot_view(snapshot.sends).index
    now = to_us(snapshot.now)
    cold_day = index.cold.count_after(now - DAY_US)
    today = local_ordinal(now, rules.sender_tz)
    ramp = rules.warmup_cap_on(today)
    provider = rules.provider
    domains = sorted(
        (
            (name, count)
            for name, window in index.domains.items()
            if (count := window.count_after(now - DAY_US))
        ),
        key=lambda item: (-item[1], item[0]),
    )[:top_domains]
    start, end = _day_window(rules.sender_tz, today, guardrails.hours_start_min, guardrails.hours_end_min)
    slot, reason = earliest_send_time(
        guardrails=guardrails, snapshot=snapshot, recipient_domain=None, workspace=workspace
    )
    return CapacityReport(
        daily=CapUsage(cold_day, _scaled(guardrails.daily_cap, rules.pace_factor)),
        hourly=CapUsage(index.cold.count_after(now - HOUR_US), rules.hourly_cap),
        warmup=None if ramp is None else CapUsage(cold_day, _scaled(ramp, rules.pace_factor)),
        provider_day=CapUsage(
            index.provider.count_after(now - DAY_US), provider.per_day if provider else None
        ),
        provider_hour=CapUsage(
            index.provider.count_after(now - HOUR_US), provider.per_hour if provider else None
        ),
        provider_minute=CapUsage(
            index.provider.count_after(now - MINUTE_US), provider.per_minute if provider else None
        ),
        provider_name=provider.name if provider else None,
        domain_cap=guardrails.domain_cap,
        busiest_domains=tuple(domains),
        effective_daily_cap=rules.planned_count(start, end),
        breaker=bounce_breaker(guardrails=guardrails, snapshot=snapshot),
        paused=snapshot.paused_reason is not None
        or (snapshot.paused_until is not None and snapshot.paused_until > snapshot.now),
        next_slot=None if slot >= FOREVER else slot,
        next_slot_reason=reason,
    )
