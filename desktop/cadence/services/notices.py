"""Notices the user hears about once per occurrence, remembered in the audit log (result `notified`) so that
a restart or the next poll does not repeat them: the daily cap reached (once per account and local day), a
campaign finished (its last message settled), drafts waiting for approval more than 24 hours (each draft in
one notice). The functions here run on the database thread (DbWorker.call): read, decide, record together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadence.core.model import (
    Account,
    AuditEntry,
    AuditResult,
    Campaign,
    CampaignStatus,
    DeferReason,
    MessageState,
)
from cadence.core.ports import Store

CAP_REACHED = "cap_reached"
CAMPAIGN_FINISHED = "campaign_finished"
DRAFTS_WAITING = "drafts_waiting"

DAILY_CAP_REASONS = frozenset({DeferReason.DAILY_CAP, DeferReason.WARMUP_CAP, DeferReason.PROVIDER_DAY})
OPEN_STATES = (
    MessageState.DRAFT,
    MessageState.PENDING_APPROVAL,
    MessageState.APPROVED,
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.DEFERRED,
)
WAITING_TOO_LONG = timedelta(hours=24)
_SCAN_PAGE = 1000


def local_day_start(now: datetime, timezone: str) -> datetime:
    """Midnight of `now`'s day in the account's timezone (UTC when the name is unknown), as an aware time."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(), tzinfo=zone)


def _notified(
    store: Store, *, reason: str, account_id: int | None, since: datetime | None
) -> list[AuditEntry]:
    rows = store.query_audit(account_id=account_id, since=since, results=[AuditResult.NOTIFIED], limit=None)
    return [row for row in rows if row.reason == reason]


def claim_cap_notice(store: Store, account: Account, *, now: datetime, until: datetime | None) -> bool:
    """True exactly once per account and local day: the caller tells the user the cap was reached."""
    day_start = local_day_start(now, account.settings.guardrails.timezone)
    if _notified(store, reason=CAP_REACHED, account_id=account.id, since=day_start):
        return False
    detail = f"until {until.isoformat()}" if until is not None else ""
    store.append_audit(
        [
            AuditEntry(
                at=now,
                result=AuditResult.NOTIFIED,
                account_id=account.id,
                sender=account.email,
                reason=CAP_REACHED,
                detail=detail,
            )
        ]
    )
    return True


def finish_settled_campaigns(
    store: Store, *, account_id: int, now: datetime, campaign_ids: Iterable[int] | None = None
) -> list[Campaign]:
    """Running campaigns of the account (or only `campaign_ids`) that have sent something and have no
    message left open become finished; returns them (each at most once: a finished campaign stays so)."""
    wanted = set(campaign_ids) if campaign_ids is not None else None
    finished: list[Campaign] = []
    for campaign in store.list_campaigns(account_id=account_id):
        if campaign.status is not CampaignStatus.ACTIVE or (wanted is not None and campaign.id not in wanted):
            continue
        if store.list_messages(states=OPEN_STATES, campaign_id=campaign.id, limit=1):
            continue
        if not store.list_messages(states=[MessageState.SENT], campaign_id=campaign.id, limit=1):
            continue  # nothing went out: every draft was rejected or blocked; not a campaign that ran
        store.set_campaign_status(campaign.id, status=CampaignStatus.FINISHED)
        store.append_audit(
            [
                AuditEntry(
                    at=now,
                    result=AuditResult.NOTIFIED,
                    account_id=account_id,
                    reason=CAMPAIGN_FINISHED,
                    detail=f"campaign {campaign.id}: {campaign.name}",
                )
            ]
        )
        finished.append(campaign)
    return finished


def _first_created_after(store: Store, moment: datetime, *, total: int) -> int:
    """The offset, among drafts waiting for approval in id order, of the first one created after `moment`
    (ids grow with creation time, so a binary search over offsets finds it in a few one-row reads)."""
    low, high = 0, total
    while low < high:
        middle = (low + high) // 2
        row = store.list_messages(states=[MessageState.PENDING_APPROVAL], limit=1, offset=middle)
        if not row or row[0].created_at > moment:
            high = middle
        else:
            low = middle + 1
    return low


def claim_waiting_drafts_notice(store: Store, *, now: datetime) -> int:
    """How many drafts have newly waited for approval more than 24 h (not in an earlier notice); they are
    recorded as notified (the newest waiting-since time is the watermark). Only drafts created between the
    watermark and 24 h ago are read, so a queue of 100,000 old drafts costs a few small reads."""
    cutoff = now - WAITING_TOO_LONG
    earlier = _notified(store, reason=DRAFTS_WAITING, account_id=None, since=None)
    watermark = max((datetime.fromisoformat(e.detail) for e in earlier if e.detail), default=None)
    if watermark is not None and watermark >= cutoff:
        return 0
    total = store.count_messages().get(MessageState.PENDING_APPROVAL, 0)
    start = _first_created_after(store, watermark, total=total) if watermark is not None else 0
    end = _first_created_after(store, cutoff, total=total)
    newly = 0
    newest: datetime | None = None
    offset = start
    while offset < end:
        page = store.list_messages(
            states=[MessageState.PENDING_APPROVAL], limit=min(_SCAN_PAGE, end - offset), offset=offset
        )
        if not page:
            break
        for message in page:
            waiting_since = message.state_changed_at
            if waiting_since <= cutoff and (watermark is None or waiting_since > watermark):
                newly += 1
                newest = max(newest or waiting_since, waiting_since)
        offset += len(page)
    if newly and newest is not None:
        store.append_audit(
            [
                AuditEntry(
                    at=now, result=AuditResult.NOTIFIED, reason=DRAFTS_WAITING, detail=newest.isoformat()
                )
            ]
        )
    return newly
