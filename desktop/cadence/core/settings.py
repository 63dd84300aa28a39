"""The guardrail settings, each declared once: name, type, default (taken from `Guardrails`), bounds, help.

The settings dialog builds its widgets from `GUARDRAIL_SETTINGS`; storage and the CLI convert through
`guardrails_from_values` / `guardrails_to_values`, which check types and bounds with a one-line message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

from cadence.core.model import Guardrails
from cadence.core.pacing import check_guardrails, is_valid_timezone
from cadence.core.policy import cap_raise_advice

_DEFAULTS = Guardrails()
_FIELD_TYPES = {f.name: f.type for f in fields(Guardrails)}


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # the Guardrails field
    label: str
    kind: type  # int, float, bool, str or frozenset (weekday numbers, Monday = 0)
    help: str
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    optional: bool = False  # None allowed (no value)

    @property
    def default(self) -> object:
        return getattr(_DEFAULTS, self.name)


class SettingError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


GUARDRAIL_SETTINGS: tuple[Setting, ...] = (
    Setting("daily_cap", "Cold emails per day", int, "Most cold emails in any 24 hours.", 0, 10_000),
    Setting("hourly_cap", "Cold emails per hour", int, "Most cold emails in any 60 minutes.", 0, 1_000),
    Setting("min_delay_s", "Minimum gap", float, "Least time between two sends.", 0, 86_400, "s"),
    Setting("jitter_s", "Random extra gap", float, "Up to this much is added to each gap.", 0, 86_400, "s"),
    Setting("hours_start_min", "Sending starts", int, "Start of the business window.", 0, 1439, "min"),
    Setting("hours_end_min", "Sending ends", int, "End of the business window.", 1, 1440, "min"),
    Setting("business_days", "Sending days", frozenset, "Weekdays to send on (Monday = 0)."),
    Setting("timezone", "Time zone", str, "The sender's time zone (IANA name)."),
    Setting(
        "use_recipient_timezone",
        "Use the recipient's time zone",
        bool,
        "Business hours in the lead's own time zone when it is known.",
    ),
    Setting(
        "domain_cap", "Per recipient domain", int, "Most cold emails to one domain in 24 hours.", 0, 10_000
    ),
    Setting("warmup_enabled", "Warm-up", bool, "Ramp the daily volume up from a few a day."),
    Setting("warmup_start", "Warm-up start", int, "Cold emails a day on the first days.", 1, 10_000),
    Setting("warmup_step", "Warm-up step", int, "Added to the daily allowance each step.", 0, 10_000),
    Setting("warmup_every_days", "Warm-up step every", int, "Days between two steps.", 1, 365, "days"),
    Setting(
        "bounce_breaker_rate",
        "Bounce breaker",
        float,
        "Stop cold mail for the day when hard bounces exceed this share of the last 24 h's sends.",
        0,
        1,
    ),
    Setting(
        "bounce_breaker_min_sample", "Bounce breaker sample", int, "Sends needed before it trips.", 1, 10_000
    ),
    Setting(
        "manual_mail_buffer",
        "Kept for your own mail",
        float,
        "Share of the provider limit left free.",
        0,
        0.95,
    ),
    Setting("approve_first_touch", "Approve first emails", bool, "Hold every first email for approval."),
    Setting(
        "expire_after_days",
        "Expire after",
        float,
        "Drop a message waiting longer than this.",
        0.01,
        365,
        "days",
    ),
    Setting("provider_host", "SMTP host", str, "For the provider's sending limits.", optional=True),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in GUARDRAIL_SETTINGS}
assert set(SETTINGS_BY_NAME) == set(_FIELD_TYPES), "every Guardrails field is declared exactly once"


def _coerce(setting: Setting, value: object) -> object:
    if value is None:
        if setting.optional:
            return None
        raise SettingError(setting.name, "a value is required")
    kind = setting.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {
            "true",
            "yes",
            "1",
            "on",
            "false",
            "no",
            "0",
            "off",
        }:
            return value.strip().lower() in {"true", "yes", "1", "on"}
        raise SettingError(setting.name, f"expected yes or no, got {value!r}")
    if kind is frozenset:
        items: Iterable[object] = value.split(",") if isinstance(value, str) else ()
        if isinstance(value, (frozenset, set, list, tuple)):
            items = value
        try:
            days = frozenset(int(str(item).strip()) for item in items)
        except ValueError:
            raise SettingError(setting.name, f"expected weekday numbers 0-6, got {value!r}") from None
        if not days or not days <= set(range(7)):
            raise SettingError(setting.name, f"expected weekday numbers 0-6, got {value!r}")
        return days
    if kind is str:
        if not isinstance(value, str):
            raise SettingError(setting.name, f"expected text, got {value!r}")
        return value.strip() or (None if setting.optional else value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SettingError(setting.name, f"expected a number, got {value!r}")
    try:
        number: int | float = int(value) if kind is int else float(value)
    except ValueError:
        raise SettingError(setting.name, f"expected a number, got {value!r}") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise SettingError(setting.name, f"expected a whole number, got {value!r}")
    if setting.minimum is not None and number < setting.minimum:
        raise SettingError(setting.name, f"must be at least {setting.minimum:g}")
    if setting.maximum is not None and number > setting.maximum:
        raise SettingError(setting.name, f"must be at most {setting.maximum:g}")
    return number


def guardrails_from_values(values: Mapping[str, object], *, base: Guardrails = _DEFAULTS) -> Guardrails:
    """`base` with the given values applied; unknown names, wrong types and out-of-range values raise
    SettingError (a ValueError naming the setting)."""
    changes: dict[str, object] = {}
    for name, value in values.items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise SettingError(name, "no such setting")
        changes[name] = _coerce(setting, value)
    guardrails = replace(base, **changes)  # type: ignore[arg-type]
    if not is_valid_timezone(guardrails.timezone):
        raise SettingError("timezone", f"unknown time zone {guardrails.timezone!r}")
    try:
        check_guardrails(guardrails)
    except ValueError as exc:
        raise SettingError("guardrails", str(exc)) from None
    return guardrails


def guardrails_to_values(guardrails: Guardrails) -> dict[str, object]:
    """Plain values (JSON-friendly: weekdays as a sorted list)."""
    values: dict[str, object] = {}
    for setting in GUARDRAIL_SETTINGS:
        value = getattr(guardrails, setting.name)
        values[setting.name] = sorted(value) if isinstance(value, frozenset) else value
    return values


def warnings_for(guardrails: Guardrails) -> tuple[str, ...]:
    """Advice to show next to settings that are allowed but risky."""
    advice = cap_raise_advice(guardrails.daily_cap)
    notes = [advice] if advice else []
    if not guardrails.warmup_enabled:
        notes.append(
            "Warm-up is off: a new mailbox that jumps straight to its full volume looks like a spammer."
        )
    if guardrails.bounce_breaker_rate > 0.05:
        notes.append("Bounce breaker above 5 %: mailbox providers start filtering long before that.")
    return tuple(notes)
