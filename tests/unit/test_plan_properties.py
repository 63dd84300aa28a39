"""Property tests: whatever the guardrails and leads, the plan never breaks a cap, the window, or step order;
and with enough leads every business day carries its full effective cap."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.commands.plan import render
from cadence.core.model import Guardrails, Lead
from cadence.core.pacing import effective_daily_cap
from cadence.core.planner import PlanResult, plan_campaign

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def rolling_max(times: list[datetime], span: timedelta) -> int:
    """Largest number of sends inside any half-open window (t - span, t]."""
    ordered = sorted(times)
    best = 0
    first = 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - span:
            first += 1
        best = max(best, last - first + 1)
    return best


def check_invariants(
    result: PlanResult, *, guardrails: Guardrails, steps: list[float], start: datetime, leads: list[Lead]
) -> None:
    sends = result.sends
    times = [send.at for send in sends]
    assert times == sorted(times), "sends are not in time order"
    assert rolling_max(times, DAY) <= guardrails.daily_cap
    assert rolling_max(times, HOUR) <= guardrails.hourly_cap
    for earlier, later in pairwise(times):
        assert (later - earlier).total_seconds() >= guardrails.min_delay_s - 1e-6
    by_domain: dict[str, list[datetime]] = defaultdict(list)
    for send in sends:
        by_domain[send.to.rpartition("@")[2].lower()].append(send.at)
    for domain, domain_times in by_domain.items():
        assert rolling_max(domain_times, DAY) <= guardrails.domain_cap, domain
    lead_zones = {lead.email.lower(): lead.timezone for lead in leads}
    for send in sends:
        zone_name = lead_zones.get(send.to.lower())
        if not (guardrails.use_recipient_timezone and zone_name):
            zone_name = guardrails.timezone
        local = send.at.astimezone(ZoneInfo(zone_name))
        minutes = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
        assert local.weekday() in guardrails.business_days, send
        assert guardrails.hours_start_min <= minutes < guardrails.hours_end_min, send
    if guardrails.warmup_enabled:
        origin = start.astimezone(ZoneInfo(guardrails.timezone)).date()
        for moment in times:
            in_window = [t for t in times if moment - DAY < t <= moment]
            day = (moment.astimezone(ZoneInfo(guardrails.timezone)).date() - origin).days
            ramp = guardrails.warmup_start + guardrails.warmup_step * (day // guardrails.warmup_every_days)
            assert len(in_window) <= ramp, (moment, len(in_window), ramp)
    per_lead: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    for send in sends:
        per_lead[send.to.lower()].append((send.step, send.at))
    for address, lead_sends in per_lead.items():
        assert [step for step, _ in lead_sends] == list(range(1, len(lead_sends) + 1)), address
        assert lead_sends[0][1] >= start + timedelta(days=steps[0])
        for (_, previous), (step, moment) in pairwise(lead_sends):
            assert moment >= previous + timedelta(days=steps[step - 1]), (address, step)


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Guardrails, list[Lead], list[float], datetime, float]:
    start_hour = draw(st.integers(min_value=0, max_value=14))
    length = draw(st.integers(min_value=1, max_value=24 - start_hour))
    days = draw(st.sets(st.integers(min_value=0, max_value=6), min_size=1))
    guardrails = Guardrails(
        daily_cap=draw(st.integers(min_value=1, max_value=60)),
        hourly_cap=draw(st.integers(min_value=1, max_value=12)),
        min_delay_s=draw(st.sampled_from([0.0, 1.0, 30.0, 60.0, 90.5, 600.0])),
        jitter_s=draw(st.sampled_from([0.0, 5.0, 120.0, 900.0])),
        domain_cap=draw(st.integers(min_value=1, max_value=25)),
        hours_start_min=start_hour * 60 + draw(st.sampled_from([0, 30])),
        hours_end_min=min(24 * 60, (start_hour + length) * 60),
        business_days=frozenset(days),
        timezone=draw(st.sampled_from(ZONES)),
        use_recipient_timezone=draw(st.booleans()),
        warmup_enabled=draw(st.booleans()),
        warmup_start=draw(st.integers(min_value=1, max_value=15)),
        warmup_step=draw(st.integers(min_value=0, max_value=6)),
        warmup_every_days=draw(st.integers(min_value=1, max_value=3)),
    )
    domain_count = draw(st.integers(min_value=1, max_value=8))
    lead_count = draw(st.integers(min_value=0, max_value=120))
    leads = [
        Lead(
            email=f"lead{number}@d{number % domain_count}.example.com",
            timezone=draw(st.sampled_from([None, *ZONES])),
        )
        for number in range(lead_count)
    ]
    steps = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=3))
    start = datetime(2026, 3, 20, tzinfo=ZoneInfo("UTC")) + timedelta(
        hours=draw(st.integers(min_value=0, max_value=24 * 20))
    )  # spans the 2026 DST changes in Europe and the US
    horizon = draw(st.sampled_from([1.0, 3.0, 9.0]))
    return guardrails, leads, steps, start, horizon


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), seed=st.integers(min_value=0, max_value=2**32))
def test_plan_never_breaks_a_rule(
    scenario: tuple[Guardrails, list[Lead], list[float], datetime, float], seed: int
) -> None:
    guardrails, leads, steps, start, horizon = scenario
    result = plan_campaign(
        leads, step_delays_days=steps, guardrails=guardrails, start=start, horizon_days=horizon,
        rng=random.Random(seed),
    )  # fmt: skip
    check_invariants(result, guardrails=guardrails, steps=steps, start=start, leads=leads)
    printed = [json.loads(line) for line in render(result, tz_name=guardrails.timezone).splitlines()]
    printed_times = [datetime.fromisoformat(e["at"]) for e in printed if e["event"] == "send"]
    assert printed_times == [send.at for send in result.sends]  # printing loses no precision
    offset = {t.astimezone(ZoneInfo(guardrails.timezone)).utcoffset() for t in printed_times}
    assert {t.utcoffset() for t in printed_times} == offset
    planned_steps = Counter(send.to for send in result.sends)
    for left in result.unscheduled:
        assert planned_steps[left.to] == left.step - 1
    assert len(result.sends) + len(result.unscheduled) >= 1 or not leads


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    daily_cap=st.integers(min_value=1, max_value=60),
    hourly_cap=st.integers(min_value=1, max_value=12),
    warmup=st.booleans(),
    zone=st.sampled_from(ZONES),
    opens=st.integers(min_value=0, max_value=20),
    length=st.integers(min_value=1, max_value=14),
    min_delay=st.sampled_from([0.0, 60.0, 900.0]),
    jitter=st.sampled_from([0.0, 120.0, 3600.0]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_business_day_reaches_its_effective_cap(
    daily_cap: int,
    hourly_cap: int,
    warmup: bool,
    zone: str,
    opens: int,
    length: int,
    min_delay: float,
    jitter: float,
    seed: int,
) -> None:
    guardrails = Guardrails(
        daily_cap=daily_cap,
        hourly_cap=hourly_cap,
        timezone=zone,
        warmup_enabled=warmup,
        domain_cap=1000,
        hours_start_min=opens * 60,
        hours_end_min=min(24, opens + length) * 60,
        min_delay_s=min_delay,
        jitter_s=jitter,
    )
    tz = ZoneInfo(zone)
    start = datetime(2026, 11, 30, tzinfo=tz)  # a Monday, local midnight
    leads = [Lead(email=f"lead{n}@d{n % 50}.example.com") for n in range(daily_cap * 16)]
    result = plan_campaign(
        leads, step_delays_days=[0, 2], guardrails=guardrails, start=start, horizon_days=14,
        rng=random.Random(seed),
    )  # fmt: skip
    per_day = Counter(send.at.astimezone(tz).date() for send in result.sends)
    for offset in range(14):
        day = (start + timedelta(days=offset)).date()
        expected = (
            effective_daily_cap(
                guardrails=guardrails, at=datetime(day.year, day.month, day.day, opens, tzinfo=tz),
                warmup_started_at=start,
            )
            if day.weekday() < 5
            else 0
        )  # fmt: skip
        assert expected > 0 or day.weekday() >= 5
        assert per_day[day] == expected, (day, per_day[day], expected)


def _plan(leads: list[Lead], guardrails: Guardrails, steps: list[float], days: float = 10) -> PlanResult:
    start = datetime(2026, 11, 30, tzinfo=ZoneInfo(guardrails.timezone))
    return plan_campaign(
        leads,
        step_delays_days=steps,
        guardrails=guardrails,
        start=start,
        horizon_days=days,
        rng=random.Random(1),
    )


def test_due_follow_ups_go_before_new_first_touches() -> None:
    guardrails = Guardrails(daily_cap=5, hourly_cap=5, warmup_enabled=False, timezone="Europe/Berlin")
    leads = [Lead(email=f"p{n}@x{n}.com") for n in range(40)]
    result = _plan(leads, guardrails, [0, 1])
    by_day: dict[date, list[int]] = defaultdict(list)
    for send in result.sends:
        by_day[send.at.date()].append(send.step)
    monday, tuesday = sorted(by_day)[:2]
    assert by_day[monday] == [1] * 5
    assert by_day[tuesday] == [2] * 5  # Monday's five follow-ups are due Tuesday and take the whole day


def test_domain_cap_spreads_one_domain_over_days_and_others_fill_in() -> None:
    guardrails = Guardrails(daily_cap=10, hourly_cap=10, warmup_enabled=False, domain_cap=3, timezone="UTC")
    leads = [Lead(email=f"p{n}@big.com") for n in range(9)] + [
        Lead(email=f"q{n}@small{n}.com") for n in range(9)
    ]
    result = _plan(leads, guardrails, [0], days=3)
    monday = [send.to for send in result.sends if send.at.weekday() == 0]
    assert len(monday) == 10
    assert sum(address.endswith("@big.com") for address in monday) == 3
    assert [send.to for send in result.sends][:3] == ["p0@big.com", "p1@big.com", "p2@big.com"]


def test_recipient_time_zones_send_in_each_recipients_hours() -> None:
    guardrails = Guardrails(
        daily_cap=20,
        hourly_cap=5,
        warmup_enabled=False,
        timezone="Europe/Berlin",
        use_recipient_timezone=True,
    )
    leads = [Lead(email=f"ny{n}@a{n}.com", timezone="America/New_York") for n in range(5)]
    leads += [Lead(email=f"tk{n}@b{n}.com", timezone="Asia/Tokyo") for n in range(5)]
    result = _plan(leads, guardrails, [0], days=2)
    assert len(result.sends) == 10
    for send in result.sends:
        local = send.at.astimezone(ZoneInfo("America/New_York" if send.to.startswith("ny") else "Asia/Tokyo"))
        assert 8 <= local.hour < 18 and local.weekday() < 5
