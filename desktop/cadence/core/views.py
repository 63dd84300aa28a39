"""What the window displays: frozen, read-only values returned by the runtime (core.ports.RuntimeApi).

Views are shaped for display, not for storage: counters are already summed, times already decided
(timezone-aware UTC; the window converts for display), flags already computed with the runtime's clock.
Events are small frozen dataclasses too; they tell the window *what* changed, and the window re-reads the
matching view when it next redraws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from cadence.core.model import DeferReason, Guardrails, HoldReason, Step, SuppressionReason
from cadence.core.oauth import AuthMethod, OAuthProvider

# --- campaigns ----------------------------------------------------------------------------------------


class CampaignStatus(StrEnum):
    DRAFT = "draft"  # created, never started
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    id: int
    name: str
    status: CampaignStatus
    account_email: str
    leads: int
    sent: int
    replied: int
    bounced: int
    unsubscribed: int
    held: int  # drafts waiting in the approval queue
    created_at: datetime
    finish_estimate: datetime | None = None  # None: nothing left to send, or not running
    steps: tuple[Step, ...] = ()
    paused_reason: str | None = None
    # why a running campaign shows no finish date: "estimating…", "account paused (…)" ("" otherwise)
    finish_note: str = ""


@dataclass(frozen=True, slots=True)
class NewCampaign:
    """Everything the new-campaign dialog collects; the runtime re-validates all of it."""

    name: str
    account_id: int
    steps: tuple[Step, ...]
    csv_bytes: bytes
    mapping: Mapping[str, str]  # CSV column -> lead field ("email", "first_name", ... or "fields.<name>")
    start_now: bool = False


LEAD_FIELDS: tuple[str, ...] = ("email", "first_name", "last_name", "company", "timezone", "consent")
"""Lead fields a CSV column can map to; any other column becomes a free merge field of the same name."""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    line: int  # 1-based line in the file, header = 1
    reason: str
    raw: str = ""


@dataclass(frozen=True, slots=True)
class ImportPreview:
    columns: tuple[str, ...]
    mapping: Mapping[str, str]  # as guessed, or as given by the caller
    rows: tuple[Mapping[str, str], ...]  # the first accepted rows, keyed by lead field, for the preview table
    accepted: int
    skipped: tuple[SkippedRow, ...]
    warnings: tuple[str, ...] = ()  # e.g. "no column maps to email", "312 leads at 25/day: about 13 days"


@dataclass(frozen=True, slots=True)
class RenderedPreview:
    subject: str
    body: str
    missing_fields: tuple[str, ...] = ()  # merge fields the lead has no value for (fallback used or empty)
    warnings: tuple[str, ...] = ()  # risk warnings: links, attachments, spam-like wording, missing opt-out


# --- approval queue -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingDraft:
    id: int
    campaign_id: int
    campaign_name: str
    lead_name: str
    recipient: str
    subject: str
    body: str  # rendered exactly as it will be sent (text part)
    hold_reasons: tuple[HoldReason, ...]
    waiting_since: datetime
    step_index: int = 1
    overdue: bool = False  # waiting longer than 24 h


@dataclass(frozen=True, slots=True)
class DraftSelection:
    """The approval queue's "select all": every draft waiting for approval that matches, not only the rows
    loaded in the window. `through_id` keeps drafts that arrived after the user selected out of it."""

    through_id: int | None = None  # only drafts with an id up to this one (None: every waiting draft)
    campaign_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActionFailure:
    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    done: int
    failed: tuple[ActionFailure, ...] = ()


# --- suppression ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    value: str  # an address, a domain ("@example.com" style is shown as given), or "erased:<hash prefix>"
    reason: SuppressionReason
    added_at: datetime
    is_domain: bool = False
    detail: str = ""  # e.g. the DSN status, or who added it by hand
    evidence_id: int | None = None  # the raw bounce / reply / SMTP transcript it was added on, if kept


# --- deliverability -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateSample:
    events: int
    sample: int

    @property
    def rate(self) -> float | None:
        return self.events / self.sample if self.sample else None


@dataclass(frozen=True, slots=True)
class CapUsage:
    label: str  # "Today", "This hour", "gmail.com"
    used: int
    limit: int
    detail: str = ""  # why the limit is what it is: "warm-up day 6", "provider: 500/day"


@dataclass(frozen=True, slots=True)
class WarmupProgress:
    enabled: bool
    day: int
    days_total: int
    today_cap: int
    target_cap: int


class PauseScope(StrEnum):
    ACCOUNT = "account"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class PauseState:
    reason: str
    since: datetime
    scope: PauseScope = PauseScope.ACCOUNT
    account_id: int | None = None
    automatic: bool = False  # set by the breaker / a provider block, not by the user
    cause_persists: bool = False  # e.g. the 24 h bounce rate is still above the breaker
    cause_detail: str = ""
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeferredMessage:
    draft_id: int
    recipient: str
    subject: str
    reason: DeferReason
    next_attempt: datetime
    detail: str = ""  # e.g. "451 4.7.500 server busy"
    attempts: int = 1


IN_DOUBT_WHY = (
    "The connection dropped after the message was handed over, so the server may or may not have taken "
    "it. Cadence never sends it again by itself."
)


@dataclass(frozen=True, slots=True)
class InDoubtView:
    """A message that may or may not have gone out; the user settles it (it arrived / send it again)."""

    id: int
    recipient: str
    subject: str
    message_id: str  # the RFC 5322 Message-ID: a resend keeps it, so a copy the server did take is dropped
    since: datetime
    account_email: str
    why: str = IN_DOUBT_WHY


@dataclass(frozen=True, slots=True)
class DailyCounts:
    day: date
    sent: int
    bounced: int
    replied: int
    unsubscribed: int


class CheckState(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str  # "SPF", "DKIM", "DMARC", "MX", "Unsubscribe link"
    state: CheckState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeliverabilityView:
    bounce_24h: RateSample
    bounce_7d: RateSample
    breaker_rate: float  # 0.05
    breaker_min_sample: int
    caps: tuple[CapUsage, ...]  # the first is the day, the second the hour
    domain_caps: tuple[CapUsage, ...]
    warmup: WarmupProgress
    pause: PauseState | None
    deferred: tuple[DeferredMessage, ...]
    daily: tuple[DailyCounts, ...]  # oldest first
    health: tuple[HealthCheck, ...]
    account_email: str = ""


# --- status ----------------------------------------------------------------------------------------------


class SendingState(StrEnum):
    SENDING = "sending"
    IDLE = "idle"  # nothing due
    PAUSED = "paused"
    OUTSIDE_HOURS = "outside_hours"
    CAP_REACHED = "cap_reached"
    NO_ACCOUNT = "no_account"


@dataclass(frozen=True, slots=True)
class StatusView:
    state: SendingState
    sent_today: int
    cap_today: int  # the effective cap (warm-up, provider, manual buffer applied)
    bounce_24h: RateSample
    pending_approval: int
    next_send_at: datetime | None = None
    pause_reason: str | None = None
    detail: str = ""  # one line for the tooltip: "Warm-up day 6 of 14"
    breaker_rate: float = 0.05  # the account's bounce breaker, for colouring the rate


# --- activity --------------------------------------------------------------------------------------------


class ActivityKind(StrEnum):
    AUDIT = "audit"  # a decision or user action (approved, rejected, blocked, suppressed, paused)
    SMTP = "smtp"
    IMAP = "imap"
    ERROR = "error"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    id: int
    at: datetime
    kind: ActivityKind
    summary: str
    severity: Severity = Severity.INFO
    account_email: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    kinds: frozenset[ActivityKind] = frozenset(ActivityKind)
    text: str = ""  # case-insensitive, matched against summary, detail and account
    min_severity: Severity = Severity.INFO


# --- accounts --------------------------------------------------------------------------------------------


class TlsMode(StrEnum):
    STARTTLS = "starttls"  # port 587
    IMPLICIT = "implicit"  # port 465 / 993


@dataclass(frozen=True, slots=True)
class AccountView:
    id: int
    email: str
    display_name: str
    paused_reason: str | None = None
    has_password: bool = False


@dataclass(frozen=True, slots=True)
class AccountSettings:
    email: str
    display_name: str
    smtp_host: str
    smtp_port: int = 587
    smtp_tls: TlsMode = TlsMode.STARTTLS
    imap_host: str = ""
    imap_port: int = 993
    username: str = ""  # empty: the email address
    guardrails: Guardrails = field(default_factory=Guardrails)
    account_id: int | None = None  # None: a new account
    has_password: bool = False  # the password itself never leaves the keyring through a view
    provider_key: str | None = None  # from the proposal: provider limits, advice and OAuth
    auth_method: AuthMethod = AuthMethod.PASSWORD
    ca_file: str | None = None  # extra CA certificate for a self-hosted server
    has_oauth_sign_in: bool = False  # a refresh token is in the keyring (the token itself never is here)


@dataclass(frozen=True, slots=True)
class ServerChoice:
    host: str
    port: int
    tls: TlsMode


@dataclass(frozen=True, slots=True)
class AccountProposal:
    """Server settings proposed for an address; every field stays editable in the dialog."""

    email: str  # normalised
    provider_name: str  # "Gmail", "Microsoft 365", "Your mail server"
    provider_key: str | None
    smtp: ServerChoice
    imap: ServerChoice
    smtp_alternatives: tuple[ServerChoice, ...] = ()
    guessed: bool = False  # host names made up from the domain: the user must check them
    oauth_provider: OAuthProvider | None = None  # "Sign in with …" applies
    password_accepted: bool = True  # False: only OAuth works (Outlook.com)
    needs_app_password: bool = False
    daily_limit: int | None = None  # the provider's own limit, for the caps' help text
    limits: str = ""  # "Gmail allows about 500 messages per day"
    note: str = ""  # the one line shown under the address
    notes: tuple[str, ...] = ()  # the provider's other advice, in order

    @property
    def oauth_available(self) -> bool:
        return self.oauth_provider is not None


class StepState(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ConnectionStepView:
    """One step of "Test connection" as it finished (they arrive one by one)."""

    server: str  # "SMTP" / "IMAP"
    step: str  # "dns", "tcp", "tls", "certificate", "login", "sent_folder"
    title: str  # "SMTP: Find the server (DNS)"
    state: StepState
    message: str  # what was found, or the advice (what is wrong and what to do)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state is StepState.OK


@dataclass(frozen=True, slots=True)
class ConnectionTestView:
    steps: tuple[ConnectionStepView, ...]

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failures(self) -> tuple[ConnectionStepView, ...]:
        return tuple(step for step in self.steps if step.state is StepState.FAILED)


# --- events ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueChanged:
    pending: int


@dataclass(frozen=True, slots=True)
class CampaignsChanged:
    campaign_id: int | None = None  # None: more than one


@dataclass(frozen=True, slots=True)
class SuppressionsChanged:
    pass


@dataclass(frozen=True, slots=True)
class DeliverabilityChanged:
    pass


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: StatusView


@dataclass(frozen=True, slots=True)
class ActivityAdded:
    entry: ActivityEntry


class NoticeKind(StrEnum):
    BREAKER_PAUSE = "breaker_pause"
    PROVIDER_BLOCK = "provider_block"
    CAP_REACHED = "cap_reached"
    AUTH_FAILURE = "auth_failure"
    CAMPAIGN_FINISHED = "campaign_finished"
    DRAFTS_WAITING = "drafts_waiting"  # drafts held for approval more than 24 h


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should hear about even with the window hidden (tray notification)."""

    kind: NoticeKind
    title: str
    message: str
    severity: Severity = Severity.WARNING


RuntimeEvent = (
    QueueChanged
    | CampaignsChanged
    | SuppressionsChanged
    | DeliverabilityChanged
    | StatusChanged
    | ActivityAdded
    | Notice
)
