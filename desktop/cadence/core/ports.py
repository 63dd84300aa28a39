"""Protocols the services depend on; adapters implement them, tests may pass real or clock fakes.

Each area keeps its protocols in its own section below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from cadence.core import domain_health, model, views
from cadence.core.model import SendResult
from cadence.core.oauth import OAuthProvider


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FastClock(Clock, Protocol):
    """A clock running faster than real time (the demo sandbox): a wait measured on it lasts fewer real
    seconds. Services that sleep until a moment of the clock convert with `real_seconds` below."""

    def real_seconds(self, clock_seconds: float) -> float: ...


def real_seconds(clock: Clock, clock_seconds: float) -> float:
    """How long to really sleep for `clock_seconds` of `clock` (the same for an ordinary clock)."""
    scale = getattr(clock, "real_seconds", None)
    return float(scale(clock_seconds)) if callable(scale) else clock_seconds


# --- sending ------------------------------------------------------------------------------------------


class Mailer(Protocol):
    """One account's submission connection. Never raises library exceptions: every result is a SendResult."""

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult: ...

    async def close(self) -> None: ...


class LoginVerifier(Protocol):
    """The connection test behind the account settings' "Test" button (SmtpMailer implements it)."""

    async def verify_login(self) -> model.ConnectionCheck: ...


# --- secrets ------------------------------------------------------------------------------------------


class SecretStore(Protocol):
    """The OS keyring, called off the event loop. Secrets never touch disk anywhere else."""

    async def get(self, account: str) -> str | None: ...

    async def set(self, account: str, secret: str) -> None: ...

    async def delete(self, account: str) -> None: ...


class SecretKind(StrEnum):
    """What a stored secret is; each kind has its own keyring entry for the account."""

    PASSWORD = "password"  # SMTP (and IMAP unless IMAP_PASSWORD is set) password or app password
    IMAP_PASSWORD = "imap_password"  # only when the IMAP login differs from the SMTP one
    OAUTH_REFRESH_TOKEN = "oauth_refresh_token"
    OAUTH_CLIENT_SECRET = "oauth_client_secret"  # a user-registered OAuth app's secret


class AccountSecretStore(SecretStore, Protocol):
    """A SecretStore that keeps several kinds of secret per account (`kind` defaults to PASSWORD)."""

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None: ...

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None: ...

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None: ...

    async def delete_account(self, account: str) -> None:
        """Remove every secret of every kind stored for the account."""
        ...


class SecretStoreError(Exception):
    """The keyring could not do what was asked; `str(error)` is a sentence for the user."""


class SecretStoreUnavailable(SecretStoreError):
    """No secure keyring backend (none running, locked for good, or only an insecure one installed)."""


class SecretStoreTimeout(SecretStoreError, TimeoutError):
    """The keyring did not answer in time (often: an unlock prompt nobody answered)."""


# --- DNS (adapters/dns.py DnsResolver implements it) ------------------------------------------------------


class DomainChecker(Protocol):
    """DNS questions about domains. Never raises for DNS trouble except where stated."""

    async def check_recipient_domain(self, domain: str) -> domain_health.DomainCheck:
        """Deliverable / undeliverable / unknown (never block on unknown), cached for days."""
        ...

    async def mx_hosts(self, domain: str) -> tuple[str, ...]:
        """MX hosts in preference order; raises domain_health.DnsLookupError when DNS does not answer."""
        ...

    async def sending_domain_health(
        self, email_or_domain: str, *, provider_key: str | None = None, extra_selectors: Sequence[str] = ()
    ) -> domain_health.HealthReport: ...


# --- storage ------------------------------------------------------------------------------------------


class StorageErrorKind(StrEnum):
    FULL = "full"
    READ_ONLY = "read_only"
    LOCKED = "locked"
    CORRUPT = "corrupt"
    UNAVAILABLE = "unavailable"  # cannot open, I/O error, missing directory
    TOO_NEW = "too_new"  # the database was written by a newer Cadence


class StorageError(Exception):
    """The local database cannot do what was asked; `str(error)` is a sentence for the user."""

    def __init__(self, message: str, *, kind: StorageErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """One campaign's tallies, counted by the database (Store.count_by_campaign)."""

    messages: Mapping[model.MessageState, int]
    leads: Mapping[model.LeadStatus, int]
    latest_due: Mapping[model.MessageState, datetime]  # the latest next_attempt_at of each state's messages


@dataclass(frozen=True, slots=True)
class OpenStep:
    """A lead's unsent message in a campaign, as the finish estimate needs it (Store.list_open_steps)."""

    lead: model.Lead
    lead_status: model.LeadStatus
    step_index: int
    state: model.MessageState
    next_attempt_at: datetime | None
    resume_at: datetime | None = None  # the lead is paused until then (an auto-reply's return date)


@dataclass(frozen=True, slots=True)
class SentCopyPending:
    """A sent message with no recorded copy in the account's Sent folder (Store.list_missing_sent_copies)."""

    outbox_id: int
    message_id: str
    sent_at: datetime


class RecordNotFound(LookupError):
    """An id or Message-ID the caller named does not exist."""


class DuplicateRecord(ValueError):
    """A row with the same unique key already exists (e.g. an account with that address)."""


# The store as the services see it (adapters/db/store.py SqliteStore implements it). Every method is
# synchronous and short; services call them on their single database worker thread (services.dbworker),
# never on the event loop.

Decide = Callable[[model.PacingSnapshot, tuple[model.SendCandidate, ...]], model.ClaimDecision]
FollowUpMaker = Callable[
    [model.Campaign, model.CampaignLead, model.OutboxMessage, datetime], model.NewDraft | None
]


class Store(Protocol):
    # accounts
    def create_account(self, settings: model.AccountSettings, *, now: datetime) -> model.Account: ...
    def get_account(self, account_id: int) -> model.Account: ...
    def list_accounts(self) -> tuple[model.Account, ...]: ...
    def update_account(self, account_id: int, *, settings: model.AccountSettings) -> model.Account: ...
    def set_account_pause(
        self, account_id: int, *, reason: str | None, until: datetime | None = None
    ) -> model.Account: ...
    def set_account_backoff(
        self,
        account_id: int,
        *,
        until: datetime | None,
        pace_factor: float | None = None,
        consecutive_throttles: int | None = None,
    ) -> model.Account: ...
    def set_warmup_started(self, account_id: int, *, at: datetime | None) -> model.Account: ...
    def delete_account(self, account_id: int) -> model.Account: ...

    # campaigns and leads
    def create_campaign(
        self,
        *,
        name: str,
        account_id: int,
        steps: Sequence[model.Step],
        now: datetime,
        status: model.CampaignStatus = model.CampaignStatus.ACTIVE,
    ) -> model.Campaign: ...
    def get_campaign(self, campaign_id: int) -> model.Campaign: ...
    def list_campaigns(self, *, account_id: int | None = None) -> tuple[model.Campaign, ...]: ...
    def set_campaign_status(self, campaign_id: int, *, status: model.CampaignStatus) -> model.Campaign: ...
    def add_leads(self, campaign_id: int, *, leads: Iterable[model.Lead], now: datetime) -> int: ...
    def get_lead(self, lead_id: int) -> model.CampaignLead: ...
    def get_leads(self, lead_ids: Iterable[int]) -> dict[int, model.CampaignLead]: ...
    def list_leads(
        self,
        campaign_id: int,
        *,
        statuses: Iterable[model.LeadStatus] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[model.CampaignLead, ...]: ...
    def count_leads(self, campaign_id: int) -> dict[model.LeadStatus, int]: ...
    def lead_ids_by_email(
        self, campaign_id: int, *, emails: Iterable[str] | None = None
    ) -> dict[str, int]: ...
    def count_by_campaign(self) -> dict[int, CampaignCounts]: ...
    def list_open_steps(
        self, campaign_id: int, *, states: Iterable[model.MessageState]
    ) -> tuple[OpenStep, ...]:
        """The campaign's messages in `states` with their leads, oldest first (created_at, id)."""
        ...

    def stop_address(
        self, address: str, *, status: model.LeadStatus, now: datetime, reason: str
    ) -> tuple[int, ...]: ...
    def stop_company_leads(
        self, account_id: int, *, domain: str, references: Sequence[str], now: datetime, reason: str
    ) -> tuple[int, ...]: ...

    # outbox
    def create_drafts(self, drafts: Sequence[model.NewDraft], *, now: datetime) -> tuple[int | None, ...]: ...
    def create_drafts_bulk(self, drafts: Sequence[model.NewDraft], *, now: datetime) -> int: ...
    def get_message(self, outbox_id: int) -> model.OutboxMessage: ...
    def get_mime(self, message_id: str) -> bytes | None: ...
    def list_messages(
        self,
        *,
        states: Iterable[model.MessageState] | None = None,
        account_id: int | None = None,
        campaign_id: int | None = None,
        lead_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[model.OutboxMessage, ...]: ...
    def count_messages(self, *, account_id: int | None = None) -> dict[model.MessageState, int]: ...
    def edit_draft(
        self, outbox_id: int, *, subject: str, body: str, now: datetime
    ) -> model.OutboxMessage: ...
    def approve(self, outbox_ids: Iterable[int], *, now: datetime) -> model.BulkOutcome: ...
    def reject(
        self, outbox_ids: Iterable[int], *, now: datetime, reason: str | None = None
    ) -> model.BulkOutcome: ...

    # sending
    def snapshot(self, account_id: int, *, now: datetime) -> model.PacingSnapshot: ...
    def claim_next_send(
        self, *, account_id: int, now: datetime, decide: Decide, max_candidates: int = 50
    ) -> model.Claim | model.Idle: ...
    def next_attempt_after(self, account_id: int, *, now: datetime) -> datetime | None:
        """The earliest time a claimable message of an active campaign becomes due, after `now`."""
        ...

    def expire_stale(
        self, account_id: int, *, now: datetime, max_age: timedelta
    ) -> tuple[model.OutboxMessage, ...]:
        """Move unsent messages queued longer than `max_age` (counted from when they became due) to
        `expired`; returns them as they were before."""
        ...

    def record_delivered_with_follow_up(
        self, message_id: str, *, at: datetime, follow_up: FollowUpMaker, transcript: str | None = None
    ) -> tuple[model.OutboxMessage, int | None]:
        """record_delivered and the next step's draft (if `follow_up` gives one) in one transaction."""
        ...

    def record_deferred(
        self,
        message_id: str,
        *,
        at: datetime,
        next_attempt_at: datetime,
        reason: model.DeferReason,
        error: str | None = None,
        transcript: str | None = None,
    ) -> model.OutboxMessage: ...
    def record_failed(
        self,
        message_id: str,
        *,
        at: datetime,
        error: str,
        transcript: str | None = None,
        lead_status: model.LeadStatus | None = None,
    ) -> model.OutboxMessage: ...
    def requeue_in_doubt(self, message_id: str, *, at: datetime) -> model.OutboxMessage: ...
    def list_in_doubt(self, account_id: int) -> tuple[model.OutboxMessage, ...]: ...
    def list_missing_sent_copies(
        self, account_id: int, *, since: datetime, limit: int
    ) -> tuple[SentCopyPending, ...]:
        """Messages sent since `since` (newest first, at most `limit`) with their MIME kept and no copy in the
        account's Sent folder recorded."""
        ...

    def has_sent_copy(self, outbox_id: int) -> bool: ...
    def record_sent_copy(self, message_id: str, *, at: datetime) -> bool:
        """The copy of this sent message is in the account's Sent folder; whether that is news."""
        ...

    # ledger, suppression, audit
    def add_ledger_entry(self, entry: model.LedgerEntry) -> bool: ...
    def list_ledger(
        self,
        *,
        account_id: int,
        since: datetime,
        until: datetime | None = None,
        kinds: Iterable[model.LedgerKind] | None = None,
    ) -> tuple[model.LedgerEntry, ...]: ...
    def add_suppression(
        self,
        value: str,
        *,
        reason: model.SuppressionReason,
        now: datetime,
        source: str = "",
        evidence: bytes | None = None,
    ) -> model.Suppression: ...
    def remove_suppression(self, value: str) -> bool: ...
    def find_suppression(self, address: str) -> model.Suppression | None: ...
    def get_evidence(self, evidence_id: int) -> bytes:
        """The raw bounce, reply or SMTP transcript kept for a suppression; RecordNotFound once erased."""
        ...

    def erase_person(self, address: str, *, now: datetime) -> model.ErasureOutcome:
        """GDPR erasure in one transaction: leads and messages deleted, ledger/audit rows anonymised, only a
        salted hash kept on the suppression list. ValueError while a message to them is being sent."""
        ...

    def list_suppressions(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> tuple[model.Suppression, ...]: ...
    def append_audit(self, entries: Sequence[model.AuditEntry]) -> None: ...
    def query_audit(
        self,
        *,
        account_id: int | None = None,
        lead_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        results: Iterable[model.AuditResult] | None = None,
        recipient: str | None = None,
        limit: int | None = 1000,
    ) -> tuple[model.AuditEntry, ...]: ...

    # inbound
    def count_inbound_by_day(
        self, account_id: int, *, first_day: date, last_day: date, timezone: str
    ) -> dict[date, dict[model.InboundKind, int]]:
        """Inbound events (replies, bounces, unsubscribes, …) per local day of `timezone`, by kind, from
        `first_day` through `last_day`; days without events are absent. One grouped query."""
        ...

    def get_mailbox_state(self, account_id: int, *, folder: str) -> model.MailboxState | None: ...
    def apply_inbound_batch(
        self,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int,
        last_uid: int,
        effects: Sequence[model.InboundEffect],
        now: datetime,
        follow_up: FollowUpMaker,
    ) -> model.InboundBatchOutcome:
        """Apply the effects of new items and move the folder's last UID, in one transaction (items seen
        before are skipped, so a re-run after a crash changes nothing)."""
        ...


# --- runtime (what the window calls) --------------------------------------------------------------------
# The one API the Qt window uses. Every method is a coroutine run on the GUI's (qasync) event loop, so an
# implementation keeps slow work (SQLite, DNS, CSV parsing of big files) off the loop in its own worker.
# Results are frozen views from core.views; ids are the store's integer ids. Problems the user can fix
# (bad address, unknown id, a campaign that cannot start) raise UserFacingError with a one-line message;
# anything else is a bug and reaches the window's crash handler.


class UserFacingError(Exception):
    """A problem the user can understand and act on; shown in the window's banner, never as a crash."""


RuntimeListener = Callable[[views.RuntimeEvent], None]


class RuntimeApi(Protocol):
    # events: the listener may be called from any thread; the Qt bridge re-emits on the GUI thread.
    def subscribe(self, listener: RuntimeListener) -> Callable[[], None]:
        """Register a listener; returns the function that unregisters it."""
        ...

    async def aclose(self) -> None:
        """Stop services (scheduler, watcher), await their tasks, close the store. Idempotent."""
        ...

    # status and deliverability
    async def status(self) -> views.StatusView: ...

    async def deliverability(self, account_id: int | None = None) -> views.DeliverabilityView: ...

    async def pause(self, account_id: int | None, *, reason: str) -> None:
        """Pause one account, or every account when account_id is None."""
        ...

    async def resume(self, account_id: int | None) -> None: ...

    # campaigns
    async def list_campaigns(self) -> list[views.CampaignSummary]: ...

    async def import_leads_preview(
        self, csv_bytes: bytes, *, mapping: Mapping[str, str] | None = None
    ) -> views.ImportPreview:
        """Parse a CSV without storing anything; mapping None means guess from the header."""
        ...

    async def preview(self, step: model.Step, lead: model.Lead) -> views.RenderedPreview: ...

    async def create_campaign(self, spec: views.NewCampaign) -> int: ...

    async def start_campaign(self, campaign_id: int) -> None: ...

    async def pause_campaign(self, campaign_id: int) -> None: ...

    async def send_test(self, step: model.Step, lead: model.Lead, *, account_id: int, to: str) -> None:
        """Send one rendered step to the user's own address now (outside caps, marked as a test)."""
        ...

    # approval queue (oldest first)
    async def count_pending(self) -> int: ...

    async def list_pending_drafts(self, offset: int, limit: int) -> list[views.PendingDraft]: ...

    async def approve(self, draft_ids: Sequence[int]) -> views.BulkResult: ...

    async def reject(self, draft_ids: Sequence[int]) -> views.BulkResult: ...

    async def edit_and_approve(self, draft_id: int, *, subject: str, body: str) -> None: ...

    # suppression (newest first)
    async def list_suppressions(
        self, query: str, offset: int, limit: int
    ) -> list[views.SuppressionEntry]: ...

    async def count_suppressions(self, query: str) -> int: ...

    async def add_suppression(self, value: str, *, reason: model.SuppressionReason) -> None:
        """value: an address or a domain ("example.com" / "@example.com")."""
        ...

    async def import_suppressions(
        self, values: Sequence[str], *, reason: model.SuppressionReason
    ) -> views.BulkResult: ...

    async def remove_suppression(self, value: str) -> None: ...

    async def forget_person(self, address: str) -> None:
        """GDPR erasure: delete the lead and its messages, keep only a salted hash as a suppression."""
        ...

    # activity (newest first)
    async def list_activity(
        self, activity_filter: views.ActivityFilter, offset: int, limit: int
    ) -> list[views.ActivityEntry]: ...

    async def count_activity(self, activity_filter: views.ActivityFilter) -> int: ...

    # accounts
    async def list_accounts(self) -> list[views.AccountView]: ...

    # messages in doubt (connection lost after the data was handed over)
    async def list_in_doubt(self) -> list[views.InDoubtView]:
        """Messages that may or may not have gone out, oldest first; never sent again without the user."""
        ...

    async def settle_in_doubt(self, message_id: int, *, sent: bool) -> None:
        """`sent=True`: it arrived, count it as sent. `sent=False`: send it again with the same Message-ID.
        UserFacingError when it is no longer in doubt or is being sent right now."""
        ...

    async def get_account_settings(self, account_id: int) -> views.AccountSettings: ...

    async def save_account_settings(
        self, settings: views.AccountSettings, *, password: str | None = None
    ) -> int:
        """Create (account_id None) or update an account; password None keeps the stored one."""
        ...

    # connecting a mailbox (services/accounts.py AccountSetupService implements these for the real runtime)
    async def propose_account(self, email: str) -> views.AccountProposal:
        """Server settings for an address (known provider, MX lookup, else a marked guess). UserFacingError
        when the text is not an address."""
        ...

    async def test_connection(
        self,
        settings: views.AccountSettings,
        *,
        password: str | None = None,
        on_step: Callable[[views.ConnectionStepView], None] | None = None,
    ) -> views.ConnectionTestView:
        """DNS, TCP, TLS, certificate, login (and the Sent folder for IMAP), each step passed to `on_step`
        as soon as it is known. password None: the stored password (or the OAuth sign-in) is used. A failing
        server is a failed step, never an exception; UserFacingError only when the test cannot start (keyring
        unreadable, OAuth account not signed in). Cancelling the task stops the test."""
        ...

    async def sign_in_oauth(self, email: str, provider: OAuthProvider) -> None:
        """Run the provider's browser sign-in for `email`; the refresh token goes to the keyring only.
        UserFacingError when it does not complete (cancelled, wrong account, not configured)."""
        ...

    async def remove_account(self, account_id: int) -> None:
        """Delete the account and every secret the keyring holds for it."""
        ...

    async def domain_health(self, email: str) -> list[views.HealthCheck]:
        """SPF, DKIM and DMARC of the sending domain, each with what to fix."""
        ...


# --- mailbox (IMAP reading; adapters/imap.py implements Mailbox, the store implements InboxSink) ---------


class MailboxErrorKind(StrEnum):
    AUTH_FAILED = "auth_failed"
    IMAP_DISABLED = "imap_disabled"  # the provider has IMAP access switched off for this account
    TLS_UNTRUSTED = "tls_untrusted"  # certificate not trusted or not for this host
    TLS_FAILED = "tls_failed"  # no TLS spoken on that port, or the handshake failed
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    HOST_NOT_FOUND = "host_not_found"
    CONNECTION_LOST = "connection_lost"
    FOLDER_MISSING = "folder_missing"
    SERVER_ERROR = "server_error"  # an unexpected NO/BAD or unreadable answer
    BAD_INPUT = "bad_input"  # e.g. a line break inside a password or a Message-ID


# The user has to act (new password, enable IMAP, trust a certificate): retrying soon does not help.
MAILBOX_NEEDS_USER = frozenset(
    {MailboxErrorKind.AUTH_FAILED, MailboxErrorKind.IMAP_DISABLED, MailboxErrorKind.TLS_UNTRUSTED}
)


class MailboxError(Exception):
    """The mailbox could not do what was asked; `str(error)` is a sentence for the user."""

    def __init__(self, message: str, *, kind: MailboxErrorKind) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def needs_user(self) -> bool:
        return self.kind in MAILBOX_NEEDS_USER


class WakeSignal(Protocol):
    """Something a long wait can be cut short by (asyncio.Event fits)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> object: ...


class Mailbox(Protocol):
    """One logged-in IMAP connection, read-only except `append`. One command at a time. Every method
    raises only MailboxError; after one with kind TIMEOUT or CONNECTION_LOST the object is unusable."""

    @property
    def supports_idle(self) -> bool: ...

    async def folders(self) -> model.MailboxFolders: ...

    async def examine(self, folder: str) -> model.FolderStatus:
        """Open the folder read-only; later searches and fetches apply to it."""
        ...

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than last_uid in the examined folder, ascending."""
        ...

    async def uids_since(self, day: date) -> list[int]:
        """UIDs of messages that arrived on or after `day` (INTERNALDATE), ascending."""
        ...

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]: ...

    async def fetch(self, uids: Sequence[int], *, expected_bytes: int = 0) -> list[model.FetchedMessage]:
        """Full messages with BODY.PEEK[] (never marks them read); UIDs gone meanwhile are left out.
        `expected_bytes` (from `sizes`) lets the time limit grow with the transfer."""
        ...

    async def wait_for_change(self, *, max_wait_s: float, wake: WakeSignal) -> bool:
        """IDLE on the examined folder until new mail (True), `wake` is set or max_wait_s passes (False)."""
        ...

    async def find_message_id(self, folder: str, message_id: str) -> list[int]:
        """UIDs in `folder` whose Message-ID header matches (settles in-doubt sends against Sent)."""
        ...

    async def append(
        self, folder: str, raw: bytes, *, seen: bool = True, when: datetime | None = None
    ) -> int | None:
        """Store a copy (e.g. of a sent message in Sent); returns its UID when the server tells."""
        ...

    async def close(self) -> None: ...


MailboxConnector = Callable[[], Awaitable[Mailbox]]


class InboxSink(Protocol):
    """Where the inbox watcher puts what it read. Synchronous: the watcher calls it from a worker thread.

    `apply_batch` is one transaction: the items' effects and the folder's new (uidvalidity, last_uid)
    commit together, so a crash mid-batch re-runs the batch; applying an item twice must change nothing
    (key: account, folder, uidvalidity, uid; and message_id). `items` may be empty (only the state moves).
    """

    def mailbox_state(self, account_id: int, folder: str) -> model.MailboxState | None: ...

    def apply_batch(
        self,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int,
        items: Sequence[model.InboundItem],
        last_uid: int,
    ) -> None: ...


# --- large lead imports with progress and stop (services/lead_import.py) ---------------------------------


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """How far a campaign import is: `done` of `total` leads saved (total 0 while the file is read)."""

    done: int
    total: int
    stage: str


@runtime_checkable
class ProgressiveCampaignCreator(Protocol):
    """A runtime that can create a campaign chunk by chunk, reporting progress and honouring a stop
    request between chunks (the new-campaign dialog uses it when the runtime offers it)."""

    async def create_campaign_with_progress(
        self,
        spec: views.NewCampaign,
        *,
        on_progress: Callable[[ImportProgress], None],
        stop: StopFlag,
    ) -> int: ...


@runtime_checkable
class SuppressionEvidenceReader(Protocol):
    """A runtime that can show why an address was suppressed: the raw bounce, reply or SMTP transcript."""

    async def suppression_evidence(self, evidence_id: int) -> str:
        """The evidence as text; UserFacingError when it is no longer kept."""
        ...


@runtime_checkable
class BulkQueueActor(Protocol):
    """A runtime that approves or rejects every waiting draft matching a selection, in batches off the event
    loop, reporting (done, total) after each batch; the scheduler is woken once at the end. The queue tab's
    "select all" uses it when the runtime offers it."""

    async def act_on_pending(
        self,
        selection: views.DraftSelection,
        *,
        approve: bool,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> views.BulkResult: ...


class StopFlag(Protocol):
    """threading.Event's reading and setting side: set from the window, read between chunks."""

    def is_set(self) -> bool: ...
    def set(self) -> None: ...
