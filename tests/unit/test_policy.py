"""Every rule of the guardrail engine, on a fake clock: the decision, its named reason, and its exact time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cadence.core.model import (
    Allowed,
    Blocked,
    BlockReason,
    Decision,
    DeferReason,
    Deferred,
    Guardrails,
    Held,
    HoldReason,
    Lead,
    LeadStatus,
    LegalBasis,
    PacingSnapshot,
    SentRecord,
)
from cadence.core.pacing import (
    BREAKER_PAUSE_REASON,
    FOREVER,
    capacity_report,
    earliest_send_time,
    next_send_time,
)
from cadence.core.policy import FairCandidate, cap_raise_advice, evaluate, fair_order

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY = datetime(2026, 12, 1, tzinfo=BERLIN)
WEDNESDAY = datetime(2026, 12, 2, tzinfo=BERLIN)
ONE_US = timedelta(microseconds=1)
RULES = Guardrails(timezone="Europe/Berlin", warmup_enabled=False, approve_first_touch=False)
LEAD = Lead(email="ann@acme.com")


def at(day: datetime, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


def sent(moment: datetime, to: str = "someone@other.com", **kwargs: object) -> SentRecord:
    return SentRecord(at=moment, recipient=to, subject=f"hello {to} {moment.isoformat()}", **kwargs)  # type: ignore[arg-type]


def decide(
    now: datetime,
    sends: tuple[SentRecord, ...] = (),
    *,
    guardrails: Guardrails = RULES,
    lead: Lead = LEAD,
    snapshot_extra: dict[str, object] | None = None,
    **kwargs: object,
) -> Decision:
    snapshot = PacingSnapshot(now=now, sends=sends, warmup_started_at=now, **(snapshot_extra or {}))  # type: ignore[arg-type]
    options: dict[str, object] = {"step_index": 1, "subject": "Quick question", "body": "Hi Ann, short note."}
    options.update(kwargs)
    return evaluate(lead=lead, sender="me@mine.com", guardrails=guardrails, snapshot=snapshot, **options)  # type: ignore[arg-type]


def assert_exact(decision: Decision, reason: DeferReason, when: datetime, **redo: object) -> None:
    """Deferred for `reason` until exactly `when`: asking at that instant allows, a microsecond before not."""
    assert isinstance(decision, Deferred), decision
    assert decision.reason is reason
    assert decision.not_before == when
    now_args = dict(redo)
    sends = now_args.pop("sends", ())
    assert isinstance(decide(when, sends, **now_args), Allowed)  # type: ignore[arg-type]
    assert not isinstance(decide(when - ONE_US, sends, **now_args), Allowed)  # type: ignore[arg-type]


# --- business window ---------------------------------------------------------------------------------


def test_before_hours_waits_for_the_window_to_open() -> None:
    assert_exact(decide(at(WEDNESDAY, 7, 15)), DeferReason.OUTSIDE_HOURS, at(WEDNESDAY, 8))


def test_friday_evening_waits_for_monday_morning() -> None:
    friday = datetime(2026, 12, 4, 18, 30, tzinfo=BERLIN)
    assert_exact(decide(friday), DeferReason.OUTSIDE_HOURS, datetime(2026, 12, 7, 8, tzinfo=BERLIN))


def test_weekend_is_outside_days() -> None:
    saturday = datetime(2026, 12, 5, 11, tzinfo=BERLIN)
    assert_exact(decide(saturday), DeferReason.OUTSIDE_DAYS, datetime(2026, 12, 7, 8, tzinfo=BERLIN))


def test_inside_the_window_a_first_send_goes() -> None:
    decision = decide(at(WEDNESDAY, 8))
    assert decision == Allowed(LegalBasis.LEGITIMATE_INTEREST)


def test_recipient_time_zone_sets_the_window_when_enabled() -> None:
    rules = replace(RULES, use_recipient_timezone=True)
    lead = Lead(email="bob@example.com", timezone="America/New_York")
    # 10:00 in Berlin is 04:00 in New York; the New York window opens at 14:00 Berlin time.
    decision = decide(at(WEDNESDAY, 10), guardrails=rules, lead=lead)
    assert_exact(decision, DeferReason.OUTSIDE_HOURS, at(WEDNESDAY, 14), guardrails=rules, lead=lead)
    assert isinstance(decide(at(WEDNESDAY, 10), lead=lead), Allowed)  # setting off: sender's window


def test_window_follows_local_time_across_a_dst_change() -> None:
    sunday_after_change = datetime(2026, 3, 29, 12, tzinfo=BERLIN)  # CET → CEST that night
    monday = datetime(2026, 3, 30, 8, tzinfo=BERLIN)
    assert_exact(decide(sunday_after_change), DeferReason.OUTSIDE_DAYS, monday)
    assert monday.utcoffset() == timedelta(hours=2)


# --- caps ----------------------------------------------------------------------------------------------


def test_daily_cap_is_a_rolling_24_hours() -> None:
    rules = replace(RULES, daily_cap=5, hourly_cap=100)
    sends = tuple(sent(at(TUESDAY, 10, 10 * n)) for n in range(5))
    decision = decide(at(WEDNESDAY, 9), sends, guardrails=rules)
    assert_exact(decision, DeferReason.DAILY_CAP, at(WEDNESDAY, 10), sends=sends, guardrails=rules)


def test_warm_up_ramp_caps_the_first_days() -> None:
    rules = replace(RULES, warmup_enabled=True, warmup_start=2, warmup_step=3, warmup_every_days=2)
    origin = at(TUESDAY, 0)
    sends = (sent(at(TUESDAY, 12)), sent(at(TUESDAY, 13)))
    snapshot_extra = {"warmup_started_at": origin}

    def ask(now: datetime) -> Decision:
        snapshot = PacingSnapshot(now=now, sends=sends, warmup_started_at=origin)
        return evaluate(
            lead=LEAD,
            step_index=1,
            subject="s",
            body="b",
            sender="me@mine.com",
            guardrails=rules,
            snapshot=snapshot,
        )

    decision = ask(at(WEDNESDAY, 9))  # day 1 of the ramp: still 2 a day
    assert isinstance(decision, Deferred) and decision.reason is DeferReason.WARMUP_CAP
    assert decision.not_before == at(WEDNESDAY, 12)
    assert isinstance(ask(decision.not_before), Allowed)
    thursday = datetime(2026, 12, 3, 8, tzinfo=BERLIN)  # day 2: 5 a day, Tuesday's sends have aged out anyway
    assert isinstance(ask(thursday), Allowed)
    assert snapshot_extra  # the origin, not `now`, anchors the ramp


def test_hourly_cap_is_a_rolling_60_minutes() -> None:
    rules = replace(RULES, hourly_cap=2)
    sends = (sent(at(WEDNESDAY, 9)), sent(at(WEDNESDAY, 9, 20)))
    decision = decide(at(WEDNESDAY, 9, 30), sends, guardrails=rules)
    assert_exact(decision, DeferReason.HOURLY_CAP, at(WEDNESDAY, 10), sends=sends, guardrails=rules)


def test_min_delay_names_the_first_rule_but_gives_the_time_all_rules_allow() -> None:
    sends = (sent(at(WEDNESDAY, 10)),)
    decision = decide(at(WEDNESDAY, 10, 0, 30), sends)
    # default pacing: 25 a day over 10 h; after a send the catch-up gap is 20 min, minus up to 120 s of jitter
    assert_exact(decision, DeferReason.MIN_DELAY, at(WEDNESDAY, 10, 18), sends=sends)


def test_min_delay_alone() -> None:
    rules = replace(RULES, daily_cap=1000, hourly_cap=1000, min_delay_s=90, jitter_s=0)
    sends = (sent(at(WEDNESDAY, 10)),)
    decision = decide(at(WEDNESDAY, 10, 0, 30), sends, guardrails=rules)
    assert_exact(decision, DeferReason.MIN_DELAY, at(WEDNESDAY, 10, 1, 30), sends=sends, guardrails=rules)


def test_sends_are_spread_over_the_window_not_burst_at_its_start() -> None:
    sends = (sent(at(WEDNESDAY, 8)),)
    decision = decide(at(WEDNESDAY, 8, 2), sends)
    # 25 sends over 08:00-18:00: the second one's slot is 08:24
    assert_exact(decision, DeferReason.SPACING, at(WEDNESDAY, 8, 24), sends=sends)


def test_domain_cap_counts_one_recipient_domain() -> None:
    rules = replace(RULES, domain_cap=2)
    sends = (sent(at(TUESDAY, 11), "a@acme.com"), sent(at(TUESDAY, 12), "b@ACME.com"))
    decision = decide(at(WEDNESDAY, 9), sends, guardrails=rules)
    assert_exact(decision, DeferReason.DOMAIN_CAP, at(WEDNESDAY, 11), sends=sends, guardrails=rules)
    other = decide(at(WEDNESDAY, 9), sends, guardrails=rules, lead=Lead(email="c@elsewhere.org"))
    assert isinstance(other, Allowed)


def test_provider_limit_counts_manual_mail_and_keeps_a_buffer() -> None:
    rules = replace(RULES, provider_host="smtp.mail.yahoo.com", daily_cap=1000, hourly_cap=1000)
    # Yahoo allows 100 an hour; 10 % stays free for the user, so 90 manual mails fill Cadence's share.
    manual = tuple(sent(at(WEDNESDAY, 9, 0, 30) + timedelta(seconds=30 * n), manual=True) for n in range(90))
    decision = decide(at(WEDNESDAY, 9, 50), manual, guardrails=rules)
    assert_exact(
        decision, DeferReason.PROVIDER_HOUR, at(WEDNESDAY, 10, 0, 30), sends=manual, guardrails=rules
    )
    reply = decide(at(WEDNESDAY, 9, 50), manual, guardrails=rules, cold=False)
    assert isinstance(reply, Deferred) and reply.reason is DeferReason.PROVIDER_HOUR
    assert isinstance(decide(at(WEDNESDAY, 9, 50), manual[:89], guardrails=rules), Allowed)


def test_manual_mail_does_not_use_the_cold_caps() -> None:
    rules = replace(RULES, daily_cap=3)
    manual = tuple(sent(at(WEDNESDAY, 8, 10 * n), manual=True) for n in range(5))
    assert isinstance(decide(at(WEDNESDAY, 9), manual, guardrails=rules), Allowed)


def test_replies_bypass_cold_caps_and_hours() -> None:
    rules = replace(RULES, daily_cap=2)
    sends = (sent(at(WEDNESDAY, 8)), sent(at(WEDNESDAY, 9)))
    assert isinstance(decide(at(WEDNESDAY, 9, 30), sends, guardrails=rules), Deferred)
    assert isinstance(decide(at(WEDNESDAY, 9, 30), sends, guardrails=rules, cold=False), Allowed)
    assert isinstance(decide(at(WEDNESDAY, 22), sends, guardrails=rules, cold=False), Allowed)


def test_cap_of_zero_defers_for_ever() -> None:
    decision = decide(at(WEDNESDAY, 9), guardrails=replace(RULES, daily_cap=0))
    assert decision == Deferred(DeferReason.DAILY_CAP, FOREVER)


# --- bounce breaker, pause, backoff -------------------------------------------------------------------


def _sample(count: int) -> tuple[SentRecord, ...]:
    return tuple(sent(at(TUESDAY, 12) + timedelta(minutes=20 * n)) for n in range(count))


def test_bounce_breaker_defers_cold_mail_to_the_next_business_day() -> None:
    rules = replace(RULES, daily_cap=100, hourly_cap=100)
    now = at(WEDNESDAY, 9)
    tripped = decide(now, _sample(20), guardrails=rules, snapshot_extra={"hard_bounces_24h": 2})
    assert tripped == Deferred(DeferReason.BOUNCE_BREAKER, datetime(2026, 12, 3, 8, tzinfo=BERLIN))
    at_limit = decide(now, _sample(20), guardrails=rules, snapshot_extra={"hard_bounces_24h": 1})
    assert isinstance(at_limit, Allowed)  # 5 % is not more than 5 %
    small_sample = decide(now, _sample(19), guardrails=rules, snapshot_extra={"hard_bounces_24h": 5})
    assert isinstance(small_sample, Allowed)
    reply = decide(now, _sample(20), guardrails=rules, cold=False, snapshot_extra={"hard_bounces_24h": 9})
    assert isinstance(reply, Allowed)


def test_an_ended_pause_leaves_the_breaker_and_the_backoff_in_force() -> None:
    # the store keeps the reason of a timed pause after its end: that must not switch the other holds off
    rules = replace(RULES, daily_cap=100, hourly_cap=100)
    now = at(WEDNESDAY, 9)
    ended = {"paused_reason": "back on Wednesday", "paused_until": at(WEDNESDAY, 8)}
    tripped = decide(now, _sample(20), guardrails=rules, snapshot_extra={**ended, "hard_bounces_24h": 2})
    assert tripped == Deferred(DeferReason.BOUNCE_BREAKER, datetime(2026, 12, 3, 8, tzinfo=BERLIN))
    backoff = at(WEDNESDAY, 10)
    assert decide(now, snapshot_extra={**ended, "backoff_until": backoff}) == Deferred(
        DeferReason.BACKOFF, backoff
    )


def test_after_its_own_pause_the_breaker_judges_a_fresh_sample() -> None:
    rules = replace(RULES, daily_cap=100, hourly_cap=100, min_delay_s=0, jitter_s=0)
    reopened = at(WEDNESDAY, 8)  # the breaker paused on Tuesday afternoon until this business day start
    ended = {"paused_reason": BREAKER_PAUSE_REASON, "paused_until": reopened}
    old_bounces = (at(TUESDAY, 13), at(TUESDAY, 14))
    old = {**ended, "hard_bounces_24h": 2, "hard_bounce_times": old_bounces}
    # Tuesday's 20 sends and 2 bounces are still inside 24 h, but they were answered by the pause
    assert isinstance(decide(reopened, _sample(20), guardrails=rules, snapshot_extra=old), Allowed)
    # without the pause (or after a pause for another reason) the same sample trips it
    other = {**old, "paused_reason": "back on Wednesday"}
    assert decide(reopened, _sample(20), guardrails=rules, snapshot_extra=other) == Deferred(
        DeferReason.BOUNCE_BREAKER, datetime(2026, 12, 3, 8, tzinfo=BERLIN)
    )
    # the fresh sample trips it again on its own: 20 sends from the reopening, 2 new bounces
    now = at(WEDNESDAY, 15)
    fresh = tuple(sent(reopened + timedelta(minutes=20 * n)) for n in range(20))
    new_bounces = (at(WEDNESDAY, 10), at(WEDNESDAY, 11))
    again = {**ended, "hard_bounces_24h": 4, "hard_bounce_times": old_bounces + new_bounces}
    assert decide(now, _sample(20) + fresh, guardrails=rules, snapshot_extra=again) == Deferred(
        DeferReason.BOUNCE_BREAKER, datetime(2026, 12, 3, 8, tzinfo=BERLIN)
    )
    one_new = {**again, "hard_bounces_24h": 3, "hard_bounce_times": (*old_bounces, new_bounces[0])}
    assert isinstance(decide(now, _sample(20) + fresh, guardrails=rules, snapshot_extra=one_new), Allowed)
    # a store that gives no bounce times cannot tell old from new: the breaker stays on the safe side
    untimed = {**ended, "hard_bounces_24h": 2}
    assert decide(reopened, _sample(20), guardrails=rules, snapshot_extra=untimed) == Deferred(
        DeferReason.BOUNCE_BREAKER, datetime(2026, 12, 3, 8, tzinfo=BERLIN)
    )


def test_pause_and_backoff() -> None:
    now = at(WEDNESDAY, 9)
    until = at(WEDNESDAY, 11)
    assert decide(now, snapshot_extra={"paused_reason": "policy 5.7.1"}) == Deferred(
        DeferReason.PAUSED, FOREVER
    )
    assert decide(now, snapshot_extra={"paused_until": until, "paused_reason": "back"}) == Deferred(
        DeferReason.PAUSED, until
    )
    assert decide(now, snapshot_extra={"backoff_until": until}) == Deferred(DeferReason.BACKOFF, until)


# --- blocks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "domains"),
    [
        (frozenset({"ann@acme.com"}), frozenset()),
        (frozenset(), frozenset({"@acme.com"})),
        (frozenset(), frozenset({"acme.com"})),
    ],
)
def test_suppressed_addresses_and_domains_are_blocked(
    addresses: frozenset[str], domains: frozenset[str]
) -> None:
    decision = decide(
        at(WEDNESDAY, 9),
        lead=Lead(email="Ann@ACME.com"),
        snapshot_extra={"suppressed_addresses": addresses, "suppressed_domains": domains},
    )
    assert isinstance(decision, Blocked) and decision.reason is BlockReason.SUPPRESSED


@pytest.mark.parametrize(
    "address", ["ann@@acme.com", "ann@acme", "ann..x@acme.com", "no-at-sign", "a@-x.com"]
)
def test_invalid_addresses_are_blocked(address: str) -> None:
    decision = decide(at(WEDNESDAY, 9), lead=Lead(email=address))
    assert isinstance(decision, Blocked) and decision.reason is BlockReason.INVALID_ADDRESS


def test_duplicate_within_24_hours_is_blocked() -> None:
    earlier = SentRecord(at=at(TUESDAY, 10), recipient="ANN@acme.com", subject="Quick  question")
    blocked = decide(at(WEDNESDAY, 9), (earlier,))
    assert isinstance(blocked, Blocked) and blocked.reason is BlockReason.DUPLICATE
    assert isinstance(decide(at(WEDNESDAY, 10), (earlier,)), Allowed)  # 24 h later
    assert isinstance(decide(at(WEDNESDAY, 9), (earlier,), subject="Another subject"), Allowed)


@pytest.mark.parametrize(
    "status", [LeadStatus.REPLIED, LeadStatus.BOUNCED, LeadStatus.UNSUBSCRIBED, LeadStatus.NOT_INTERESTED]
)
def test_a_stopped_lead_gets_no_further_step(status: LeadStatus) -> None:
    decision = decide(
        at(WEDNESDAY, 9), step_index=2, lead_status=status, previous_step_sent_at=at(TUESDAY, 9)
    )
    assert isinstance(decision, Blocked) and decision.reason is BlockReason.LEAD_STOPPED


def test_suppressed_status_blocks_as_suppressed() -> None:
    decision = decide(at(WEDNESDAY, 9), lead_status=LeadStatus.SUPPRESSED)
    assert isinstance(decision, Blocked) and decision.reason is BlockReason.SUPPRESSED


def test_a_message_expires_after_seven_days_in_the_queue() -> None:
    now = at(WEDNESDAY, 9)
    expired = decide(now, queued_at=now - timedelta(days=7))
    assert isinstance(expired, Blocked) and expired.reason is BlockReason.EXPIRED
    assert isinstance(decide(now, queued_at=now - timedelta(days=6, hours=23)), Allowed)


# --- holds ----------------------------------------------------------------------------------------------


def test_consent_region_without_consent_is_held_even_after_approval() -> None:
    lead = Lead(email="hans@firma.de")
    decision = decide(at(WEDNESDAY, 9), lead=lead, approved_by_user=True)
    assert decision == Held((HoldReason.CONSENT_REQUIRED,), LegalBasis.CONSENT)
    consented = decide(at(WEDNESDAY, 9), lead=replace(lead, consent=True))
    assert consented == Allowed(LegalBasis.CONSENT)


def test_first_touch_is_held_until_approved() -> None:
    rules = replace(RULES, approve_first_touch=True)
    held = decide(at(WEDNESDAY, 9), guardrails=rules)
    assert held == Held((HoldReason.FIRST_TOUCH,), LegalBasis.LEGITIMATE_INTEREST)
    assert isinstance(decide(at(WEDNESDAY, 9), guardrails=rules, approved_by_user=True), Allowed)


def test_risky_drafts_are_held_with_every_reason() -> None:
    body = (
        "Here is our pricing: €4,900 per seat, see https://acme.example/offer. "
        "The contract is attached. Thursday at 3 works for me."
    )
    decision = decide(at(WEDNESDAY, 9), body=body, has_attachment=True)
    assert isinstance(decision, Held)
    assert decision.reasons == (
        HoldReason.LINK,
        HoldReason.ATTACHMENT,
        HoldReason.PRICE,
        HoldReason.CONTRACT,
        HoldReason.MEETING,
    )
    assert isinstance(decide(at(WEDNESDAY, 9), body=body, approved_by_user=True), Allowed)


def test_order_is_block_then_hold_then_pacing() -> None:
    lead = Lead(email="hans@firma.de")  # needs consent
    night = at(WEDNESDAY, 23)
    suppressed = decide(night, lead=lead, snapshot_extra={"suppressed_domains": frozenset({"firma.de"})})
    assert isinstance(suppressed, Blocked)
    assert isinstance(decide(night, lead=lead), Held)
    assert isinstance(decide(night), Deferred)


# --- follow-ups -----------------------------------------------------------------------------------------


def test_follow_up_waits_for_its_delay_after_the_previous_step() -> None:
    previous = at(TUESDAY, 16, 30)
    decision = decide(at(WEDNESDAY, 9), step_index=2, previous_step_sent_at=previous, step_delay_days=3)
    assert decision == Deferred(DeferReason.STEP_NOT_DUE, datetime(2026, 12, 4, 16, 30, tzinfo=BERLIN))
    # due on a Saturday: the window moves it to Monday morning
    late = decide(at(WEDNESDAY, 9), step_index=2, previous_step_sent_at=at(WEDNESDAY, 8), step_delay_days=3)
    assert late == Deferred(DeferReason.STEP_NOT_DUE, datetime(2026, 12, 7, 8, tzinfo=BERLIN))
    due = decide(
        datetime(2026, 12, 4, 16, 30, tzinfo=BERLIN),
        step_index=2,
        previous_step_sent_at=previous,
        step_delay_days=3,
    )
    assert isinstance(due, Allowed)


def test_follow_up_without_its_previous_step_never_goes_by_itself() -> None:
    assert decide(at(WEDNESDAY, 9), step_index=2) == Deferred(DeferReason.STEP_NOT_DUE, FOREVER)


# --- jitter, fairness, capacity, advice ----------------------------------------------------------------


def test_next_send_time_adds_bounded_jitter_and_is_always_allowed() -> None:
    sends = (sent(at(WEDNESDAY, 8)),)
    snapshot = PacingSnapshot(now=at(WEDNESDAY, 8, 2), sends=sends, warmup_started_at=TUESDAY)
    earliest, _ = earliest_send_time(guardrails=RULES, snapshot=snapshot, recipient_domain="acme.com")
    seen = set()
    for seed in range(30):
        when = next_send_time(
            guardrails=RULES, snapshot=snapshot, recipient_domain="acme.com", rng=random.Random(seed)
        )
        assert earliest <= when <= earliest + timedelta(seconds=RULES.jitter_s)
        assert isinstance(decide(when, sends), Allowed)
        seen.add(when)
    assert len(seen) > 10


def test_fair_order_puts_due_follow_ups_first_and_rotates_campaigns() -> None:
    now = at(WEDNESDAY, 9)

    def cand(message_id: int, campaign: int, step: int, due_hours_ago: float) -> FairCandidate:
        return FairCandidate(message_id, campaign, step, now - timedelta(hours=due_hours_ago))

    candidates = [
        cand(1, 1, 1, 5),
        cand(2, 1, 1, 4),
        cand(3, 1, 1, 3),
        cand(4, 2, 1, 2),
        cand(5, 2, 2, 1),
        cand(6, 3, 1, 1),
        cand(7, 1, 2, -1),  # not due yet
    ]
    ordered = [c.message_id for c in fair_order(candidates, now=now)]
    assert ordered == [5, 1, 4, 6, 2, 3, 7]
    rotated = [c.message_id for c in fair_order(candidates, now=now, last_campaign_id=1)]
    assert rotated == [5, 4, 6, 1, 2, 3, 7]


def test_capacity_report_shows_usage_against_the_caps() -> None:
    rules = replace(RULES, warmup_enabled=True, provider_host="smtp.gmail.com", domain_cap=20)
    sends = (
        sent(at(WEDNESDAY, 8), "a@acme.com"),
        sent(at(WEDNESDAY, 8, 40), "b@acme.com"),
        sent(at(WEDNESDAY, 9), "me@mine.com", manual=True),
    )
    snapshot = PacingSnapshot(now=at(WEDNESDAY, 9, 10), sends=sends, warmup_started_at=TUESDAY)
    report = capacity_report(guardrails=rules, snapshot=snapshot)
    assert (report.daily.used, report.daily.limit) == (2, 25)
    assert (report.hourly.used, report.hourly.limit) == (1, 3)
    assert report.warmup is not None and report.warmup.limit == 10
    assert (report.provider_day.used, report.provider_day.limit) == (3, 450)
    assert report.provider_name == "Gmail"
    assert report.busiest_domains == (("acme.com", 2),)
    assert report.effective_daily_cap == 10
    assert not report.breaker.tripped
    assert report.next_slot == at(WEDNESDAY, 10)  # 10 a day over 10 h: slot 3 at 10:00
    assert report.next_slot_reason is DeferReason.SPACING


def test_raising_the_cap_past_30_gives_advice() -> None:
    assert cap_raise_advice(30) is None
    advice = cap_raise_advice(31)
    assert advice is not None and "secondary" in advice and "domain" in advice


def test_an_unknown_recipient_time_zone_falls_back_to_the_sender_window() -> None:
    rules = replace(RULES, use_recipient_timezone=True)
    lead = Lead(email="bob@example.com", timezone="Nowhere/Land")
    assert isinstance(decide(at(WEDNESDAY, 10), guardrails=rules, lead=lead), Allowed)
    assert_exact(
        decide(at(WEDNESDAY, 7), guardrails=rules, lead=lead), DeferReason.OUTSIDE_HOURS, at(WEDNESDAY, 8)
    )


def test_pace_factor_after_throttling_scales_the_caps() -> None:
    rules = replace(RULES, daily_cap=10, hourly_cap=10)
    sends = tuple(sent(at(TUESDAY, 9) + timedelta(minutes=30 * n)) for n in range(5))
    now = at(WEDNESDAY, 8, 30)
    assert isinstance(decide(now, sends, guardrails=rules), Allowed)
    slowed = decide(now, sends, guardrails=rules, snapshot_extra={"pace_factor": 0.5})
    assert isinstance(slowed, Deferred) and slowed.reason is DeferReason.DAILY_CAP
    assert slowed.not_before == at(WEDNESDAY, 9)  # 5 a day: the oldest must age out first
    broken = decide(now, sends, guardrails=rules, snapshot_extra={"pace_factor": float("nan")})
    assert isinstance(broken, Deferred)  # a bad factor slows down, it does not crash
