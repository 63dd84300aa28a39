"""Guardrail settings declared once: defaults, conversion, bounds, advice."""

from __future__ import annotations

import pytest

from cadence.core.model import Guardrails
from cadence.core.settings import (
    GUARDRAIL_SETTINGS,
    SettingError,
    guardrails_from_values,
    guardrails_to_values,
    warnings_for,
)


def test_every_guardrail_is_declared_with_its_default_and_help() -> None:
    defaults = Guardrails()
    for setting in GUARDRAIL_SETTINGS:
        assert setting.default == getattr(defaults, setting.name)
        assert setting.help and setting.label


def test_values_round_trip() -> None:
    custom = guardrails_from_values(
        {"daily_cap": "40", "business_days": "0,2,4", "timezone": "Asia/Tokyo", "warmup_enabled": "no"}
    )
    assert (custom.daily_cap, custom.business_days, custom.timezone) == (
        40,
        frozenset({0, 2, 4}),
        "Asia/Tokyo",
    )
    assert custom.warmup_enabled is False
    assert guardrails_from_values(guardrails_to_values(custom)) == custom


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"daily_cap": -1}, "daily_cap"),
        ({"daily_cap": 2.5}, "daily_cap"),
        ({"daily_cap": True}, "daily_cap"),
        ({"hourly_cap": "lots"}, "hourly_cap"),
        ({"business_days": "0,9"}, "business_days"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"bounce_breaker_rate": 2}, "bounce_breaker_rate"),
        ({"unknown": 1}, "unknown"),
        ({"hours_start_min": 600, "hours_end_min": 540}, "guardrails"),
    ],
)
def test_bad_values_name_the_setting(values: dict[str, object], name: str) -> None:
    with pytest.raises(SettingError) as caught:
        guardrails_from_values(values)
    assert caught.value.name == name


def test_risky_settings_come_with_advice() -> None:
    assert warnings_for(Guardrails()) == ()
    notes = warnings_for(Guardrails(daily_cap=50, warmup_enabled=False))
    assert len(notes) == 2 and "secondary" in notes[0]
