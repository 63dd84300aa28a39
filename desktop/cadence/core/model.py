"""Domain values shared by every layer.

Everything here is a frozen dataclass or an enum: values cross layers, ORM rows and Qt objects never do.
Times are always timezone-aware datetimes (UTC inside the engine, converted only for display).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from cadence.core.oauth import AuthMethod


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
    EXPIRED = "expired"  # waited in the queue longer than Guardrails.expire_after_days


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
    SPACING = "spacing"  # sends are spread over the business window instead of bursting at its start
    CONSENT_REQUIRED = "consent_required"  # approved, but the lead's consent is not recorded (consent region)


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
    # when those hard bounces were recorded (empty: not known); lets the bounce breaker start a fresh
    # sample once its own pause has ended
    hard_bounce_times: tuple[datetime, ...] = ()
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
class RecipientRefusal:
    """One recipient refused at RCPT while others were accepted (the message went to the rest)."""

    address: str
    outcome: SendOutcome
    code: int
    enhanced_status: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    code: int | None = None
    enhanced_status: str | None = None
    text: str = ""
    retry_after_s: float | None = None
    stage: str | None = None  # SMTP step the outcome came from (core.smtp_replies.SmtpStage values)
    refused: tuple[RecipientRefusal, ...] = ()  # partial RCPT failures on a delivered message
    transcript: str = ""  # the SMTP dialogue for diagnosis, AUTH secrets redacted


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """Result of the account's connection test (connect, TLS, EHLO, login); says which step failed."""

    ok: bool
    failed_step: str | None = None  # core.smtp_replies.SmtpStage value
    outcome: SendOutcome | None = None
    code: int | None = None
    text: str = ""
    tls_version: str | None = None
    auth_mechanism: str | None = None
    transcript: str = ""


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


# --- storage records (what the store returns; ORM rows never leave the adapter) -------------------------


class ConnectionSecurity(StrEnum):
    TLS = "tls"  # implicit TLS from the first byte (465, 993)
    STARTTLS = "starttls"  # required upgrade (587), never the opportunistic kind
    NONE = "none"  # local test servers only


class SentFolderKind(StrEnum):
    PROVIDER_FILES = "provider_files"  # Gmail, Exchange Online: submitted mail lands in Sent by itself
    APP_APPENDS = "app_appends"  # Cadence must APPEND a copy to Sent


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """What the user edits for one sending account. Secrets are never part of it (keyring only)."""

    email: str
    display_name: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: ConnectionSecurity = ConnectionSecurity.STARTTLS
    imap_host: str = ""
    imap_port: int = 993
    imap_security: ConnectionSecurity = ConnectionSecurity.TLS
    ca_file: str | None = None  # extra CA bundle for a self-hosted server
    provider_key: str | None = None
    guardrails: Guardrails = Guardrails()
    sent_folder_kind: SentFolderKind = SentFolderKind.APP_APPENDS
    auth_method: AuthMethod = AuthMethod.PASSWORD  # OAuth: the refresh token is in the keyring


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    settings: AccountSettings
    created_at: datetime
    warmup_started_at: datetime | None = None
    paused_reason: str | None = None
    paused_until: datetime | None = None
    backoff_until: datetime | None = None
    pace_factor: float = 1.0
    consecutive_throttles: int = 0  # throttling replies in a row (reset by a clean send)

    @property
    def email(self) -> str:
        return self.settings.email


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    account_id: int
    status: CampaignStatus
    created_at: datetime
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class CampaignLead:
    """A lead as enrolled in one campaign (`lead.id` is the row id)."""

    campaign_id: int
    lead: Lead
    status: LeadStatus
    created_at: datetime
    stopped_reason: str | None = None
    resume_at: datetime | None = None

    @property
    def id(self) -> int:
        assert self.lead.id is not None
        return self.lead.id


@dataclass(frozen=True, slots=True)
class NewDraft:
    campaign_id: int
    lead_id: int
    step_index: int
    subject: str
    body: str
    state: MessageState = MessageState.PENDING_APPROVAL  # DRAFT, PENDING_APPROVAL or APPROVED
    hold_reasons: tuple[HoldReason, ...] = ()
    next_attempt_at: datetime | None = None  # not before (a follow-up's due time)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbound message (draft, approval queue, outbox and history are states of the same row)."""

    id: int
    campaign_id: int
    lead_id: int
    step_index: int
    account_id: int
    recipient: str
    state: MessageState
    subject: str
    body: str
    created_at: datetime
    updated_at: datetime
    state_changed_at: datetime
    hold_reasons: tuple[HoldReason, ...] = ()
    defer_reason: DeferReason | None = None
    next_attempt_at: datetime | None = None
    attempts: int = 0
    message_id: str | None = None  # RFC 5322 Message-ID, fixed when the message is claimed for sending
    last_error: str | None = None
    # the last pacing deferral written to the audit log (a deferral is audited when it changes)
    audited_defer_reason: DeferReason | None = None
    audited_defer_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    changed: tuple[int, ...]
    skipped: tuple[int, ...]  # unknown ids, or a state that cannot make this move


class LedgerKind(StrEnum):
    SENT = "sent"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    account_id: int
    at: datetime
    recipient: str
    kind: LedgerKind
    subject: str = ""
    message_id: str | None = None
    cold: bool = True
    manual: bool = False
    id: int | None = None

    @property
    def recipient_domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class Suppression:
    """`value` is an address, `@domain`, or for an erased person the salted hash (`hashed`)."""

    value: str
    reason: SuppressionReason
    created_at: datetime
    is_domain: bool = False
    hashed: bool = False
    source: str = ""
    evidence_id: int | None = None
    id: int | None = None


class AuditResult(StrEnum):
    ALLOWED = "allowed"
    HELD = "held"
    BLOCKED = "blocked"
    DEFERRED = "deferred"
    SENT = "sent"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    PAUSED = "paused"
    NOTIFIED = "notified"  # a notice the user was sent (cap reached, campaign finished, drafts waiting)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    result: AuditResult
    account_id: int | None = None
    lead_id: int | None = None
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    reason: str = ""
    legal_basis: LegalBasis | None = None
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class InboundEvent:
    account_id: int
    folder: str
    uidvalidity: int
    uid: int
    kind: InboundKind
    verdict: Verdict
    created_at: datetime
    message_id: str | None = None
    evidence_id: int | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class MailboxState:
    account_id: int
    folder: str
    uidvalidity: int
    last_uid: int


# --- claiming the next send (the store runs `decide` inside one write transaction) ----------------------


@dataclass(frozen=True, slots=True)
class SendCandidate:
    message: OutboxMessage
    lead: Lead
    lead_status: LeadStatus
    step: Step | None  # None if the campaign no longer has that step
    thread_message_ids: tuple[str, ...] = ()  # Message-IDs of the lead's earlier sent steps, oldest first


@dataclass(frozen=True, slots=True)
class SendPick:
    """The candidate to send now, with its final Message-ID and rendered MIME bytes."""

    outbox_id: int
    message_id: str
    mime: bytes


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    """What `decide(snapshot, candidates)` returns; every part is applied in the same transaction."""

    pick: SendPick | None = None
    wait_until: datetime | None = None  # when nothing is picked: earliest time worth asking again
    wait_reason: DeferReason | None = None
    blocked: tuple[tuple[int, Blocked], ...] = ()  # (outbox id, decision) for candidates never to go
    deferred: tuple[tuple[int, Deferred], ...] = ()  # (outbox id, decision) for candidates to retry later
    audit: tuple[AuditEntry, ...] = ()
    # (outbox id, deferral) whose audit row is in `audit`: remembered on the message so that the same
    # deferral is not audited again on the next wake
    audited_deferrals: tuple[tuple[int, Deferred], ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """A message now in state `sending`, committed with its Message-ID before any SMTP call."""

    message: OutboxMessage
    mime: bytes
    snapshot: PacingSnapshot


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing was claimed."""

    wait_until: datetime | None
    reason: DeferReason | None
    candidates: int


# --- mailbox (reading the user's IMAP folders: INBOX, Junk, Sent) ----------------------------------------


class FolderRole(StrEnum):
    INBOX = "inbox"
    JUNK = "junk"
    SENT = "sent"


@dataclass(frozen=True, slots=True)
class MailboxFolders:
    """Server names (as sent on the wire, modified UTF-7) of the folders Cadence reads; None if absent."""

    inbox: str = "INBOX"
    junk: str | None = None
    sent: str | None = None

    def watched(self) -> tuple[tuple[FolderRole, str], ...]:
        pairs = ((FolderRole.INBOX, self.inbox), (FolderRole.JUNK, self.junk), (FolderRole.SENT, self.sent))
        return tuple((role, name) for role, name in pairs if name is not None)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What EXAMINE reports about a folder."""

    name: str
    uidvalidity: int
    uidnext: int | None = None
    exists: int | None = None


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class InboundItem:
    """One message read from a watched folder, classified; what the store records (idempotent by
    account, folder, uidvalidity and uid, and by message_id where there is one)."""

    folder: str
    role: FolderRole
    uid: int
    raw: bytes = field(repr=False)
    message_id: str | None
    verdict: Verdict

    @property
    def size(self) -> int:
        return len(self.raw)


# --- inbound effects (services.inbox_effects plans them, the store applies a batch in one transaction) -----


class InboundAction(StrEnum):
    NONE = "none"  # recorded only (e.g. a delayed-delivery warning, an unclassified message)
    SUPPRESS = "suppress"  # hard bounce, complaint, unsubscribe, not interested: suppress and stop
    SOFT_BOUNCE = "soft_bounce"  # counted; the limit within the window suppresses
    AUTO_REPLY = "auto_reply"  # remember the return date: the lead's next message waits until then
    STOP = "stop"  # a person answered: the lead's follow-ups stop
    SENT_COPY = "sent_copy"  # found in Sent: settles an in-doubt send by Message-ID, else a manual send


@dataclass(frozen=True, slots=True)
class InboundEffect:
    """What one inbox item does. Leads are matched by `references` (our Message-IDs: original, In-Reply-To,
    References) first, then by `addresses`."""

    item: InboundItem
    action: InboundAction
    addresses: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    lead_status: LeadStatus | None = None  # for SUPPRESS / STOP
    suppression: SuppressionReason | None = None  # for SUPPRESS
    hard_bounce: bool = False  # counts in the bounce rate (ledger hard_bounce row)
    resume_at: datetime | None = None  # for AUTO_REPLY
    soft_bounce_limit: int = 3
    soft_bounce_window_days: float = 7.0
    subject: str = ""
    sent_at: datetime | None = None  # for SENT_COPY (the Date header, else now)


@dataclass(frozen=True, slots=True)
class InboundBatchOutcome:
    applied: int = 0  # items not seen before
    suppressed: tuple[str, ...] = ()
    stopped_leads: tuple[int, ...] = ()
    cancelled_messages: tuple[int, ...] = ()
    settled: tuple[str, ...] = ()  # Message-IDs of in-doubt sends found in Sent
    manual_sends: int = 0


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    """What `erase_person` removed or anonymised (GDPR erasure: only a salted hash of the address stays)."""

    leads_removed: int = 0
    messages_removed: int = 0
    ledger_rows_anonymised: int = 0
    audit_rows_anonymised: int = 0
    inbound_events_removed: int = 0
