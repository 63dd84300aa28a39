"""Domain values shared by every layer.

Everything here is a frozen dataclass or an enum: values cross layers, ORM rows and Qt objects never do.
Times are always timezone-aware datetimes (UTC inside the engine, converted only for display).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class MessageState(StrEnum):
    """Life of one outbound message (draft → … → sent | deferred | failed | expired | blocked)."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    QUEUED = "queued"
    SENDING = "sending"  # committed with its Message-ID before the SMTP call; at start-up: in doubt
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    EXPIRED = "expired"
    BLOCKED = "blocked"
    REJECTED = "rejected"  # the user rejected the draft in the approval queue
    CANCELLED = "cancelled"  # a later step stopped by a reply, bounce, unsubscribe or suppression


TERMINAL_STATES = frozenset(
    {
        MessageState.SENT,
        MessageState.FAILED,
        MessageState.EXPIRED,
        MessageState.BLOCKED,
        MessageState.REJECTED,
        MessageState.CANCELLED,
    }
)

ALLOWED_TRANSITIONS: Mapping[MessageState, frozenset[MessageState]] = {
    MessageState.DRAFT: frozenset(
        {
            MessageState.PENDING_APPROVAL,
            MessageState.APPROVED,
            MessageState.BLOCKED,
            MessageState.CANCELLED,
        }
    ),
    MessageState.PENDING_APPROVAL: frozenset(
        {
            MessageState.APPROVED,
            MessageState.REJECTED,
            MessageState.BLOCKED,
            MessageState.EXPIRED,
            MessageState.CANCELLED,
        }
    ),
    MessageState.APPROVED: frozenset(
        {
            MessageState.QUEUED,
            MessageState.BLOCKED,
            MessageState.DEFERRED,
            MessageState.PENDING_APPROVAL,
            MessageState.CANCELLED,
            MessageState.EXPIRED,
        }
    ),
    MessageState.QUEUED: frozenset(
        {
            MessageState.SENDING,
            MessageState.DEFERRED,
            MessageState.BLOCKED,
            MessageState.CANCELLED,
            MessageState.EXPIRED,
            MessageState.PENDING_APPROVAL,
        }
    ),
    MessageState.SENDING: frozenset(
        {MessageState.SENT, MessageState.DEFERRED, MessageState.FAILED, MessageState.QUEUED}
    ),
    MessageState.DEFERRED: frozenset(
        {
            MessageState.QUEUED,
            MessageState.SENDING,
            MessageState.EXPIRED,
            MessageState.FAILED,
            MessageState.BLOCKED,
            MessageState.CANCELLED,
            MessageState.PENDING_APPROVAL,
        }
    ),
    MessageState.SENT: frozenset(),
    MessageState.FAILED: frozenset(),
    MessageState.EXPIRED: frozenset(),
    MessageState.BLOCKED: frozenset(),
    MessageState.REJECTED: frozenset(),
    MessageState.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    """A message was asked to move to a state its current state cannot reach."""


def check_transition(current: MessageState, target: MessageState) -> None:
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(f"message cannot go from {current.value} to {target.value}")


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    NOT_INTERESTED = "not_interested"
    PAUSED = "paused"  # the user wrote to the lead by hand, or an auto-reply gave a return date
    SUPPRESSED = "suppressed"
    FINISHED = "finished"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"  # three soft bounces within seven days
    SMTP_REJECTED = "smtp_rejected"  # 5.1.x / 5.2.1 at RCPT time
    UNSUBSCRIBE = "unsubscribe"
    NOT_INTERESTED = "not_interested"
    COMPLAINT = "complaint"
    UNDELIVERABLE_DOMAIN = "undeliverable_domain"  # no MX, no A, or null MX
    MANUAL = "manual"
    ERASED = "erased"  # GDPR erasure: only a salted hash of the address is kept


class HoldReason(StrEnum):
    """Why a draft waits in the approval queue instead of going out by itself."""

    FIRST_TOUCH = "first_touch"
    CONSENT_REQUIRED = "consent_required"
    LINK = "link"
    ATTACHMENT = "attachment"
    PRICE = "price"
    CONTRACT = "contract"
    MEETING = "meeting"


class BlockReason(StrEnum):
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    INVALID_ADDRESS = "invalid_address"
    UNDELIVERABLE_DOMAIN = "undeliverable_domain"
    LEAD_STOPPED = "lead_stopped"  # replied, bounced, unsubscribed: later steps never go


class DeferReason(StrEnum):
    """Why a send that is allowed cannot happen right now (each comes with a next possible time)."""

    OUTSIDE_HOURS = "outside_hours"
    OUTSIDE_DAYS = "outside_days"
    DAILY_CAP = "daily_cap"
    HOURLY_CAP = "hourly_cap"
    MIN_DELAY = "min_delay"
    DOMAIN_CAP = "domain_cap"
    WARMUP_CAP = "warmup_cap"
    PROVIDER_DAY = "provider_daily_limit"
    PROVIDER_HOUR = "provider_hourly_limit"
    PROVIDER_MINUTE = "provider_minute_limit"
    BOUNCE_BREAKER = "bounce_breaker"
    PAUSED = "paused"
    BACKOFF = "backoff"  # the account is backing off after throttling or a connection problem
    STEP_NOT_DUE = "step_not_due"
    SMTP_TEMPORARY = "smtp_temporary"


@dataclass(frozen=True, slots=True)
class Lead:
    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    timezone: str | None = None
    consent: bool | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    id: int | None = None

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a campaign. `delay_days` is counted from the previous step's send (0 for the first)."""

    index: int  # 1-based
    subject: str
    body: str
    delay_days: float = 0.0
    html_body: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    name: str
    per_day: int | None = None
    per_hour: int | None = None
    per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Per-account rules. Each default is documented in the README (and in core.settings)."""

    daily_cap: int = 25
    hourly_cap: int = 3
    min_delay_s: float = 60.0
    jitter_s: float = 120.0
    hours_start_min: int = 8 * 60  # minutes after midnight, sender's (or recipient's) local time
    hours_end_min: int = 18 * 60
    business_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    timezone: str = "UTC"
    use_recipient_timezone: bool = False
    domain_cap: int = 20
    warmup_enabled: bool = True
    warmup_start: int = 10
    warmup_step: int = 5
    warmup_every_days: int = 2
    bounce_breaker_rate: float = 0.05
    bounce_breaker_min_sample: int = 20
    manual_mail_buffer: float = 0.10
    approve_first_touch: bool = True
    expire_after_days: float = 7.0
    provider_host: str | None = None


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One row of the send ledger as the engine sees it."""

    at: datetime
    recipient: str
    subject: str
    cold: bool = True
    manual: bool = False  # found in the Sent folder, written by the user by hand


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """What the engine needs from storage to decide; built fresh from the ledger for every decision."""

    now: datetime
    sends: tuple[SentRecord, ...]  # ledger rows of the last 24 h (at least), any order
    hard_bounces_24h: int = 0
    warmup_started_at: datetime | None = None
    paused_reason: str | None = None
    paused_until: datetime | None = None
    backoff_until: datetime | None = None
    pace_factor: float = 1.0  # < 1 after repeated throttling (multiplicative decrease)
    suppressed_addresses: frozenset[str] = frozenset()
    suppressed_domains: frozenset[str] = frozenset()


# --- decisions -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowed:
    legal_basis: LegalBasis


@dataclass(frozen=True, slots=True)
class Held:
    reasons: tuple[HoldReason, ...]
    legal_basis: LegalBasis

    @property
    def reason(self) -> HoldReason:
        return self.reasons[0]


@dataclass(frozen=True, slots=True)
class Blocked:
    reason: BlockReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Deferred:
    reason: DeferReason
    not_before: datetime


Decision = Allowed | Held | Blocked | Deferred


# --- sending outcomes (adapters translate library errors into these) -----------------------------------


class SendOutcome(StrEnum):
    DELIVERED = "delivered"  # 2xx after the final dot
    DEFERRED = "deferred"  # 4xx or a connection failure before DATA: retry later, no cap used
    IN_DOUBT = "in_doubt"  # dropped or timed out after DATA started: it may have gone out
    RECIPIENT_DEAD = "recipient_dead"  # 5.1.x / 5.2.1 at RCPT
    RECIPIENT_SOFT = "recipient_soft"  # 5.2.2 mailbox full and similar
    THROTTLED = "throttled"  # 421, 432, 4.7.x, provider throttling texts: the account backs off
    QUOTA = "quota"  # daily sending limit reached at the provider
    POLICY = "policy"  # 5.7.x: sender-side policy / reputation: pause and tell, never blame the recipient
    AUTH_FAILED = "auth_failed"
    DO_NOT_RETRY = "do_not_retry"  # e.g. Yahoo TS03
    PERMANENT = "permanent"  # any other 5xx for this message


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    code: int | None = None
    enhanced_status: str | None = None
    text: str = ""
    retry_after_s: float | None = None


# --- inbound classification ------------------------------------------------------------------------------


class InboundKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    UNSUBSCRIBE = "unsubscribe"
    NOT_INTERESTED = "not_interested"
    REPLY = "reply"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: InboundKind
    recipients: tuple[str, ...] = ()
    status: str | None = None
    reason: str | None = None
    address_dead: bool | None = None
    message_id: str | None = None
    from_address: str | None = None
    in_reply_to: tuple[str, ...] = ()  # In-Reply-To and References, newest first
    original_message_id: str | None = None  # Message-ID of the returned original (bounces)
    return_date: date | None = None  # auto-replies that say when the person is back
    delayed: bool = False  # DSN Action: delayed (a warning, not a bounce)
    throttling: str | None = None  # provider throttling text found in a DSN (feeds the backoff mode)
    error: str | None = None
