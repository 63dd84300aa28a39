"""Display formatting: local times, ages, counts. Views carry UTC; conversion happens only here."""

from __future__ import annotations

from datetime import datetime, timedelta

from cadence.core.model import DeferReason, HoldReason, SuppressionReason

HOLD_TEXT = {
    HoldReason.FIRST_TOUCH: "first touch",
    HoldReason.CONSENT_REQUIRED: "consent needed",
    HoldReason.LINK: "link",
    HoldReason.ATTACHMENT: "attachment",
    HoldReason.PRICE: "price",
    HoldReason.CONTRACT: "contract",
    HoldReason.MEETING: "meeting request",
}

SUPPRESSION_TEXT = {
    SuppressionReason.HARD_BOUNCE: "Hard bounce",
    SuppressionReason.SOFT_BOUNCES: "Repeated soft bounces",
    SuppressionReason.SMTP_REJECTED: "Rejected by server",
    SuppressionReason.UNSUBSCRIBE: "Unsubscribed",
    SuppressionReason.NOT_INTERESTED: "Not interested",
    SuppressionReason.COMPLAINT: "Spam complaint",
    SuppressionReason.UNDELIVERABLE_DOMAIN: "Domain cannot receive mail",
    SuppressionReason.MANUAL: "Added by hand",
    SuppressionReason.ERASED: "Erased (GDPR)",
}

DEFER_TEXT = {
    DeferReason.OUTSIDE_HOURS: "Outside sending hours",
    DeferReason.OUTSIDE_DAYS: "Not a sending day",
    DeferReason.DAILY_CAP: "Daily cap reached",
    DeferReason.HOURLY_CAP: "Hourly cap reached",
    DeferReason.MIN_DELAY: "Spacing between sends",
    DeferReason.DOMAIN_CAP: "Per-domain cap",
    DeferReason.WARMUP_CAP: "Warm-up cap",
    DeferReason.PROVIDER_DAY: "Provider daily limit",
    DeferReason.PROVIDER_HOUR: "Provider hourly limit",
    DeferReason.PROVIDER_MINUTE: "Provider per-minute limit",
    DeferReason.BOUNCE_BREAKER: "Bounce breaker",
    DeferReason.PAUSED: "Paused",
    DeferReason.BACKOFF: "Backing off after throttling",
    DeferReason.STEP_NOT_DUE: "Step not due yet",
    DeferReason.SMTP_TEMPORARY: "Temporary server error",
}


def local(dt: datetime) -> datetime:
    return dt.astimezone()


def clock_time(dt: datetime | None, *, now: datetime | None = None) -> str:
    if dt is None:
        return "—"
    when = local(dt)
    if now is not None and local(now).date() == when.date():
        return when.strftime("%H:%M")
    if now is not None and (when.date() - local(now).date()).days == 1:
        return "tomorrow " + when.strftime("%H:%M")
    return when.strftime("%a %d %b %H:%M")


def day_text(dt: datetime | None) -> str:
    return "—" if dt is None else local(dt).strftime("%d %b %Y")


def age(since: datetime, now: datetime) -> str:
    delta = now - since
    if delta < timedelta(minutes=1):
        return "just now"
    if delta < timedelta(hours=1):
        return f"{int(delta.total_seconds() // 60)} min"
    if delta < timedelta(days=2):
        hours = int(delta.total_seconds() // 3600)
        return f"{hours} h"
    return f"{delta.days} days"


def until(when: datetime, now: datetime) -> str:
    delta = when - now
    if delta <= timedelta(0):
        return "now"
    if delta < timedelta(hours=1):
        return f"in {max(1, int(delta.total_seconds() // 60))} min"
    if delta < timedelta(days=1):
        hours, rest = divmod(int(delta.total_seconds()), 3600)
        return f"in {hours} h {rest // 60} min"
    return f"in {delta.days} days"


def count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"
