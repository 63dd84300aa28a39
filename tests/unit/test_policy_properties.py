"""Property: the time the engine names is exact. Asked again at `not_before` (nothing else sent meanwhile),
the decision allows; a microsecond earlier it does not; `next_send_time` is never earlier than that."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.core.model import Allowed, Deferred, Guardrails, Lead, PacingSnapshot, SentRecord
from cadence.core.pacing import FOREVER, next_send_time
from cadence.core.policy import evaluate

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]
NOW = datetime(2026, 10, 20, tzinfo=UTC)  # the EU DST change falls in the sampled range


@st.composite
def situations(draw: st.DrawFn) -> tuple[Guardrails, PacingSnapshot, Lead]:
    start_hour = draw(st.integers(min_value=0, max_value=16))
    guardrails = Guardrails(
        daily_cap=draw(st.integers(min_value=1, max_value=30)),
        hourly_cap=draw(st.integers(min_value=1, max_value=10)),
        min_delay_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
        jitter_s=draw(st.sampled_from([0.0, 120.0, 900.0])),
        domain_cap=draw(st.integers(min_value=1, max_value=10)),
        hours_start_min=start_hour * 60,
        hours_end_min=min(24, start_hour + draw(st.integers(min_value=1, max_value=12))) * 60,
        business_days=frozenset(draw(st.sets(st.integers(min_value=0, max_value=6), min_size=1))),
        timezone=draw(st.sampled_from(ZONES)),
        use_recipient_timezone=draw(st.booleans()),
        warmup_enabled=draw(st.booleans()),
        provider_host=draw(st.sampled_from([None, "smtp.mail.yahoo.com", "smtpout.secureserver.net"])),
    )
    now = NOW + timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 24 * 10)))
    ages = draw(st.lists(st.integers(min_value=0, max_value=30 * 3600), max_size=60))
    sends = tuple(
        SentRecord(
            at=now - timedelta(seconds=age),
            recipient=f"r{number}@d{draw(st.integers(min_value=0, max_value=3))}.com",
            subject=f"subject {number}",
            cold=draw(st.integers(min_value=0, max_value=9)) != 0,
            manual=draw(st.integers(min_value=0, max_value=9)) == 0,
        )
        for number, age in enumerate(ages)
    )
    snapshot = PacingSnapshot(
        now=now,
        sends=sends,
        warmup_started_at=now - timedelta(days=draw(st.integers(min_value=0, max_value=12))),
    )
    lead = Lead(email="target@d0.com", timezone=draw(st.sampled_from([None, *ZONES])))
    return guardrails, snapshot, lead


def _ask(guardrails: Guardrails, snapshot: PacingSnapshot, lead: Lead, now: datetime) -> object:
    return evaluate(
        lead=lead,
        step_index=1,
        subject="a new subject",
        body="Hello",
        sender="me@mine.com",
        guardrails=guardrails,
        snapshot=PacingSnapshot(now=now, sends=snapshot.sends, warmup_started_at=snapshot.warmup_started_at),
        approved_by_user=True,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situation=situations(), seed=st.integers(min_value=0, max_value=2**32))
def test_not_before_is_exact_and_next_send_time_is_allowed(
    situation: tuple[Guardrails, PacingSnapshot, Lead], seed: int
) -> None:
    guardrails, snapshot, lead = situation
    decision = _ask(guardrails, snapshot, lead, snapshot.now)
    assert isinstance(decision, Allowed | Deferred)
    planned = next_send_time(
        guardrails=guardrails,
        snapshot=snapshot,
        recipient_domain=lead.domain,
        recipient_timezone=lead.timezone,
        rng=random.Random(seed),
    )
    if isinstance(decision, Allowed):
        assert planned >= snapshot.now
        return
    if decision.not_before >= FOREVER:
        assert planned >= FOREVER
        return
    assert decision.not_before > snapshot.now
    assert isinstance(_ask(guardrails, snapshot, lead, decision.not_before), Allowed)
    before = _ask(guardrails, snapshot, lead, decision.not_before - timedelta(microseconds=1))
    assert not isinstance(before, Allowed)
    assert planned >= decision.not_before
    assert isinstance(_ask(guardrails, snapshot, lead, planned), Allowed)
