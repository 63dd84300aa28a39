"""May this message go, and if not, why and until when: block → hold → pacing, every rule named.

`evaluate` is the one decision the scheduler asks for, with a snapshot built from the ledger in the same
transaction that will mark the message as sending. The jitter that makes sends look human is not part
of the decision: `pacing.next_send_time` adds it to the exact earliest time, so a scheduler that sleeps
until then is always allowed when it wakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from cadence.core.leads import normalize_address
from cadence.core.legal import legal_basis_for, needs_consent_hold
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
    PacingSnapshot,
    SentRecord,
)
from cadence.core.pacing import DAY_US, FOREVER, earliest_send_time, snapshot_view, to_us
from cadence.core.risk import risk_reasons

STOPPED_STATUSES = frozenset(
    {
        LeadStatus.REPLIED,
        LeadStatus.BOUNCED,
        LeadStatus.UNSUBSCRIBED,
        LeadStatus.NOT_INTERESTED,
        LeadStatus.SUPPRESSED,
    }
)
COLD_CAP_ADVICE_THRESHOLD = 30


def cap_raise_advice(daily_cap: int) -> str | None:
    """The warning shown when the user raises the cold cap past what one mailbox should carry."""
    if daily_cap <= COLD_CAP_ADVICE_THRESHOLD:
        return None
    return (
        f"{daily_cap} cold emails a day is more than a primary mailbox should send "
        f"(keep it at {COLD_CAP_ADVICE_THRESHOLD} or less). Send larger volumes from a secondary domain "
        "(e.g. a look-alike of your company domain with its own SPF, DKIM and DMARC, warmed up over weeks), "
        "so that complaints and bounces cannot hurt the reputation of the domain your everyday mail uses."
    )


def is_suppressed(address: str, *, addresses: AbstractSet[str], domains: AbstractSet[str]) -> bool:
    """Whether `address` (any case) is on the list: `addresses` hold lower-case addresses, `domains`
    lower-case domains written bare or as `@domain`."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    if address in addresses:
        return True
    return domain in domains or f"@{domain}" in domains


def is_duplicate(*, recipient: str, subject: str, sends: tuple[SentRecord, ...], now: datetime) -> bool:
    """Same recipient and subject already sent (by this account) within the last 24 h."""
    times = snapshot_view(sends).subject_times(recipient, subject)
    now_us = to_us(now)
    return any(now_us - DAY_US < moment <= now_us + DAY_US for moment in times)


def step_due_at(*, previous_step_sent_at: datetime, delay_days: float) -> datetime:
    return previous_step_sent_at + timedelta(days=delay_days)


def block_reason(
    *,
    lead: Lead,
    subject: str,
    snapshot: PacingSnapshot,
    lead_status: LeadStatus = LeadStatus.NEW,
    queued_at: datetime | None = None,
    guardrails: Guardrails | None = None,
) -> Blocked | None:
    """Reasons a message must never go: stopped lead, suppression, invalid address, duplicate, expiry."""
    if lead_status is LeadStatus.SUPPRESSED or is_suppressed(
        lead.email, addresses=snapshot.suppressed_addresses, domains=snapshot.suppressed_domains
    ):
        return Blocked(BlockReason.SUPPRESSED, lead.email)
    if lead_status in STOPPED_STATUSES:
        return Blocked(BlockReason.LEAD_STOPPED, lead_status.value)
    try:
        normalize_address(lead.email)
    except ValueError as exc:
        return Blocked(BlockReason.INVALID_ADDRESS, str(exc))
    if is_duplicate(recipient=lead.email, subject=subject, sends=snapshot.sends, now=snapshot.now):
        return Blocked(BlockReason.DUPLICATE, subject)
    if queued_at is not None and guardrails is not None:
        expires = queued_at + timedelta(days=guardrails.expire_after_days)
        if snapshot.now >= expires:
            return Blocked(BlockReason.EXPIRED, f"queued since {queued_at.isoformat()}")
    return None


def hold_reasons(
    *,
    lead: Lead,
    step_index: int,
    subject: str,
    body: str,
    guardrails: Guardrails,
    has_attachment: bool = False,
    approved_by_user: bool = False,
    cold: bool = True,
) -> tuple[HoldReason, ...]:
    """Why a draft waits for the user. Consent holds stay even after approval: consent must be recorded."""
    reasons: list[HoldReason] = []
    if cold and needs_consent_hold(address=lead.email, consent=lead.consent):
        reasons.append(HoldReason.CONSENT_REQUIRED)
    if not approved_by_user:
        if cold and step_index == 1 and guardrails.approve_first_touch:
            reasons.append(HoldReason.FIRST_TOUCH)
        reasons.extend(risk_reasons(subject=subject, body=body, has_attachment=has_attachment))
    return tuple(reasons)


def evaluate(
    *,
    lead: Lead,
    step_index: int,
    subject: str,
    body: str,
    sender: str,
    guardrails: Guardrails,
    snapshot: PacingSnapshot,
    has_attachment: bool = False,
    approved_by_user: bool = False,
    cold: bool = True,
    recipient_timezone: str | None = None,
    lead_status: LeadStatus = LeadStatus.NEW,
    previous_step_sent_at: datetime | None = None,
    step_delay_days: float = 0.0,
    queued_at: datetime | None = None,
    workspace: bool = False,
) -> Decision:
    """Blocked, then Held, then Deferred (with the exact next possible time), else Allowed.

    `snapshot.sends` are the ledger rows of `sender`'s account (in-flight messages included); a follow-up
    (step_index > 1) needs `previous_step_sent_at`, without it it waits (Deferred until FOREVER).
    `recipient_timezone` defaults to the lead's own time zone.
    """
    del sender  # the snapshot is per sending account; kept in the signature for audit call sites
    blocked = block_reason(
        lead=lead,
        subject=subject,
        snapshot=snapshot,
        lead_status=lead_status,
        queued_at=queued_at,
        guardrails=guardrails,
    )
    if blocked is not None:
        return blocked
    legal_basis = legal_basis_for(lead.email)
    holds = hold_reasons(
        lead=lead,
        step_index=step_index,
        subject=subject,
        body=body,
        guardrails=guardrails,
        has_attachment=has_attachment,
        approved_by_user=approved_by_user,
        cold=cold,
    )
    if holds:
        return Held(holds, legal_basis)
    not_before = None
    if step_index > 1 and cold:
        if previous_step_sent_at is None:
            return Deferred(DeferReason.STEP_NOT_DUE, FOREVER)
        not_before = step_due_at(previous_step_sent_at=previous_step_sent_at, delay_days=step_delay_days)
    when, reason = earliest_send_time(
        guardrails=guardrails,
        snapshot=snapshot,
        recipient_domain=lead.domain,
        recipient_timezone=recipient_timezone or lead.timezone,
        cold=cold,
        not_before=not_before,
        workspace=workspace,
    )
    if reason is not None and when > snapshot.now:
        return Deferred(reason, when)
    return Allowed(legal_basis)


# --- fairness --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FairCandidate:
    """A message waiting to go: enough for fair ordering."""

    message_id: int
    campaign_id: int
    step_index: int  # 1 = first touch
    due_at: datetime  # when its step delay has passed (first touches: when queued)


def fair_order(
    candidates: Sequence[FairCandidate], *, now: datetime, last_campaign_id: int | None = None
) -> list[FairCandidate]:
    """Due follow-ups first, then due first touches, then what is not due yet; inside each tier the
    campaigns take turns (round-robin, starting after the campaign served last), each campaign's own
    messages oldest-due first."""

    def tier(candidate: FairCandidate) -> int:
        if candidate.due_at > now:
            return 2
        return 0 if candidate.step_index > 1 else 1

    ordered: list[FairCandidate] = []
    by_tier = sorted(candidates, key=tier)
    for _, members in groupby(by_tier, key=tier):
        queues: dict[int, list[FairCandidate]] = {}
        for candidate in sorted(members, key=lambda c: (c.due_at, c.message_id)):
            queues.setdefault(candidate.campaign_id, []).append(candidate)
        campaigns = sorted(queues)
        if last_campaign_id is not None:
            after = [c for c in campaigns if c > last_campaign_id]
            campaigns = after + [c for c in campaigns if c <= last_campaign_id]
        depth = max(len(queue) for queue in queues.values())
        for position in range(depth):
            ordered.extend(queues[c][position] for c in campaigns if position < len(queues[c]))
    return ordered
