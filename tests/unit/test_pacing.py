"""Pacing building blocks: rolling windows, warm-up, provider presets, effective caps, business windows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cadence.core.model import Guardrails, ProviderLimits
from cadence.core.pacing import (
    RollingWindow,
    business_window,
    check_guardrails,
    effective_daily_cap,
    from_us,
    to_us,
    warmup_cap,
)
from cadence.core.providers import provider_for_host, usable_limits

BERLIN = ZoneInfo("Europe/Berlin")


def test_rolling_window_is_half_open() -> None:
    window = RollingWindow([10, 20, 30])
    assert window.count_after(10) == 2
    assert window.count_from(10) == 3
    assert window.release_time(at=35, span=30, cap=3) == 40  # the send at 10 stops counting at 40
    assert window.release_time(at=40, span=30, cap=3) is None
    window.add(25)  # out of order is kept sorted
    assert window.release_time(at=35, span=30, cap=3) == 50
    window.prune(21)
    assert len(window) == 2 and window.last() == 30


def test_microsecond_conversion_round_trips() -> None:
    moment = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=BERLIN)
    assert from_us(to_us(moment)) == moment
    with pytest.raises(ValueError, match="naive"):
        to_us(datetime(2026, 12, 1))


def test_warm_up_ramp() -> None:
    rules = Guardrails()
    assert [warmup_cap(rules, days_since_start=d) for d in range(8)] == [10, 10, 15, 15, 20, 20, 25, 25]
    assert warmup_cap(Guardrails(warmup_enabled=False), days_since_start=0) is None


@pytest.mark.parametrize(
    ("guardrails", "day", "expected"),
    [
        (Guardrails(), 0, 10),  # warm-up day 0
        (Guardrails(), 6, 25),  # ramp reached the daily cap
        (Guardrails(warmup_enabled=False, daily_cap=40), 0, 30),  # 3 an hour over 10 hours
        (
            Guardrails(
                warmup_enabled=False, daily_cap=200, hourly_cap=50, provider_host="smtp.protonmail.ch"
            ),
            0,
            135,
        ),
        (Guardrails(warmup_enabled=False, daily_cap=25, min_delay_s=3600), 0, 10),  # only 10 fit
    ],
)
def test_effective_daily_cap_is_the_smallest_that_applies(
    guardrails: Guardrails, day: int, expected: int
) -> None:
    start = datetime(2026, 12, 1, tzinfo=ZoneInfo("UTC"))
    at = datetime(2026, 12, 1 + day, 12, tzinfo=ZoneInfo("UTC"))
    assert effective_daily_cap(guardrails=guardrails, at=at, warmup_started_at=start) == expected


@pytest.mark.parametrize(
    ("host", "workspace", "name", "day", "hour", "minute"),
    [
        ("smtp.gmail.com", False, "Gmail", 500, None, None),
        ("SMTP.GMAIL.COM.", True, "Google Workspace", 2000, None, None),
        ("smtp.office365.com", False, "Microsoft 365", 10_000, None, 30),
        ("smtp-mail.outlook.com", False, "Microsoft 365", 10_000, None, 30),
        ("smtp.mail.yahoo.com", False, "Yahoo", 500, 100, None),
        ("smtp.mail.me.com", False, "iCloud", 1000, None, None),
        ("smtp.protonmail.ch", False, "Proton", 150, None, None),
        ("smtp.aol.com", False, "AOL", None, 100, None),
        ("smtpout.secureserver.net", False, "GoDaddy", 500, 300, 200),
        ("secure.emailsrvr.com", False, "Rackspace", 10_000, None, 30),
        ("mail.privateemail.com", False, "PrivateEmail", None, 1500, None),
        ("smtp.sendgrid.net", False, "Mass-mail service", 2500, 500, None),
        ("email-smtp.eu-west-1.amazonaws.com", False, "Mass-mail service", 2500, 500, None),
    ],
)
def test_provider_presets(
    host: str, workspace: bool, name: str, day: int | None, hour: int | None, minute: int | None
) -> None:
    assert provider_for_host(host, workspace=workspace) == ProviderLimits(name, day, hour, minute)


def test_unknown_host_has_no_preset_and_buffer_is_kept_free() -> None:
    assert provider_for_host("mail.example.org") is None
    assert provider_for_host(None) is None
    share = usable_limits(
        ProviderLimits("x", per_day=500, per_hour=100, per_minute=30), manual_mail_buffer=0.10
    )
    assert share == ProviderLimits("x", per_day=450, per_hour=90, per_minute=27)


def test_business_window_in_local_time_and_next_opening() -> None:
    rules = Guardrails(timezone="Europe/Berlin")
    inside = business_window(to_us(datetime(2026, 12, 2, 12, tzinfo=BERLIN)), tz=BERLIN, guardrails=rules)
    assert inside.open
    assert from_us(inside.start) == datetime(2026, 12, 2, 8, tzinfo=BERLIN)
    assert from_us(inside.end) == datetime(2026, 12, 2, 18, tzinfo=BERLIN)
    sunday = business_window(to_us(datetime(2026, 12, 6, 12, tzinfo=BERLIN)), tz=BERLIN, guardrails=rules)
    assert not sunday.open and from_us(sunday.start) == datetime(2026, 12, 7, 8, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hours_start_min": 600, "hours_end_min": 600}, "business hours"),
        ({"business_days": frozenset()}, "business days"),
        ({"daily_cap": -1}, "daily_cap"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"warmup_every_days": 0}, "warmup_every_days"),
    ],
)
def test_guardrails_are_checked(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_guardrails(Guardrails(**change))  # type: ignore[arg-type]
