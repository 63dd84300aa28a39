"""Repositories over the SQLite file. Everything returned is a core value; rows never leave this module.

The send ledger is the only source of truth for counters: nothing is counted in memory, and every decision
reads a fresh snapshot inside the same BEGIN IMMEDIATE transaction that reserves the message.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cadence.adapters.db import codec
from cadence.adapters.db import tables as t
from cadence.adapters.db.engine import Database
from cadence.adapters.db.tables import to_db_time
from cadence.core.model import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    Account,
    AccountSettings,
    AuditEntry,
    AuditResult,
    Blocked,
    BulkOutcome,
    Campaign,
    CampaignLead,
    CampaignStatus,
    Claim,
    ClaimDecision,
    ConnectionSecurity,
    DeferReason,
    ErasureOutcome,
    Idle,
    InboundAction,
    InboundBatchOutcome,
    InboundEffect,
    InboundEvent,
    InboundKind,
    Lead,
    LeadStatus,
    LedgerEntry,
    LedgerKind,
    LegalBasis,
    MailboxState,
    MessageState,
    NewDraft,
    OutboxMessage,
    PacingSnapshot,
    SendCandidate,
    SentFolderKind,
    SentRecord,
    Step,
    Suppression,
    SuppressionReason,
    Verdict,
    check_transition,
)
from cadence.core.oauth import AuthMethod
from cadence.core.ports import CampaignCounts, Decide, OpenStep, RecordNotFound, SentCopyPending

SNAPSHOT_WINDOW = timedelta(hours=24)
LEAD_CHUNK = 5000
ID_CHUNK = 500
INITIAL_DRAFT_STATES = frozenset({MessageState.DRAFT, MessageState.PENDING_APPROVAL, MessageState.APPROVED})
CLAIMABLE_STATES = (MessageState.APPROVED, MessageState.QUEUED, MessageState.DEFERRED)
STOPPED_LEAD_STATUSES = frozenset(
    {
        LeadStatus.REPLIED,
        LeadStatus.BOUNCED,
        LeadStatus.UNSUBSCRIBED,
        LeadStatus.NOT_INTERESTED,
        LeadStatus.SUPPRESSED,
        LeadStatus.FINISHED,
    }
)

SENT_RECORD_SLACK = 1000
_SNAPSHOT_ACCOUNT_SQL = (
    "SELECT warmup_started_at, paused_reason, paused_until, backoff_until, pace_factor"
    " FROM accounts WHERE id = ?"
)
_IN_FLIGHT_SQL = (
    "SELECT m.state_changed_at, l.email, m.subject FROM messages AS m JOIN leads AS l ON l.id = m.lead_id"
    " WHERE m.account_id = ? AND m.state = ?"
)
_BOUNCE_TIMES_SQL = "SELECT at FROM ledger WHERE account_id = ? AND kind = ? AND at >= ?"
_RECENT_SEND_IDS_SQL = "SELECT id FROM ledger WHERE account_id = ? AND kind = ? AND at >= ?"
_SENDS_BY_ID_SQL = "SELECT id, at, recipient, subject, cold, manual FROM ledger WHERE id IN"
_RECENT_SENDS_SQL = (
    "SELECT id, at, recipient, subject, cold, manual FROM ledger"
    " WHERE account_id = ? AND kind = ? AND at >= ?"  # from the covering ix_ledger_recent
)
_INSERT_LEAD_SQL = (
    "INSERT INTO leads (campaign_id, email, first_name, last_name, company, timezone, consent, fields,"
    " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, email) DO NOTHING"
)

# create_drafts_bulk's rows: the lead's campaign, account and return date are read once per batch and the
# rules (lead in the draft's campaign, due no earlier than a later return date) applied in Python; a plain
# row insert costs a third of an INSERT … SELECT that joins them per row. A (lead, step) already there is
# skipped.
_INSERT_DRAFT_ROW_SQL = (
    "INSERT INTO messages (campaign_id, lead_id, step_index, account_id, state, subject, body, hold_reasons,"
    " next_attempt_at, attempts, created_at, updated_at, state_changed_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?10, ?10)"
    " ON CONFLICT (lead_id, step_index) DO NOTHING"
)
_CAMPAIGN_MESSAGE_COUNTS_SQL = (
    "SELECT campaign_id, state, count(*), max(next_attempt_at) FROM messages GROUP BY campaign_id, state"
)
_CAMPAIGN_LEAD_COUNTS_SQL = "SELECT campaign_id, status, count(*) FROM leads GROUP BY campaign_id, status"

T = TypeVar("T")
Row_ = Any  # SQLAlchemy 2.1 types rows by their column tuple; the converters read them by name


def _driver(conn: Connection) -> sqlite3.Connection:
    """The pysqlite connection under `conn`, inside the same transaction (for the few hot paths)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _from_db_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _to_db_time_or_none(value: datetime | None) -> str | None:
    return to_db_time(value) if value is not None else None


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def normalize_address(address: str) -> str:
    return address.strip().lower()


BULK_CACHE_KIB = 32 * 1024


@contextmanager
def _bulk_cache(cursor: sqlite3.Cursor) -> Iterator[None]:
    """A larger page cache for one bulk write: 100,000 rows touch more index pages than the default 2 MiB
    holds, and re-reading them costs about as much as the inserts. Set back afterwards (frees the pages)."""
    (previous,) = cursor.execute("PRAGMA cache_size").fetchone()
    cursor.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        cursor.execute(f"PRAGMA cache_size = {int(previous)}")


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def _domain_and_parents(domain: str) -> list[str]:
    """example.co.uk's suppression covers mail.example.co.uk; a bare top-level label never counts."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or [domain]


# --- row → value ---------------------------------------------------------------------------------------


def _account(row: Row_) -> Account:
    m = row._mapping
    settings = AccountSettings(
        email=m["email"],
        display_name=m["display_name"],
        smtp_host=m["smtp_host"],
        smtp_port=m["smtp_port"],
        smtp_security=ConnectionSecurity(m["smtp_security"]),
        imap_host=m["imap_host"],
        imap_port=m["imap_port"],
        imap_security=ConnectionSecurity(m["imap_security"]),
        ca_file=m["ca_file"],
        provider_key=m["provider_key"],
        guardrails=codec.guardrails_from_json(m["guardrails"]),
        sent_folder_kind=SentFolderKind(m["sent_folder_kind"]),
        auth_method=AuthMethod(m["auth_method"]),
    )
    return Account(
        id=m["id"],
        settings=settings,
        created_at=m["created_at"],
        warmup_started_at=m["warmup_started_at"],
        paused_reason=m["paused_reason"],
        paused_until=m["paused_until"],
        backoff_until=m["backoff_until"],
        pace_factor=m["pace_factor"],
        consecutive_throttles=m["consecutive_throttles"],
    )


def _settings_values(settings: AccountSettings) -> dict[str, Any]:
    return {
        "email": normalize_address(settings.email),
        "display_name": settings.display_name,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_security": settings.smtp_security.value,
        "imap_host": settings.imap_host,
        "imap_port": settings.imap_port,
        "imap_security": settings.imap_security.value,
        "ca_file": settings.ca_file,
        "provider_key": settings.provider_key,
        "guardrails": codec.guardrails_to_json(settings.guardrails),
        "sent_folder_kind": settings.sent_folder_kind.value,
        "auth_method": settings.auth_method.value,
    }


def _step(row: Row_) -> Step:
    m = row._mapping
    return Step(
        index=m["step_index"],
        subject=m["subject"],
        body=m["body"],
        delay_days=m["delay_days"],
        html_body=m["html_body"],
    )


_LEAD_COLUMNS = (
    t.leads.c.id,
    t.leads.c.campaign_id,
    t.leads.c.email,
    t.leads.c.first_name,
    t.leads.c.last_name,
    t.leads.c.company,
    t.leads.c.timezone,
    t.leads.c.consent,
    t.leads.c.fields,
    t.leads.c.status,
    t.leads.c.stopped_reason,
    t.leads.c.resume_at,
    t.leads.c.created_at,
)


def _lead(m: Any, *, prefix: str = "") -> Lead:
    return Lead(
        email=m[prefix + "email"],
        first_name=m[prefix + "first_name"],
        last_name=m[prefix + "last_name"],
        company=m[prefix + "company"],
        timezone=m[prefix + "timezone"],
        consent=m[prefix + "consent"],
        fields=codec.fields_from_json(m[prefix + "fields"]),
        id=m[prefix + "id"],
    )


def _campaign_lead(row: Row_) -> CampaignLead:
    m = row._mapping
    return CampaignLead(
        campaign_id=m["campaign_id"],
        lead=_lead(m),
        status=LeadStatus(m["status"]),
        created_at=m["created_at"],
        stopped_reason=m["stopped_reason"],
        resume_at=m["resume_at"],
    )


_MESSAGE_COLUMNS = (
    t.messages.c.id,
    t.messages.c.campaign_id,
    t.messages.c.lead_id,
    t.messages.c.step_index,
    t.messages.c.account_id,
    t.leads.c.email.label("recipient"),
    t.messages.c.state,
    t.messages.c.subject,
    t.messages.c.body,
    t.messages.c.created_at,
    t.messages.c.updated_at,
    t.messages.c.state_changed_at,
    t.messages.c.hold_reasons,
    t.messages.c.defer_reason,
    t.messages.c.next_attempt_at,
    t.messages.c.attempts,
    t.messages.c.message_id,
    t.messages.c.last_error,
    t.messages.c.audited_defer_reason,
    t.messages.c.audited_defer_until,
)
_MESSAGES_WITH_LEAD = t.messages.join(t.leads, t.leads.c.id == t.messages.c.lead_id)


def _message(row: Row_) -> OutboxMessage:
    m = row._mapping
    return OutboxMessage(
        id=m["id"],
        campaign_id=m["campaign_id"],
        lead_id=m["lead_id"],
        step_index=m["step_index"],
        account_id=m["account_id"],
        recipient=m["recipient"],
        state=MessageState(m["state"]),
        subject=m["subject"],
        body=m["body"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        state_changed_at=m["state_changed_at"],
        hold_reasons=codec.hold_reasons_from_text(m["hold_reasons"]),
        defer_reason=DeferReason(m["defer_reason"]) if m["defer_reason"] else None,
        next_attempt_at=m["next_attempt_at"],
        attempts=m["attempts"],
        message_id=m["message_id"],
        last_error=m["last_error"],
        audited_defer_reason=DeferReason(m["audited_defer_reason"]) if m["audited_defer_reason"] else None,
        audited_defer_until=m["audited_defer_until"],
    )


def _suppression(row: Row_) -> Suppression:
    m = row._mapping
    return Suppression(
        value=m["value"],
        reason=SuppressionReason(m["reason"]),
        created_at=m["created_at"],
        is_domain=m["is_domain"],
        hashed=m["hashed"],
        source=m["source"],
        evidence_id=m["evidence_id"],
        id=m["id"],
    )


def _audit(row: Row_) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        at=m["at"],
        result=AuditResult(m["result"]),
        account_id=m["account_id"],
        lead_id=m["lead_id"],
        sender=m["sender"],
        recipient=m["recipient"],
        subject=m["subject"],
        reason=m["reason"],
        legal_basis=LegalBasis(m["legal_basis"]) if m["legal_basis"] else None,
        detail=m["detail"],
        id=m["id"],
    )


def _audit_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "result": entry.result.value,
        "account_id": entry.account_id,
        "lead_id": entry.lead_id,
        "sender": entry.sender,
        "recipient": entry.recipient,
        "subject": entry.subject,
        "reason": entry.reason,
        "legal_basis": entry.legal_basis.value if entry.legal_basis else None,
        "detail": entry.detail,
    }


def _inbound(row: Row_) -> InboundEvent:
    m = row._mapping
    return InboundEvent(
        account_id=m["account_id"],
        folder=m["folder"],
        uidvalidity=m["uidvalidity"],
        uid=m["uid"],
        kind=InboundKind(m["kind"]),
        verdict=codec.verdict_from_json(m["verdict"]),
        created_at=m["created_at"],
        message_id=m["message_id"],
        evidence_id=m["evidence_id"],
        id=m["id"],
    )


def _ledger_entry(row: Row_) -> LedgerEntry:
    m = row._mapping
    return LedgerEntry(
        account_id=m["account_id"],
        at=m["at"],
        recipient=m["recipient"],
        kind=LedgerKind(m["kind"]),
        subject=m["subject"],
        message_id=m["message_id"],
        cold=m["cold"],
        manual=m["manual"],
        id=m["id"],
    )


def _candidates_statement() -> Any:
    """Open messages of one account, follow-ups first, then oldest; built once so SQLAlchemy caches it."""
    steps = t.campaign_steps
    follow_ups_first = case((t.messages.c.step_index > 1, 0), else_=1)
    now = bindparam("now", type_=t.UtcDateTime())
    return (
        select(
            *_MESSAGE_COLUMNS,
            *(column.label("lead__" + column.name) for column in _LEAD_COLUMNS),
            steps.c.subject.label("step_subject"),
            steps.c.body.label("step_body"),
            steps.c.delay_days.label("step_delay_days"),
            steps.c.html_body.label("step_html_body"),
        )
        .select_from(
            _MESSAGES_WITH_LEAD.join(t.campaigns, t.campaigns.c.id == t.messages.c.campaign_id).outerjoin(
                steps,
                and_(
                    steps.c.campaign_id == t.messages.c.campaign_id,
                    steps.c.step_index == t.messages.c.step_index,
                ),
            )
        )
        .where(
            t.messages.c.account_id == bindparam("account_id"),
            t.messages.c.state.in_([state.value for state in CLAIMABLE_STATES]),
            or_(t.messages.c.next_attempt_at.is_(None), t.messages.c.next_attempt_at <= now),
            t.campaigns.c.status == CampaignStatus.ACTIVE.value,
        )
        .order_by(follow_ups_first, t.messages.c.created_at, t.messages.c.id)
        .limit(bindparam("limit"))
    )


_CANDIDATES = _candidates_statement()


class SqliteStore:
    """All persistent state of Cadence. Methods are synchronous and short: call them from one worker thread
    (or several processes: every write is its own BEGIN IMMEDIATE transaction)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._salt: str | None = None
        self._sent_records: dict[int, SentRecord] = {}
        self._sent_records_kept = 0

    @property
    def database(self) -> Database:
        return self._db

    # --- accounts --------------------------------------------------------------------------------------

    def create_account(self, settings: AccountSettings, *, now: datetime) -> Account:
        with self._db.write() as conn:
            account_id = conn.execute(
                insert(t.accounts).values(**_settings_values(settings), created_at=now, pace_factor=1.0)
            ).inserted_primary_key
            assert account_id is not None
            return self._account(conn, account_id[0])

    def get_account(self, account_id: int) -> Account:
        with self._db.read() as conn:
            return self._account(conn, account_id)

    def list_accounts(self) -> tuple[Account, ...]:
        with self._db.read() as conn:
            rows = conn.execute(select(t.accounts).order_by(t.accounts.c.id))
            return tuple(_account(row) for row in rows)

    def update_account(self, account_id: int, *, settings: AccountSettings) -> Account:
        with self._db.write() as conn:
            self._update_account(conn, account_id, _settings_values(settings))
            return self._account(conn, account_id)

    def delete_account(self, account_id: int) -> Account:
        """Remove an account with no campaigns (its ledger and mailbox state go with it); returns what was
        removed. ValueError (a sentence for the user) while campaigns still use it."""
        with self._db.write() as conn:
            account = self._account(conn, account_id)
            used = conn.execute(
                select(func.count()).select_from(t.campaigns).where(t.campaigns.c.account_id == account_id)
            ).scalar_one()
            if used:
                raise ValueError(
                    f"{account.email} still sends {used} campaign{'s' if used != 1 else ''}: delete "
                    "those first, or keep the account paused."
                )
            conn.execute(delete(t.accounts).where(t.accounts.c.id == account_id))
            return account

    def set_account_pause(
        self, account_id: int, *, reason: str | None, until: datetime | None = None
    ) -> Account:
        """Pause sending (reason given) or resume it (reason None)."""
        with self._db.write() as conn:
            values = {"paused_reason": reason, "paused_until": until if reason is not None else None}
            self._update_account(conn, account_id, values)
            return self._account(conn, account_id)

    def set_account_backoff(
        self,
        account_id: int,
        *,
        until: datetime | None,
        pace_factor: float | None = None,
        consecutive_throttles: int | None = None,
    ) -> Account:
        with self._db.write() as conn:
            values: dict[str, Any] = {"backoff_until": until}
            if pace_factor is not None:
                if not 0 < pace_factor <= 1:
                    raise ValueError(f"pace factor must be in (0, 1], not {pace_factor}")
                values["pace_factor"] = pace_factor
            if consecutive_throttles is not None:
                if consecutive_throttles < 0:
                    raise ValueError(f"consecutive throttles cannot be negative, not {consecutive_throttles}")
                values["consecutive_throttles"] = consecutive_throttles
            self._update_account(conn, account_id, values)
            return self._account(conn, account_id)

    def set_warmup_started(self, account_id: int, *, at: datetime | None) -> Account:
        with self._db.write() as conn:
            self._update_account(conn, account_id, {"warmup_started_at": at})
            return self._account(conn, account_id)

    def _update_account(self, conn: Connection, account_id: int, values: Mapping[str, Any]) -> None:
        result = conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(**values))
        if result.rowcount == 0:
            raise RecordNotFound(f"no account {account_id}")

    @staticmethod
    def _account(conn: Connection, account_id: int) -> Account:
        row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        if row is None:
            raise RecordNotFound(f"no account {account_id}")
        return _account(row)

    # --- campaigns -------------------------------------------------------------------------------------

    def create_campaign(
        self,
        *,
        name: str,
        account_id: int,
        steps: Sequence[Step],
        now: datetime,
        status: CampaignStatus = CampaignStatus.ACTIVE,
    ) -> Campaign:
        indexes = [step.index for step in steps]
        if indexes != list(range(1, len(steps) + 1)):
            raise ValueError(f"steps must be numbered 1, 2, 3, … in order, not {indexes}")
        with self._db.write() as conn:
            self._account(conn, account_id)
            key = conn.execute(
                insert(t.campaigns).values(
                    name=name, account_id=account_id, status=status.value, created_at=now
                )
            ).inserted_primary_key
            assert key is not None
            if steps:
                conn.execute(
                    insert(t.campaign_steps),
                    [
                        {
                            "campaign_id": key[0],
                            "step_index": step.index,
                            "subject": step.subject,
                            "body": step.body,
                            "html_body": step.html_body,
                            "delay_days": step.delay_days,
                        }
                        for step in steps
                    ],
                )
            return self._campaign(conn, key[0])

    def get_campaign(self, campaign_id: int) -> Campaign:
        with self._db.read() as conn:
            return self._campaign(conn, campaign_id)

    def list_campaigns(self, *, account_id: int | None = None) -> tuple[Campaign, ...]:
        with self._db.read() as conn:
            query = select(t.campaigns.c.id).order_by(t.campaigns.c.id)
            if account_id is not None:
                query = query.where(t.campaigns.c.account_id == account_id)
            return tuple(self._campaign(conn, campaign_id) for campaign_id in conn.execute(query).scalars())

    def set_campaign_status(self, campaign_id: int, *, status: CampaignStatus) -> Campaign:
        with self._db.write() as conn:
            result = conn.execute(
                update(t.campaigns).where(t.campaigns.c.id == campaign_id).values(status=status.value)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no campaign {campaign_id}")
            return self._campaign(conn, campaign_id)

    @staticmethod
    def _campaign(conn: Connection, campaign_id: int) -> Campaign:
        row = conn.execute(select(t.campaigns).where(t.campaigns.c.id == campaign_id)).first()
        if row is None:
            raise RecordNotFound(f"no campaign {campaign_id}")
        steps = conn.execute(
            select(t.campaign_steps)
            .where(t.campaign_steps.c.campaign_id == campaign_id)
            .order_by(t.campaign_steps.c.step_index)
        )
        m = row._mapping
        return Campaign(
            id=m["id"],
            name=m["name"],
            account_id=m["account_id"],
            status=CampaignStatus(m["status"]),
            created_at=m["created_at"],
            steps=tuple(_step(step) for step in steps),
        )

    # --- leads -----------------------------------------------------------------------------------------

    def add_leads(self, campaign_id: int, *, leads: Iterable[Lead], now: datetime) -> int:
        """Insert leads in chunks, in one transaction; an address already in the campaign is skipped.

        Returns how many were added. Addresses are stored lower-cased (they are compared that way)."""
        added = 0
        created_at = to_db_time(now)
        status = LeadStatus.NEW.value
        with self._db.write() as conn:
            self._campaign_exists(conn, campaign_id)
            # straight to the driver: SQLAlchemy's per-row parameter handling costs more than the insert
            cursor = _driver(conn).cursor()
            try:
                with _bulk_cache(cursor):
                    for chunk in _chunks(leads, LEAD_CHUNK):
                        cursor.executemany(
                            _INSERT_LEAD_SQL,
                            [
                                (
                                    campaign_id,
                                    normalize_address(lead.email),
                                    lead.first_name,
                                    lead.last_name,
                                    lead.company,
                                    lead.timezone,
                                    lead.consent,
                                    codec.fields_to_json(lead.fields),
                                    status,
                                    created_at,
                                )
                                for lead in chunk
                            ],
                        )
                        added += cursor.rowcount
            finally:
                cursor.close()
        return added

    def get_lead(self, lead_id: int) -> CampaignLead:
        with self._db.read() as conn:
            row = conn.execute(select(*_LEAD_COLUMNS).where(t.leads.c.id == lead_id)).first()
            if row is None:
                raise RecordNotFound(f"no lead {lead_id}")
            return _campaign_lead(row)

    def get_leads(self, lead_ids: Iterable[int]) -> dict[int, CampaignLead]:
        """The leads with these ids, by id (an id with no lead is left out): one query per 500 ids, where
        get_lead per row costs a statement each (the approval queue's page of 200 drafts)."""
        found: dict[int, CampaignLead] = {}
        with self._db.read() as conn:
            for chunk in _chunks(dict.fromkeys(lead_ids), ID_CHUNK):
                for row in conn.execute(select(*_LEAD_COLUMNS).where(t.leads.c.id.in_(chunk))):
                    lead = _campaign_lead(row)
                    found[lead.id] = lead
        return found

    def list_leads(
        self,
        campaign_id: int,
        *,
        statuses: Iterable[LeadStatus] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[CampaignLead, ...]:
        query = select(*_LEAD_COLUMNS).where(t.leads.c.campaign_id == campaign_id).order_by(t.leads.c.id)
        if statuses is not None:
            query = query.where(t.leads.c.status.in_([status.value for status in statuses]))
        query = query.limit(limit).offset(offset)
        with self._db.read() as conn:
            return tuple(_campaign_lead(row) for row in conn.execute(query))

    def find_leads(self, address: str) -> tuple[CampaignLead, ...]:
        """Every enrolment of this address, in any campaign."""
        query = (
            select(*_LEAD_COLUMNS).where(t.leads.c.email == normalize_address(address)).order_by(t.leads.c.id)
        )
        with self._db.read() as conn:
            return tuple(_campaign_lead(row) for row in conn.execute(query))

    def count_leads(self, campaign_id: int) -> dict[LeadStatus, int]:
        query = (
            select(t.leads.c.status, func.count())
            .where(t.leads.c.campaign_id == campaign_id)
            .group_by(t.leads.c.status)
        )
        with self._db.read() as conn:
            return {LeadStatus(status): count for status, count in conn.execute(query)}

    def lead_ids_by_email(self, campaign_id: int, *, emails: Iterable[str] | None = None) -> dict[str, int]:
        """Each enrolled (normalised) address of the campaign and its lead id, without building the leads;
        only those of `emails` (normalised here) when given, found through the (campaign, email) index."""
        with self._db.read() as conn:
            cursor = _driver(conn).cursor()
            try:
                if emails is None:
                    rows = cursor.execute("SELECT email, id FROM leads WHERE campaign_id = ?", (campaign_id,))
                    return dict(rows)
                found: dict[str, int] = {}
                for chunk in _chunks({normalize_address(email): None for email in emails}, ID_CHUNK):
                    found.update(
                        cursor.execute(
                            "SELECT email, id FROM leads WHERE campaign_id = ? AND email IN"
                            f" ({','.join('?' * len(chunk))})",
                            (campaign_id, *chunk),
                        )
                    )
                return found
            finally:
                cursor.close()

    def count_by_campaign(self) -> dict[int, CampaignCounts]:
        """Per campaign: messages by state (with each state's latest due time) and leads by status.

        A campaign with neither messages nor leads is absent."""
        messages: dict[int, dict[MessageState, int]] = {}
        latest_due: dict[int, dict[MessageState, datetime]] = {}
        leads: dict[int, dict[LeadStatus, int]] = {}
        with self._db.read() as conn:
            cursor = _driver(conn).cursor()
            try:
                for campaign_id, state_value, count, due in cursor.execute(_CAMPAIGN_MESSAGE_COUNTS_SQL):
                    state = MessageState(state_value)
                    messages.setdefault(campaign_id, {})[state] = count
                    if due is not None:
                        latest_due.setdefault(campaign_id, {})[state] = datetime.fromisoformat(due)
                for campaign_id, status, count in cursor.execute(_CAMPAIGN_LEAD_COUNTS_SQL):
                    leads.setdefault(campaign_id, {})[LeadStatus(status)] = count
            finally:
                cursor.close()
        return {
            campaign_id: CampaignCounts(
                messages=messages.get(campaign_id, {}),
                leads=leads.get(campaign_id, {}),
                latest_due=latest_due.get(campaign_id, {}),
            )
            for campaign_id in messages.keys() | leads.keys()
        }

    def list_open_steps(self, campaign_id: int, *, states: Iterable[MessageState]) -> tuple[OpenStep, ...]:
        """The campaign's messages in `states` with their leads, oldest first (for the finish estimate)."""
        wanted = [MessageState(state).value for state in states]
        if not wanted:
            return ()
        marks = ", ".join("?" * len(wanted))
        sql = (
            "SELECT l.email, l.timezone, l.consent, l.id, l.status, l.resume_at,"
            " m.step_index, m.state, m.next_attempt_at"
            " FROM messages AS m JOIN leads AS l ON l.id = m.lead_id"
            f" WHERE m.campaign_id = ? AND m.state IN ({marks}) ORDER BY m.created_at, m.id"
        )
        with self._db.read() as conn:
            rows = _driver(conn).execute(sql, (campaign_id, *wanted)).fetchall()
        return tuple(
            OpenStep(
                lead=Lead(
                    email=email,
                    timezone=timezone,
                    consent=None if consent is None else bool(consent),
                    id=lead_id,
                ),
                lead_status=LeadStatus(status),
                step_index=step_index,
                state=MessageState(state),
                next_attempt_at=_from_db_time(due),
                resume_at=_from_db_time(resume_at),
            )
            for email, timezone, consent, lead_id, status, resume_at, step_index, state, due in rows
        )

    def set_lead_status(
        self,
        lead_id: int,
        *,
        status: LeadStatus,
        now: datetime,
        reason: str | None = None,
        resume_at: datetime | None = None,
    ) -> tuple[int, ...]:
        """Change a lead's status. A stopping status (replied, bounced, …) cancels its unsent messages in the
        same transaction; returns the ids of the messages cancelled."""
        with self._db.write() as conn:
            return self._set_lead_status(
                conn, [lead_id], status=status, now=now, reason=reason, resume_at=resume_at
            )

    def stop_address(
        self, address: str, *, status: LeadStatus, now: datetime, reason: str
    ) -> tuple[int, ...]:
        """Stop every enrolment of an address (a reply, bounce or unsubscribe counts for all campaigns)."""
        with self._db.write() as conn:
            lead_ids = list(
                conn.execute(
                    select(t.leads.c.id).where(t.leads.c.email == normalize_address(address))
                ).scalars()
            )
            return self._set_lead_status(
                conn, lead_ids, status=status, now=now, reason=reason, resume_at=None
            )

    def _set_lead_status(
        self,
        conn: Connection,
        lead_ids: Sequence[int],
        *,
        status: LeadStatus,
        now: datetime,
        reason: str | None,
        resume_at: datetime | None,
    ) -> tuple[int, ...]:
        if not lead_ids:
            return ()
        for chunk in _chunks(lead_ids, ID_CHUNK):
            result = conn.execute(
                update(t.leads)
                .where(t.leads.c.id.in_(chunk))
                .values(status=status.value, stopped_reason=reason, resume_at=resume_at)
            )
            if result.rowcount != len(chunk):
                raise RecordNotFound(f"no lead among {chunk}")
        if status not in STOPPED_LEAD_STATUSES:
            return ()
        open_ids: list[int] = []
        for chunk in _chunks(lead_ids, ID_CHUNK):
            open_ids.extend(
                conn.execute(
                    select(t.messages.c.id).where(
                        t.messages.c.lead_id.in_(chunk),
                        t.messages.c.state.not_in(
                            [s.value for s in (*TERMINAL_STATES, MessageState.SENDING)]
                        ),
                    )
                ).scalars()
            )
        outcome = self._move(
            conn, open_ids, target=MessageState.CANCELLED, now=now, values={"last_error": reason}
        )
        return outcome.changed

    @staticmethod
    def _campaign_exists(conn: Connection, campaign_id: int) -> None:
        if conn.execute(select(t.campaigns.c.id).where(t.campaigns.c.id == campaign_id)).first() is None:
            raise RecordNotFound(f"no campaign {campaign_id}")

    # --- outbox: drafts, approval, history ---------------------------------------------------------------

    def create_drafts(self, drafts: Sequence[NewDraft], *, now: datetime) -> tuple[int | None, ...]:
        """Create messages; for each draft the new id, or None if that lead already has that step.

        A lead paused until a return date (auto-reply) gets its message due no earlier than that date."""
        with self._db.write() as conn:
            return tuple(self._insert_draft(conn, draft, now=now) for draft in drafts)

    def create_drafts_bulk(self, drafts: Sequence[NewDraft], *, now: datetime) -> int:
        """`create_drafts` for many drafts at once, returning only how many were created.

        The same rules in one transaction: every draft must start as draft, pending approval or approved and
        name a lead of its campaign (else nothing is written), a (lead, step) already there is skipped, and a
        lead paused until a later return date gets its message due no earlier than that date."""
        for draft in drafts:
            if draft.state not in INITIAL_DRAFT_STATES:
                raise ValueError(
                    f"a new message starts as draft, pending approval or approved, not {draft.state}"
                )
        stamp = to_db_time(now)
        created = 0
        with self._db.write() as conn:
            # straight to the driver: building a SQLAlchemy statement per draft costs far more than the insert
            cursor = _driver(conn).cursor()
            try:
                wanted: dict[int, set[int]] = {}
                for draft in drafts:
                    wanted.setdefault(draft.campaign_id, set()).add(draft.lead_id)
                account_of: dict[int, int] = {}
                resume_at: dict[int, str] = {}
                for campaign_id, ids in wanted.items():
                    # the id range the drafts name, read through the primary key: a batch of an import is a
                    # short range, so this does not grow with the campaign
                    present: set[int] = set()
                    for lead_id, resume in cursor.execute(
                        "SELECT id, resume_at FROM leads WHERE campaign_id = ? AND id BETWEEN ? AND ?",
                        (campaign_id, min(ids), max(ids)),
                    ):
                        present.add(lead_id)
                        if resume is not None:
                            resume_at[lead_id] = resume
                    missing = ids - present
                    if missing:
                        raise RecordNotFound(f"no lead {min(missing)} in campaign {campaign_id}")
                    (account_of[campaign_id],) = cursor.execute(
                        "SELECT account_id FROM campaigns WHERE id = ?", (campaign_id,)
                    ).fetchone()

                def due(draft: NewDraft) -> str | None:
                    # times are fixed-width UTC text, so comparing them as strings compares the instants
                    wanted_due = _to_db_time_or_none(draft.next_attempt_at)
                    resume = resume_at.get(draft.lead_id)
                    if resume is not None and resume > stamp and (wanted_due is None or wanted_due < resume):
                        return resume
                    return wanted_due

                with _bulk_cache(cursor):
                    for chunk in _chunks(drafts, LEAD_CHUNK):
                        cursor.executemany(
                            _INSERT_DRAFT_ROW_SQL,
                            [
                                (
                                    draft.campaign_id,
                                    draft.lead_id,
                                    draft.step_index,
                                    account_of[draft.campaign_id],
                                    draft.state.value,
                                    draft.subject,
                                    draft.body,
                                    codec.hold_reasons_to_text(draft.hold_reasons),
                                    due(draft),
                                    stamp,
                                )
                                for draft in chunk
                            ],
                        )
                        created += cursor.rowcount
            finally:
                cursor.close()
        return created

    @staticmethod
    def _insert_draft(conn: Connection, draft: NewDraft, *, now: datetime) -> int | None:
        if draft.state not in INITIAL_DRAFT_STATES:
            raise ValueError(
                f"a new message starts as draft, pending approval or approved, not {draft.state}"
            )
        lead = conn.execute(
            select(t.leads.c.campaign_id, t.leads.c.resume_at, t.campaigns.c.account_id)
            .join(t.campaigns, t.campaigns.c.id == t.leads.c.campaign_id)
            .where(t.leads.c.id == draft.lead_id)
        ).first()
        if lead is None or lead.campaign_id != draft.campaign_id:
            raise RecordNotFound(f"no lead {draft.lead_id} in campaign {draft.campaign_id}")
        due = draft.next_attempt_at
        if lead.resume_at is not None and lead.resume_at > now and (due is None or due < lead.resume_at):
            due = lead.resume_at
        result = conn.execute(
            sqlite_insert(t.messages)
            .values(
                campaign_id=draft.campaign_id,
                lead_id=draft.lead_id,
                step_index=draft.step_index,
                account_id=lead.account_id,
                state=draft.state.value,
                subject=draft.subject,
                body=draft.body,
                hold_reasons=codec.hold_reasons_to_text(draft.hold_reasons),
                next_attempt_at=due,
                attempts=0,
                created_at=now,
                updated_at=now,
                state_changed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["lead_id", "step_index"])
        )
        key = result.inserted_primary_key if result.rowcount else None
        return key[0] if key is not None else None

    def get_message(self, outbox_id: int) -> OutboxMessage:
        with self._db.read() as conn:
            return self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")

    def get_message_by_message_id(self, message_id: str) -> OutboxMessage:
        with self._db.read() as conn:
            return self._message_by(conn, t.messages.c.message_id == message_id, f"no message {message_id}")

    def get_mime(self, message_id: str) -> bytes | None:
        with self._db.read() as conn:
            return conn.execute(
                select(t.messages.c.mime).where(t.messages.c.message_id == message_id)
            ).scalar()

    def list_messages(
        self,
        *,
        states: Iterable[MessageState] | None = None,
        account_id: int | None = None,
        campaign_id: int | None = None,
        lead_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[OutboxMessage, ...]:
        query = select(*_MESSAGE_COLUMNS).select_from(_MESSAGES_WITH_LEAD).order_by(t.messages.c.id)
        if states is not None:
            query = query.where(t.messages.c.state.in_([state.value for state in states]))
        if account_id is not None:
            query = query.where(t.messages.c.account_id == account_id)
        if campaign_id is not None:
            query = query.where(t.messages.c.campaign_id == campaign_id)
        if lead_id is not None:
            query = query.where(t.messages.c.lead_id == lead_id)
        query = query.limit(limit).offset(offset)
        with self._db.read() as conn:
            return tuple(_message(row) for row in conn.execute(query))

    def count_messages(self, *, account_id: int | None = None) -> dict[MessageState, int]:
        query = select(t.messages.c.state, func.count()).group_by(t.messages.c.state)
        if account_id is not None:
            query = query.where(t.messages.c.account_id == account_id)
        with self._db.read() as conn:
            return {MessageState(state): count for state, count in conn.execute(query)}

    def edit_draft(self, outbox_id: int, *, subject: str, body: str, now: datetime) -> OutboxMessage:
        """Change the text of a message not yet approved (or approved but unsent: it goes back for review)."""
        with self._db.write() as conn:
            current = self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")
            values: dict[str, Any] = {"subject": subject, "body": body}
            if current.state in (MessageState.DRAFT, MessageState.PENDING_APPROVAL):
                conn.execute(
                    update(t.messages).where(t.messages.c.id == outbox_id).values(**values, updated_at=now)
                )
            else:
                self._transition(conn, current, MessageState.PENDING_APPROVAL, now=now, values=values)
            return self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")

    def transition(
        self,
        outbox_id: int,
        *,
        to: MessageState,
        now: datetime,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        defer_reason: DeferReason | None = None,
    ) -> OutboxMessage:
        """Move one message; raises IllegalTransition if its current state cannot reach `to`."""
        with self._db.write() as conn:
            current = self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")
            values: dict[str, Any] = {}
            if error is not None:
                values["last_error"] = error
            if to is MessageState.DEFERRED:
                values.update(next_attempt_at=next_attempt_at, defer_reason=defer_reason)
            self._transition(conn, current, to, now=now, values=values)
            return self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")

    def approve(self, outbox_ids: Iterable[int], *, now: datetime) -> BulkOutcome:
        with self._db.write() as conn:
            return self._move(conn, list(outbox_ids), target=MessageState.APPROVED, now=now)

    def reject(self, outbox_ids: Iterable[int], *, now: datetime, reason: str | None = None) -> BulkOutcome:
        with self._db.write() as conn:
            return self._move(
                conn, list(outbox_ids), target=MessageState.REJECTED, now=now, values={"last_error": reason}
            )

    def cancel(self, outbox_ids: Iterable[int], *, now: datetime, reason: str | None = None) -> BulkOutcome:
        with self._db.write() as conn:
            return self._move(
                conn, list(outbox_ids), target=MessageState.CANCELLED, now=now, values={"last_error": reason}
            )

    def expire(
        self, *, now: datetime, created_before: datetime, account_id: int | None = None
    ) -> BulkOutcome:
        """Expire unsent messages created before the cutoff (pending, approved, queued or deferred)."""
        query = select(t.messages.c.id).where(
            t.messages.c.created_at < created_before,
            t.messages.c.state.in_(
                [
                    MessageState.PENDING_APPROVAL.value,
                    MessageState.APPROVED.value,
                    MessageState.QUEUED.value,
                    MessageState.DEFERRED.value,
                ]
            ),
        )
        if account_id is not None:
            query = query.where(t.messages.c.account_id == account_id)
        with self._db.write() as conn:
            ids = list(conn.execute(query).scalars())
            return self._move(conn, ids, target=MessageState.EXPIRED, now=now)

    def _message_by(self, conn: Connection, condition: Any, missing: str) -> OutboxMessage:
        row = conn.execute(
            select(*_MESSAGE_COLUMNS).select_from(_MESSAGES_WITH_LEAD).where(condition)
        ).first()
        if row is None:
            raise RecordNotFound(missing)
        return _message(row)

    @staticmethod
    def _transition(
        conn: Connection,
        current: OutboxMessage,
        target: MessageState,
        *,
        now: datetime,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        check_transition(current.state, target)
        result = conn.execute(
            update(t.messages)
            .where(t.messages.c.id == current.id, t.messages.c.state == current.state.value)
            .values(state=target.value, state_changed_at=now, updated_at=now, **(values or {}))
        )
        if result.rowcount != 1:
            raise RecordNotFound(f"message {current.id} changed under us")

    @staticmethod
    def _move(
        conn: Connection,
        outbox_ids: Sequence[int],
        *,
        target: MessageState,
        now: datetime,
        values: Mapping[str, Any] | None = None,
    ) -> BulkOutcome:
        changed: list[int] = []
        skipped: list[int] = []
        for chunk in _chunks(dict.fromkeys(outbox_ids), ID_CHUNK):
            rows = conn.execute(select(t.messages.c.id, t.messages.c.state).where(t.messages.c.id.in_(chunk)))
            states = {outbox_id: state for outbox_id, state in rows}
            movable: list[int] = []
            for outbox_id in chunk:
                state = states.get(outbox_id)
                if state is not None and target in ALLOWED_TRANSITIONS[MessageState(state)]:
                    check_transition(MessageState(state), target)
                    movable.append(outbox_id)
                else:
                    skipped.append(outbox_id)
            if movable:
                conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id.in_(movable))
                    .values(state=target.value, state_changed_at=now, updated_at=now, **(values or {}))
                )
                changed.extend(movable)
        return BulkOutcome(changed=tuple(changed), skipped=tuple(skipped))

    # --- sending: snapshot, claim, outcome ----------------------------------------------------------------

    def snapshot(self, account_id: int, *, now: datetime) -> PacingSnapshot:
        """What the pacing engine would see now (read-only; for the UI and for planning)."""
        with self._db.read() as conn:
            return self._snapshot(conn, account_id, now=now, candidate_addresses=())

    def claim_next_send(
        self, *, account_id: int, now: datetime, decide: Decide, max_candidates: int = 50
    ) -> Claim | Idle:
        """Reserve the next message to send, deciding inside one BEGIN IMMEDIATE transaction.

        `decide(snapshot, candidates)` must be pure and quick (it runs while the write lock is held). Its
        blocked / deferred / audit parts are applied whatever it picks. The picked message leaves in state
        `sending` with its Message-ID and MIME stored, so it counts against every cap until it is recorded
        as delivered, deferred or failed."""
        with self._db.write() as conn:
            rows = list(
                conn.execute(_CANDIDATES, {"account_id": account_id, "now": now, "limit": max_candidates})
            )
            candidates: list[SendCandidate] = []
            duplicates: list[int] = []
            for row in rows:
                message = _message(row)
                if message.message_id is not None and self._already_sent(conn, message.message_id):
                    duplicates.append(message.id)
                    continue
                m = row._mapping
                step = None
                if m["step_subject"] is not None:
                    step = Step(
                        index=message.step_index,
                        subject=m["step_subject"],
                        body=m["step_body"],
                        delay_days=m["step_delay_days"],
                        html_body=m["step_html_body"],
                    )
                candidates.append(
                    SendCandidate(
                        message=message,
                        lead=_lead(m, prefix="lead__"),
                        lead_status=LeadStatus(m["lead__status"]),
                        step=step,
                    )
                )
            if duplicates:
                self._move(
                    conn,
                    duplicates,
                    target=MessageState.BLOCKED,
                    now=now,
                    values={"last_error": "already sent under the same Message-ID"},
                )
            candidates = self._with_threads(conn, candidates)
            snapshot = self._snapshot(
                conn, account_id, now=now, candidate_addresses=[c.message.recipient for c in candidates]
            )
            decision = decide(snapshot, tuple(candidates))
            by_id = {candidate.message.id: candidate for candidate in candidates}
            self._apply_side_decisions(conn, decision, by_id, now=now)
            pick = decision.pick
            if pick is None:
                return Idle(
                    wait_until=decision.wait_until, reason=decision.wait_reason, candidates=len(candidates)
                )
            chosen = by_id.get(pick.outbox_id)
            if chosen is None or any(pick.outbox_id == outbox_id for outbox_id, _ in decision.blocked):
                raise ValueError(f"decide picked message {pick.outbox_id}, which was not an open candidate")
            current = self._message_by(
                conn, t.messages.c.id == pick.outbox_id, f"no message {pick.outbox_id}"
            )
            if current.message_id is not None and current.message_id != pick.message_id:
                raise ValueError(
                    f"message {current.id} already has Message-ID {current.message_id}; a retry must reuse it"
                )
            if current.state is MessageState.APPROVED:
                self._transition(conn, current, MessageState.QUEUED, now=now)
                current = self._message_by(conn, t.messages.c.id == current.id, "vanished")
            self._transition(
                conn,
                current,
                MessageState.SENDING,
                now=now,
                values={
                    "message_id": pick.message_id,
                    "mime": pick.mime,
                    "attempts": current.attempts + 1,
                    "defer_reason": None,
                    "audited_defer_reason": None,
                    "audited_defer_until": None,
                },
            )
            claimed = self._message_by(conn, t.messages.c.id == current.id, "vanished")
            return Claim(message=claimed, mime=pick.mime, snapshot=snapshot)

    def _apply_side_decisions(
        self, conn: Connection, decision: ClaimDecision, by_id: Mapping[int, SendCandidate], *, now: datetime
    ) -> None:
        for outbox_id, blocked in decision.blocked:
            candidate = by_id.get(outbox_id)
            if candidate is None:
                raise ValueError(f"decide blocked message {outbox_id}, which was not a candidate")
            current = self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")
            self._transition(
                conn, current, MessageState.BLOCKED, now=now, values={"last_error": _blocked_text(blocked)}
            )
        for outbox_id, deferred in decision.deferred:
            if outbox_id not in by_id:
                raise ValueError(f"decide deferred message {outbox_id}, which was not a candidate")
            current = self._message_by(conn, t.messages.c.id == outbox_id, f"no message {outbox_id}")
            if current.state is MessageState.DEFERRED:
                # a deferred message deferred again: same state, new time
                conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id == outbox_id)
                    .values(
                        next_attempt_at=deferred.not_before,
                        defer_reason=deferred.reason.value,
                        updated_at=now,
                    )
                )
            else:
                self._transition(
                    conn,
                    current,
                    MessageState.DEFERRED,
                    now=now,
                    values={"next_attempt_at": deferred.not_before, "defer_reason": deferred.reason.value},
                )
        if decision.audit:
            conn.execute(insert(t.audit_log), [_audit_values(entry) for entry in decision.audit])
        for outbox_id, audited in decision.audited_deferrals:
            if outbox_id not in by_id:
                raise ValueError(f"decide audited a deferral of message {outbox_id}, not a candidate")
            conn.execute(
                update(t.messages)
                .where(t.messages.c.id == outbox_id)
                .values(audited_defer_reason=audited.reason.value, audited_defer_until=audited.not_before)
            )

    def _snapshot(
        self, conn: Connection, account_id: int, *, now: datetime, candidate_addresses: Sequence[str]
    ) -> PacingSnapshot:
        since = now - SNAPSHOT_WINDOW
        # plain driver queries: this runs for every decision, and SQLAlchemy's per-statement work would be
        # most of its cost
        driver = _driver(conn)
        account = driver.execute(_SNAPSHOT_ACCOUNT_SQL, (account_id,)).fetchone()
        if account is None:
            raise RecordNotFound(f"no account {account_id}")
        sends = self._recent_sends(conn, account_id, since=since)
        # messages in flight are reservations: they use capacity until recorded, so no two processes can
        # both take the last slot
        in_flight = driver.execute(_IN_FLIGHT_SQL, (account_id, MessageState.SENDING.value))
        sends.extend(
            SentRecord(at=datetime.fromisoformat(at), recipient=email, subject=subject)
            for at, email, subject in in_flight
        )
        window = (account_id, LedgerKind.HARD_BOUNCE.value, to_db_time(since))
        # the times, not just the count: the bounce breaker starts a fresh sample after its own pause
        bounced = driver.execute(_BOUNCE_TIMES_SQL, window)
        bounce_times = tuple(datetime.fromisoformat(at) for (at,) in bounced)
        addresses, domains = self._suppressed_among(conn, candidate_addresses)
        warmup_started_at, paused_reason, paused_until, backoff_until, pace_factor = account
        return PacingSnapshot(
            now=now,
            sends=tuple(sends),
            hard_bounces_24h=len(bounce_times),
            hard_bounce_times=bounce_times,
            warmup_started_at=_from_db_time(warmup_started_at),
            paused_reason=paused_reason,
            paused_until=_from_db_time(paused_until),
            backoff_until=_from_db_time(backoff_until),
            pace_factor=pace_factor,
            suppressed_addresses=addresses,
            suppressed_domains=domains,
        )

    def _recent_sends(self, conn: Connection, account_id: int, *, since: datetime) -> list[SentRecord]:
        """The ledger's sends since `since`, read afresh for every decision.

        Ledger rows never change once written, so the value objects built from them are kept by row id:
        thousands of rows are read per decision, and fetching and building them all each time costs more
        than the rest of the decision. The ids still come from the ledger every time."""
        driver = _driver(conn)
        window = (account_id, LedgerKind.SENT.value, to_db_time(since))
        known = self._sent_records
        ids = [row[0] for row in driver.execute(_RECENT_SEND_IDS_SQL, window)]
        missing = [ledger_id for ledger_id in ids if ledger_id not in known]
        if missing:
            if len(missing) > ID_CHUNK:
                details = driver.execute(_RECENT_SENDS_SQL, window).fetchall()
            else:
                marks = ",".join("?" * len(missing))
                details = driver.execute(f"{_SENDS_BY_ID_SQL} ({marks})", missing).fetchall()
            for ledger_id, at, recipient, subject, cold, manual in details:
                known[ledger_id] = SentRecord(
                    at=datetime.fromisoformat(at),
                    recipient=recipient,
                    subject=subject,
                    cold=bool(cold),
                    manual=bool(manual),
                )
        sends = [known[ledger_id] for ledger_id in ids]
        if len(known) > 2 * self._sent_records_kept + SENT_RECORD_SLACK:
            # drop what has left every account's window (all accounts share the same 24 h)
            self._sent_records = {key: record for key, record in known.items() if record.at >= since}
            self._sent_records_kept = len(self._sent_records)
        return sends

    def _suppressed_among(
        self, conn: Connection, addresses: Sequence[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Which of these addresses are suppressed (directly or as an erased hash), and which of their
        domains (the domain itself or a parent domain)."""
        if not addresses:
            return frozenset(), frozenset()
        salt = self._erasure_salt(conn)
        wanted: dict[str, tuple[str, str]] = {}  # stored value → ("address" | "domain", what to report)
        for address in {normalize_address(a) for a in addresses}:
            wanted[address] = ("address", address)
            wanted[_address_hash(salt, address)] = ("address", address)
            domain = _domain_of(address)
            for parent in _domain_and_parents(domain):
                wanted.setdefault("@" + parent, ("domain", parent))
        found: set[str] = set()
        for chunk in _chunks(wanted, ID_CHUNK):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT value FROM suppressions WHERE value IN ({marks})"
            found.update(row[0] for row in _driver(conn).execute(query, chunk))
        suppressed_addresses = {wanted[value][1] for value in found if wanted[value][0] == "address"}
        suppressed_parents = {wanted[value][1] for value in found if wanted[value][0] == "domain"}
        suppressed_domains = {
            _domain_of(address)
            for address in wanted
            if "@" in address
            and not address.startswith("@")
            and any(parent in suppressed_parents for parent in _domain_and_parents(_domain_of(address)))
        }
        return frozenset(suppressed_addresses), frozenset(suppressed_domains | suppressed_parents)

    def record_delivered(
        self, message_id: str, *, at: datetime, transcript: str | None = None
    ) -> OutboxMessage:
        """The server accepted the message (2xx after the final dot), or it was found in Sent after a crash.

        One transaction: state sent, ledger row, idempotency key, lead contacted. Safe to call twice."""
        with self._db.write() as conn:
            current = self._message_by(
                conn, t.messages.c.message_id == message_id, f"no message {message_id}"
            )
            if current.state is MessageState.SENT and self._already_sent(conn, message_id):
                return current
            return self._deliver(conn, current, at=at, transcript=transcript)

    def record_deferred(
        self,
        message_id: str,
        *,
        at: datetime,
        next_attempt_at: datetime,
        reason: DeferReason,
        error: str | None = None,
        transcript: str | None = None,
    ) -> OutboxMessage:
        """Not sent, retry later (4xx, connection failure before DATA, throttling): no capacity used."""
        with self._db.write() as conn:
            current = self._message_by(
                conn, t.messages.c.message_id == message_id, f"no message {message_id}"
            )
            values: dict[str, Any] = {
                "next_attempt_at": next_attempt_at,
                "defer_reason": reason.value,
                "last_error": error,
            }
            if transcript is not None:
                values["smtp_transcript"] = transcript
            self._transition(conn, current, MessageState.DEFERRED, now=at, values=values)
            return self._message_by(conn, t.messages.c.id == current.id, "vanished")

    def record_failed(
        self,
        message_id: str,
        *,
        at: datetime,
        error: str,
        transcript: str | None = None,
        lead_status: LeadStatus | None = None,
    ) -> OutboxMessage:
        """Permanently not sent. With `lead_status` (e.g. bounced after a 5.1.1 at RCPT) the lead stops and
        its other unsent messages are cancelled, in the same transaction."""
        with self._db.write() as conn:
            current = self._message_by(
                conn, t.messages.c.message_id == message_id, f"no message {message_id}"
            )
            values: dict[str, Any] = {"last_error": error}
            if transcript is not None:
                values["smtp_transcript"] = transcript
            self._transition(conn, current, MessageState.FAILED, now=at, values=values)
            if lead_status is not None:
                self._set_lead_status(
                    conn, [current.lead_id], status=lead_status, now=at, reason=error, resume_at=None
                )
            return self._message_by(conn, t.messages.c.id == current.id, "vanished")

    def requeue_in_doubt(self, message_id: str, *, at: datetime) -> OutboxMessage:
        """A message left in `sending` that was not found in Sent goes back to the queue (same Message-ID)."""
        with self._db.write() as conn:
            current = self._message_by(
                conn, t.messages.c.message_id == message_id, f"no message {message_id}"
            )
            self._transition(conn, current, MessageState.QUEUED, now=at)
            return self._message_by(conn, t.messages.c.id == current.id, "vanished")

    def list_in_doubt(self, account_id: int) -> tuple[OutboxMessage, ...]:
        return self.list_messages(states=[MessageState.SENDING], account_id=account_id)

    def list_missing_sent_copies(
        self, account_id: int, *, since: datetime, limit: int
    ) -> tuple[SentCopyPending, ...]:
        m = t.messages.c
        query = (
            select(m.id, m.message_id, m.state_changed_at)
            .where(
                m.account_id == account_id,
                m.state == MessageState.SENT.value,
                m.state_changed_at >= since,
                m.sent_copy_at.is_(None),
                m.message_id.is_not(None),
                m.mime.is_not(None),
            )
            .order_by(m.state_changed_at.desc(), m.id.desc())
            .limit(limit)
        )
        with self._db.read() as conn:
            return tuple(
                SentCopyPending(outbox_id=row.id, message_id=row.message_id, sent_at=row.state_changed_at)
                for row in conn.execute(query)
            )

    def has_sent_copy(self, outbox_id: int) -> bool:
        with self._db.read() as conn:
            found = conn.execute(
                select(t.messages.c.sent_copy_at).where(t.messages.c.id == outbox_id)
            ).first()
        if found is None:
            raise RecordNotFound(f"no message {outbox_id}")
        return found[0] is not None

    def record_sent_copy(self, message_id: str, *, at: datetime) -> bool:
        with self._db.write() as conn:
            return self._record_sent_copy(conn, message_id, at=at)

    @staticmethod
    def _record_sent_copy(conn: Connection, message_id: str, *, at: datetime) -> bool:
        changed = conn.execute(
            update(t.messages)
            .where(t.messages.c.message_id == message_id, t.messages.c.sent_copy_at.is_(None))
            .values(sent_copy_at=at)
        ).rowcount
        return bool(changed)

    def is_already_sent(self, message_id: str) -> bool:
        with self._db.read() as conn:
            return self._already_sent(conn, message_id)

    @staticmethod
    def _already_sent(conn: Connection, message_id: str) -> bool:
        key = t.idempotency_keys.c.message_id
        return conn.execute(select(key).where(key == message_id)).first() is not None

    # --- ledger ------------------------------------------------------------------------------------------

    def add_ledger_entry(self, entry: LedgerEntry) -> bool:
        """Record a send made outside the outbox (mail found in Sent, written by hand) or a bounce. An entry
        with a Message-ID already in the ledger for that kind is ignored (rescans are safe); returns whether
        it was added."""
        with self._db.write() as conn:
            if entry.message_id is not None:
                existing = conn.execute(
                    select(t.ledger.c.id).where(
                        t.ledger.c.message_id == entry.message_id,
                        t.ledger.c.kind == entry.kind.value,
                        t.ledger.c.recipient == normalize_address(entry.recipient),
                    )
                ).first()
                if existing is not None:
                    return False
            conn.execute(
                insert(t.ledger).values(
                    account_id=entry.account_id,
                    at=entry.at,
                    recipient=normalize_address(entry.recipient),
                    recipient_domain=entry.recipient_domain,
                    subject=entry.subject,
                    message_id=entry.message_id,
                    cold=entry.cold,
                    manual=entry.manual,
                    kind=entry.kind.value,
                )
            )
            return True

    def list_ledger(
        self,
        *,
        account_id: int,
        since: datetime,
        until: datetime | None = None,
        kinds: Iterable[LedgerKind] | None = None,
    ) -> tuple[LedgerEntry, ...]:
        query = select(t.ledger).where(t.ledger.c.account_id == account_id, t.ledger.c.at >= since)
        if until is not None:
            query = query.where(t.ledger.c.at < until)
        if kinds is not None:
            query = query.where(t.ledger.c.kind.in_([kind.value for kind in kinds]))
        with self._db.read() as conn:
            return tuple(
                _ledger_entry(row) for row in conn.execute(query.order_by(t.ledger.c.at, t.ledger.c.id))
            )

    # --- suppression -------------------------------------------------------------------------------------

    def add_suppression(
        self,
        value: str,
        *,
        reason: SuppressionReason,
        now: datetime,
        source: str = "",
        evidence: bytes | None = None,
    ) -> Suppression:
        """Suppress an address or a whole `@domain`; adding one twice keeps the first. For
        SuppressionReason.ERASED only a salted hash of the address is stored (and the plain entry removed)."""
        with self._db.write() as conn:
            return self._add_suppression(
                conn, value, reason=reason, now=now, source=source, evidence=evidence
            )

    def _add_suppression(
        self,
        conn: Connection,
        value: str,
        *,
        reason: SuppressionReason,
        now: datetime,
        source: str,
        evidence: bytes | None,
    ) -> Suppression:
        key, is_domain = _suppression_key(value)
        hashed = False
        if reason is SuppressionReason.ERASED:
            if is_domain:
                raise ValueError("erasure is for a person's address, not a domain")
            conn.execute(delete(t.suppressions).where(t.suppressions.c.value == key))
            key, hashed = _address_hash(self._erasure_salt(conn), key), True
            source, evidence = "", None  # nothing that could identify the person again
        evidence_id = self._store_evidence(conn, evidence, now=now) if evidence is not None else None
        conn.execute(
            sqlite_insert(t.suppressions)
            .values(
                value=key,
                is_domain=is_domain,
                hashed=hashed,
                reason=reason.value,
                source=source,
                evidence_id=evidence_id,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["value"])
        )
        row = conn.execute(select(t.suppressions).where(t.suppressions.c.value == key)).one()
        return _suppression(row)

    def remove_suppression(self, value: str) -> bool:
        key, _ = _suppression_key(value)
        with self._db.write() as conn:
            return conn.execute(delete(t.suppressions).where(t.suppressions.c.value == key)).rowcount > 0

    def find_suppression(self, address: str) -> Suppression | None:
        """The entry that stops mail to this address (its own, its erased hash, its domain or a parent
        domain), or None. Also accepts `@domain`."""
        key, is_domain = _suppression_key(address)
        with self._db.read() as conn:
            values = [] if is_domain else [key, _address_hash(self._erasure_salt(conn), key)]
            values.extend("@" + parent for parent in _domain_and_parents(_domain_of(key)))
            rows = conn.execute(select(t.suppressions).where(t.suppressions.c.value.in_(values))).all()
        if not rows:
            return None
        order = {value: position for position, value in enumerate(values)}
        return _suppression(min(rows, key=lambda row: order[row._mapping["value"]]))

    def is_suppressed(self, address: str) -> bool:
        return self.find_suppression(address) is not None

    def list_suppressions(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> tuple[Suppression, ...]:
        query = select(t.suppressions).order_by(
            t.suppressions.c.created_at.desc(), t.suppressions.c.id.desc()
        )
        if search:
            escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(t.suppressions.c.value.like(f"%{escaped}%", escape="\\"))
        with self._db.read() as conn:
            return tuple(_suppression(row) for row in conn.execute(query.limit(limit).offset(offset)))

    def count_suppressions(self) -> dict[SuppressionReason, int]:
        reason = t.suppressions.c.reason
        with self._db.read() as conn:
            rows = conn.execute(select(reason, func.count()).group_by(reason))
            return {SuppressionReason(value): count for value, count in rows}

    def erase_person(self, address: str, *, now: datetime) -> ErasureOutcome:
        """Forget one person everywhere, in one transaction: their leads and messages are deleted, ledger and
        audit rows keep only an unlinkable placeholder (the ledger keeps the domain, so per-domain caps still
        count them), inbound events and evidence mentioning them go, and the suppression list keeps only a
        salted hash, so they are never written to again. Refused while a message to them is being sent."""
        key, is_domain = _suppression_key(address)
        if is_domain:
            raise ValueError("erasure is for a person's address, not a domain")
        with self._db.write() as conn:
            lead_ids = list(conn.execute(select(t.leads.c.id).where(t.leads.c.email == key)).scalars())
            messages = select(t.messages.c.id).where(t.messages.c.lead_id.in_(lead_ids))
            in_flight = conn.execute(messages.where(t.messages.c.state == MessageState.SENDING.value)).first()
            if in_flight is not None:
                raise ValueError(f"a message to {key} is being sent right now; erase them once it is done")
            messages_removed = len(conn.execute(messages).all())
            conn.execute(delete(t.messages).where(t.messages.c.lead_id.in_(lead_ids)))
            conn.execute(delete(t.leads).where(t.leads.c.id.in_(lead_ids)))
            digest = _address_hash(self._erasure_salt(conn), key).removeprefix("sha256:")
            placeholder = f"erased.{digest[:16]}@{_domain_of(key)}"
            ledger_rows = conn.execute(
                update(t.ledger).where(t.ledger.c.recipient == key).values(recipient=placeholder, subject="")
            ).rowcount
            self._sent_records = {}  # value objects built from the rows just rewritten
            audit_rows = conn.execute(
                update(t.audit_log)
                .where(func.lower(t.audit_log.c.recipient) == key)
                .values(recipient="[erased]", subject="", detail="")
            ).rowcount
            needle = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            mentions = func.lower(t.inbound_events.c.verdict).like(needle, escape="\\")
            evidence_ids = set(conn.execute(select(t.inbound_events.c.evidence_id).where(mentions)).scalars())
            evidence_ids.update(
                conn.execute(
                    select(t.suppressions.c.evidence_id).where(t.suppressions.c.value == key)
                ).scalars()
            )
            events_removed = conn.execute(delete(t.inbound_events).where(mentions)).rowcount
            self._add_suppression(
                conn, key, reason=SuppressionReason.ERASED, now=now, source="", evidence=None
            )
            still_used = select(t.suppressions.c.evidence_id).where(t.suppressions.c.evidence_id.is_not(None))
            used_by_events = select(t.inbound_events.c.evidence_id).where(
                t.inbound_events.c.evidence_id.is_not(None)
            )
            conn.execute(
                delete(t.evidence).where(
                    t.evidence.c.id.in_([i for i in evidence_ids if i is not None]),
                    t.evidence.c.id.not_in(still_used),
                    t.evidence.c.id.not_in(used_by_events),
                )
            )
        return ErasureOutcome(
            leads_removed=len(lead_ids),
            messages_removed=messages_removed,
            ledger_rows_anonymised=ledger_rows,
            audit_rows_anonymised=audit_rows,
            inbound_events_removed=events_removed,
        )

    def get_evidence(self, evidence_id: int) -> bytes:
        with self._db.read() as conn:
            raw = conn.execute(select(t.evidence.c.raw).where(t.evidence.c.id == evidence_id)).scalar()
        if raw is None:
            raise RecordNotFound(f"no evidence {evidence_id}")
        return bytes(raw)

    @staticmethod
    def _store_evidence(conn: Connection, raw: bytes, *, now: datetime) -> int:
        digest = hashlib.sha256(raw).hexdigest()
        conn.execute(
            sqlite_insert(t.evidence)
            .values(sha256=digest, raw=raw, created_at=now)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        evidence_id: int = conn.execute(
            select(t.evidence.c.id).where(t.evidence.c.sha256 == digest)
        ).scalar_one()
        return evidence_id

    def _erasure_salt(self, conn: Connection) -> str:
        if self._salt is None:
            self._salt = conn.execute(
                select(t.meta.c.value).where(t.meta.c.key == "erasure_salt")
            ).scalar_one()
        return self._salt

    # --- audit -------------------------------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        with self._db.write() as conn:
            conn.execute(insert(t.audit_log), [_audit_values(entry) for entry in entries])

    def query_audit(
        self,
        *,
        account_id: int | None = None,
        lead_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        results: Iterable[AuditResult] | None = None,
        recipient: str | None = None,
        limit: int | None = 1000,
    ) -> tuple[AuditEntry, ...]:
        """Newest first."""
        c = t.audit_log.c
        query = select(t.audit_log).order_by(c.at.desc(), c.id.desc())
        if account_id is not None:
            query = query.where(c.account_id == account_id)
        if lead_id is not None:
            query = query.where(c.lead_id == lead_id)
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        if results is not None:
            query = query.where(c.result.in_([result.value for result in results]))
        if recipient is not None:
            query = query.where(func.lower(c.recipient) == normalize_address(recipient))
        with self._db.read() as conn:
            return tuple(_audit(row) for row in conn.execute(query.limit(limit)))

    # --- inbound -----------------------------------------------------------------------------------------

    def record_inbound_event(
        self,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int,
        uid: int,
        verdict: Verdict,
        now: datetime,
        message_id: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[InboundEvent, bool]:
        """Store a classified inbound message once; returns (event, True) the first time and the stored
        event with False on a re-run (same account, folder, UIDVALIDITY and UID)."""
        c = t.inbound_events.c
        key = and_(c.account_id == account_id, c.folder == folder, c.uidvalidity == uidvalidity, c.uid == uid)
        with self._db.write() as conn:
            existing = conn.execute(select(t.inbound_events).where(key)).first()
            if existing is not None:
                return _inbound(existing), False
            evidence_id = self._store_evidence(conn, raw, now=now) if raw is not None else None
            conn.execute(
                insert(t.inbound_events).values(
                    account_id=account_id,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    uid=uid,
                    message_id=message_id,
                    kind=verdict.kind.value,
                    verdict=codec.verdict_to_json(verdict),
                    evidence_id=evidence_id,
                    created_at=now,
                )
            )
            return _inbound(conn.execute(select(t.inbound_events).where(key)).one()), True

    def list_inbound_events(
        self,
        *,
        account_id: int | None = None,
        kinds: Iterable[InboundKind] | None = None,
        since: datetime | None = None,
        limit: int | None = 1000,
    ) -> tuple[InboundEvent, ...]:
        c = t.inbound_events.c
        query = select(t.inbound_events).order_by(c.created_at.desc(), c.id.desc())
        if account_id is not None:
            query = query.where(c.account_id == account_id)
        if kinds is not None:
            query = query.where(c.kind.in_([kind.value for kind in kinds]))
        if since is not None:
            query = query.where(c.created_at >= since)
        with self._db.read() as conn:
            return tuple(_inbound(row) for row in conn.execute(query.limit(limit)))

    def count_inbound_by_day(
        self, account_id: int, *, first_day: date, last_day: date, timezone: str
    ) -> dict[date, dict[InboundKind, int]]:
        """Inbound events per local day of `timezone` and kind, first_day..last_day (absent: none).

        The local days' UTC bounds are worked out here (exact across DST changes and half-hour zones) and
        the query buckets each event with a CASE over them: one pass, one grouped query."""
        tz = ZoneInfo(timezone)
        days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
        if not days:
            return {}
        bounds = [
            to_db_time(datetime(day.year, day.month, day.day, tzinfo=tz))
            for day in [*days, last_day + timedelta(days=1)]
        ]
        buckets = " ".join("WHEN created_at < ? THEN ?" for _ in days)
        sql = (
            f"SELECT CASE {buckets} END AS day, kind, count(*) FROM inbound_events"
            " WHERE account_id = ? AND created_at >= ? AND created_at < ?"
            " GROUP BY day, kind"
        )
        parameters: list[object] = []
        for number, day in enumerate(days):
            parameters.extend((bounds[number + 1], day.isoformat()))
        parameters.extend((account_id, bounds[0], bounds[-1]))
        counts: dict[date, dict[InboundKind, int]] = {}
        with self._db.read() as conn:
            for day_text, kind, count in _driver(conn).execute(sql, parameters):
                try:
                    inbound_kind = InboundKind(kind)
                except ValueError:  # a kind written by a newer Cadence: not charted
                    continue
                counts.setdefault(date.fromisoformat(day_text), {})[inbound_kind] = count
        return counts

    def get_mailbox_state(self, account_id: int, *, folder: str) -> MailboxState | None:
        c = t.mailbox_state.c
        with self._db.read() as conn:
            row = conn.execute(
                select(c.uidvalidity, c.last_uid).where(c.account_id == account_id, c.folder == folder)
            ).first()
        if row is None:
            return None
        return MailboxState(account_id=account_id, folder=folder, uidvalidity=row[0], last_uid=row[1])

    def set_mailbox_state(self, state: MailboxState) -> None:
        statement = sqlite_insert(t.mailbox_state).values(
            account_id=state.account_id,
            folder=state.folder,
            uidvalidity=state.uidvalidity,
            last_uid=state.last_uid,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["account_id", "folder"],
            set_={"uidvalidity": statement.excluded.uidvalidity, "last_uid": statement.excluded.last_uid},
        )
        with self._db.write() as conn:
            conn.execute(statement)

    # =====================================================================================================
    # --- added by the scheduler / inbox-effects area (services.scheduler, services.inbox_effects) --------
    # =====================================================================================================

    def next_attempt_after(self, account_id: int, *, now: datetime) -> datetime | None:
        """The earliest time a claimable message of an active campaign becomes due, after `now` (the
        scheduler sleeps until then when nothing is due yet)."""
        query = (
            select(func.min(t.messages.c.next_attempt_at))
            .select_from(t.messages.join(t.campaigns, t.campaigns.c.id == t.messages.c.campaign_id))
            .where(
                t.messages.c.account_id == account_id,
                t.messages.c.state.in_([state.value for state in CLAIMABLE_STATES]),
                t.messages.c.next_attempt_at > now,
                t.campaigns.c.status == CampaignStatus.ACTIVE.value,
            )
        )
        with self._db.read() as conn:
            value: datetime | None = conn.execute(query).scalar()
            return value

    @staticmethod
    def _with_threads(conn: Connection, candidates: list[SendCandidate]) -> list[SendCandidate]:
        """Candidates of later steps, with the Message-IDs of their lead's earlier sent steps (oldest first),
        so that a follow-up goes out in the same thread (In-Reply-To / References)."""
        follow_ups = {c.message.lead_id for c in candidates if c.message.step_index > 1}
        if not follow_ups:
            return candidates
        sent: dict[int, list[tuple[int, int, str]]] = {}
        for chunk in _chunks(follow_ups, ID_CHUNK):
            rows = conn.execute(
                select(
                    t.messages.c.lead_id,
                    t.messages.c.campaign_id,
                    t.messages.c.step_index,
                    t.messages.c.message_id,
                )
                .where(
                    t.messages.c.lead_id.in_(chunk),
                    t.messages.c.state == MessageState.SENT.value,
                    t.messages.c.message_id.is_not(None),
                )
                .order_by(t.messages.c.step_index)
            )
            for lead_id, campaign_id, step_index, message_id in rows:
                sent.setdefault(lead_id, []).append((campaign_id, step_index, message_id))
        threaded: list[SendCandidate] = []
        for candidate in candidates:
            message = candidate.message
            earlier = tuple(
                message_id
                for campaign_id, step_index, message_id in sent.get(message.lead_id, ())
                if campaign_id == message.campaign_id and step_index < message.step_index
            )
            threaded.append(replace(candidate, thread_message_ids=earlier) if earlier else candidate)
        return threaded

    def expire_stale(
        self, account_id: int, *, now: datetime, max_age: timedelta
    ) -> tuple[OutboxMessage, ...]:
        """Move unsent messages (pending approval, approved, queued, deferred) that have waited longer than
        `max_age` since they became due to `expired`; returns them as they were before. A first step is due
        when created, a follow-up `delay_days` after it was created (when its previous step went out), and
        no message before its lead's return date (an auto-reply's)."""
        cutoff = now - max_age
        expirable = [
            MessageState.PENDING_APPROVAL.value,
            MessageState.APPROVED.value,
            MessageState.QUEUED.value,
            MessageState.DEFERRED.value,
        ]
        query = (
            select(
                *_MESSAGE_COLUMNS,
                t.campaign_steps.c.delay_days.label("step_delay_days"),
                t.leads.c.resume_at.label("lead_resume_at"),
            )
            .select_from(
                _MESSAGES_WITH_LEAD.outerjoin(
                    t.campaign_steps,
                    and_(
                        t.campaign_steps.c.campaign_id == t.messages.c.campaign_id,
                        t.campaign_steps.c.step_index == t.messages.c.step_index,
                    ),
                )
            )
            .where(
                t.messages.c.account_id == account_id,
                t.messages.c.state.in_(expirable),
                t.messages.c.created_at < cutoff,
            )
        )
        reason = f"waited in the queue longer than {max_age.total_seconds() / 86400:g} days"
        with self._db.write() as conn:
            stale: list[OutboxMessage] = []
            for row in conn.execute(query):
                message = _message(row)
                delay = row._mapping["step_delay_days"] if message.step_index > 1 else None
                due = message.created_at + timedelta(days=delay or 0)
                resume_at = row._mapping["lead_resume_at"]
                if resume_at is not None and resume_at > due:
                    due = resume_at
                if due < cutoff:
                    stale.append(message)
            if not stale:
                return ()
            moved = set(
                self._move(
                    conn,
                    [m.id for m in stale],
                    target=MessageState.EXPIRED,
                    now=now,
                    values={"last_error": reason},
                ).changed
            )
            return tuple(m for m in stale if m.id in moved)

    def record_delivered_with_follow_up(
        self,
        message_id: str,
        *,
        at: datetime,
        follow_up: Callable[[Campaign, CampaignLead, OutboxMessage, datetime], NewDraft | None],
        transcript: str | None = None,
    ) -> tuple[OutboxMessage, int | None]:
        """`record_delivered` plus the next step's draft, in one transaction (a crash cannot leave a sent
        step without its follow-up). Returns the message and the new draft's id (None: no follow-up)."""
        with self._db.write() as conn:
            current = self._message_by(
                conn, t.messages.c.message_id == message_id, f"no message {message_id}"
            )
            if current.state is MessageState.SENT and self._already_sent(conn, message_id):
                return current, None
            delivered = self._deliver(conn, current, at=at, transcript=transcript)
            return delivered, self._create_follow_up(conn, delivered, at=at, follow_up=follow_up)

    def _deliver(
        self, conn: Connection, current: OutboxMessage, *, at: datetime, transcript: str | None
    ) -> OutboxMessage:
        assert current.message_id is not None
        values: dict[str, Any] = {"last_error": None, "defer_reason": None}
        if transcript is not None:
            values["smtp_transcript"] = transcript
        self._transition(conn, current, MessageState.SENT, now=at, values=values)
        conn.execute(
            insert(t.ledger).values(
                account_id=current.account_id,
                at=at,
                recipient=current.recipient,
                recipient_domain=_domain_of(current.recipient),
                subject=current.subject,
                message_id=current.message_id,
                cold=True,
                manual=False,
                kind=LedgerKind.SENT.value,
            )
        )
        conn.execute(insert(t.idempotency_keys).values(message_id=current.message_id, created_at=at))
        # the warm-up ramp counts its days from the account's first send
        conn.execute(
            update(t.accounts)
            .where(t.accounts.c.id == current.account_id, t.accounts.c.warmup_started_at.is_(None))
            .values(warmup_started_at=at)
        )
        conn.execute(
            update(t.leads)
            .where(t.leads.c.id == current.lead_id, t.leads.c.status == LeadStatus.NEW.value)
            .values(status=LeadStatus.CONTACTED.value)
        )
        return self._message_by(conn, t.messages.c.id == current.id, "vanished")

    def _create_follow_up(
        self,
        conn: Connection,
        sent: OutboxMessage,
        *,
        at: datetime,
        follow_up: Callable[[Campaign, CampaignLead, OutboxMessage, datetime], NewDraft | None],
    ) -> int | None:
        lead_row = conn.execute(select(*_LEAD_COLUMNS).where(t.leads.c.id == sent.lead_id)).first()
        if lead_row is None:
            return None
        lead = _campaign_lead(lead_row)
        if lead.status in STOPPED_LEAD_STATUSES:
            return None
        draft = follow_up(self._campaign(conn, sent.campaign_id), lead, sent, at)
        if draft is None:
            return None
        if draft.state not in INITIAL_DRAFT_STATES:
            raise ValueError(f"a follow-up starts as draft, pending approval or approved, not {draft.state}")
        result = conn.execute(
            sqlite_insert(t.messages)
            .values(
                campaign_id=sent.campaign_id,
                lead_id=sent.lead_id,
                step_index=draft.step_index,
                account_id=sent.account_id,
                state=draft.state.value,
                subject=draft.subject,
                body=draft.body,
                hold_reasons=codec.hold_reasons_to_text(draft.hold_reasons),
                next_attempt_at=draft.next_attempt_at,
                attempts=0,
                created_at=at,
                updated_at=at,
                state_changed_at=at,
            )
            .on_conflict_do_nothing(index_elements=["lead_id", "step_index"])
        )
        key = result.inserted_primary_key if result.rowcount else None
        return int(key[0]) if key is not None else None

    def apply_inbound_batch(
        self,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int,
        last_uid: int,
        effects: Sequence[InboundEffect],
        now: datetime,
        follow_up: Callable[[Campaign, CampaignLead, OutboxMessage, datetime], NewDraft | None],
    ) -> InboundBatchOutcome:
        """The InboxSink's batch: each new item's event row and effects, and the folder's new last UID, in
        one transaction. Items already recorded (same account, folder, UIDVALIDITY, UID) are skipped."""
        applied = manual = 0
        suppressed: list[str] = []
        stopped: list[int] = []
        cancelled: list[int] = []
        settled: list[str] = []
        c = t.inbound_events.c
        with self._db.write() as conn:
            for effect in effects:
                item = effect.item
                key = and_(
                    c.account_id == account_id,
                    c.folder == folder,
                    c.uidvalidity == uidvalidity,
                    c.uid == item.uid,
                )
                if conn.execute(select(c.id).where(key)).first() is not None:
                    continue
                applied += 1
                keeps_evidence = effect.action in (InboundAction.SUPPRESS, InboundAction.SOFT_BOUNCE)
                evidence_id = self._store_evidence(conn, item.raw, now=now) if keeps_evidence else None
                conn.execute(
                    insert(t.inbound_events).values(
                        account_id=account_id,
                        folder=folder,
                        uidvalidity=uidvalidity,
                        uid=item.uid,
                        message_id=item.message_id,
                        kind=item.verdict.kind.value,
                        verdict=codec.verdict_to_json(item.verdict),
                        evidence_id=evidence_id,
                        created_at=now,
                    )
                )
                source = f"{folder} uid {item.uid}"
                if effect.action is InboundAction.SENT_COPY:
                    outcome = self._apply_sent_copy(conn, account_id, effect, now=now, follow_up=follow_up)
                    if outcome == "settled" and item.message_id:
                        settled.append(item.message_id)
                    elif outcome == "manual":
                        manual += 1
                    continue
                for reference in effect.references:
                    if self._settle_cited_in_doubt(conn, account_id, reference, now=now, follow_up=follow_up):
                        settled.append(reference)
                lead_ids = self._matching_leads(conn, account_id, effect)
                if effect.action is InboundAction.SUPPRESS:
                    for address in effect.addresses:
                        if effect.suppression is not None:
                            self._add_suppression(
                                conn,
                                address,
                                reason=effect.suppression,
                                now=now,
                                source=source,
                                evidence=item.raw,
                            )
                            suppressed.append(normalize_address(address))
                        if effect.hard_bounce:
                            self._add_bounce(conn, account_id, address, LedgerKind.HARD_BOUNCE, effect, now)
                        lead_ids |= self._address_leads(conn, None, address)
                    if effect.lead_status is not None:
                        cancelled.extend(self._stop(conn, lead_ids, effect.lead_status, now, source))
                        stopped.extend(lead_ids)
                elif effect.action is InboundAction.SOFT_BOUNCE:
                    for address in effect.addresses:
                        self._add_bounce(conn, account_id, address, LedgerKind.SOFT_BOUNCE, effect, now)
                        since = now - timedelta(days=effect.soft_bounce_window_days)
                        count = conn.execute(
                            select(func.count()).where(
                                t.ledger.c.recipient == normalize_address(address),
                                t.ledger.c.kind == LedgerKind.SOFT_BOUNCE.value,
                                t.ledger.c.at >= since,
                            )
                        ).scalar_one()
                        if count >= effect.soft_bounce_limit:
                            self._add_suppression(
                                conn,
                                address,
                                reason=SuppressionReason.SOFT_BOUNCES,
                                now=now,
                                source=source,
                                evidence=item.raw,
                            )
                            suppressed.append(normalize_address(address))
                            ids = self._address_leads(conn, None, address)
                            cancelled.extend(self._stop(conn, ids, LeadStatus.BOUNCED, now, source))
                            stopped.extend(ids)
                elif effect.action is InboundAction.AUTO_REPLY and effect.resume_at is not None:
                    self._postpone(conn, lead_ids, effect.resume_at, now)
                elif effect.action is InboundAction.STOP:
                    cancelled.extend(
                        self._stop(conn, lead_ids, effect.lead_status or LeadStatus.REPLIED, now, source)
                    )
                    stopped.extend(lead_ids)
            statement = sqlite_insert(t.mailbox_state).values(
                account_id=account_id, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["account_id", "folder"],
                    set_={"uidvalidity": uidvalidity, "last_uid": last_uid},
                )
            )
        return InboundBatchOutcome(
            applied=applied,
            suppressed=tuple(dict.fromkeys(suppressed)),
            stopped_leads=tuple(dict.fromkeys(stopped)),
            cancelled_messages=tuple(dict.fromkeys(cancelled)),
            settled=tuple(settled),
            manual_sends=manual,
        )

    def _settle_cited_in_doubt(
        self,
        conn: Connection,
        account_id: int,
        message_id: str,
        *,
        now: datetime,
        follow_up: Callable[[Campaign, CampaignLead, OutboxMessage, datetime], NewDraft | None],
    ) -> bool:
        """A bounce of, or a reply to, a message left in doubt proves that the server took it: delivered, with
        its follow-up (which the item's own effect, e.g. the bounce, then cancels). Whether it settled one."""
        row = conn.execute(
            select(*_MESSAGE_COLUMNS)
            .select_from(_MESSAGES_WITH_LEAD)
            .where(t.messages.c.message_id == message_id, t.messages.c.account_id == account_id)
        ).first()
        if row is None:
            return False
        ours = _message(row)
        if ours.state is not MessageState.SENDING:
            return False
        delivered = self._deliver(conn, ours, at=now, transcript=None)
        self._create_follow_up(conn, delivered, at=now, follow_up=follow_up)
        return True

    def _apply_sent_copy(
        self,
        conn: Connection,
        account_id: int,
        effect: InboundEffect,
        *,
        now: datetime,
        follow_up: Callable[[Campaign, CampaignLead, OutboxMessage, datetime], NewDraft | None],
    ) -> str:
        message_id = effect.item.message_id
        if message_id:
            row = conn.execute(
                select(*_MESSAGE_COLUMNS)
                .select_from(_MESSAGES_WITH_LEAD)
                .where(t.messages.c.message_id == message_id, t.messages.c.account_id == account_id)
            ).first()
            if row is not None:
                ours = _message(row)
                self._record_sent_copy(conn, message_id, at=now)
                if ours.state is MessageState.SENDING:
                    at = effect.sent_at or now
                    delivered = self._deliver(conn, ours, at=at, transcript=None)
                    self._create_follow_up(conn, delivered, at=at, follow_up=follow_up)
                    return "settled"
                return "ours"
        counted = False
        for address in effect.addresses:
            recipient = normalize_address(address)
            if message_id is not None:
                existing = conn.execute(
                    select(t.ledger.c.id).where(
                        t.ledger.c.message_id == message_id,
                        t.ledger.c.recipient == recipient,
                        t.ledger.c.kind == LedgerKind.SENT.value,
                    )
                ).first()
                if existing is not None:
                    continue
            conn.execute(
                insert(t.ledger).values(
                    account_id=account_id,
                    at=effect.sent_at or now,
                    recipient=recipient,
                    recipient_domain=_domain_of(recipient),
                    subject=effect.subject,
                    message_id=message_id,
                    cold=False,
                    manual=True,
                    kind=LedgerKind.SENT.value,
                )
            )
            counted = True
        return "manual" if counted else "none"

    def _matching_leads(self, conn: Connection, account_id: int, effect: InboundEffect) -> set[int]:
        """Leads named by our Message-IDs in the item, else by its addresses (this account's campaigns)."""
        references = [ref for ref in effect.references if ref]
        if references:
            found = set(
                conn.execute(
                    select(t.messages.c.lead_id).where(
                        t.messages.c.message_id.in_(references[:ID_CHUNK]),
                        t.messages.c.account_id == account_id,
                    )
                ).scalars()
            )
            if found:
                return found
        leads: set[int] = set()
        for address in effect.addresses:
            leads |= self._address_leads(conn, account_id, address)
        return leads

    @staticmethod
    def _address_leads(conn: Connection, account_id: int | None, address: str) -> set[int]:
        query = select(t.leads.c.id).where(t.leads.c.email == normalize_address(address))
        if account_id is not None:
            query = query.where(
                t.leads.c.campaign_id.in_(
                    select(t.campaigns.c.id).where(t.campaigns.c.account_id == account_id)
                )
            )
        return set(conn.execute(query).scalars())

    def _stop(
        self, conn: Connection, lead_ids: set[int], status: LeadStatus, now: datetime, reason: str
    ) -> tuple[int, ...]:
        return self._set_lead_status(
            conn, sorted(lead_ids), status=status, now=now, reason=reason, resume_at=None
        )

    @staticmethod
    def _postpone(conn: Connection, lead_ids: set[int], resume_at: datetime, now: datetime) -> None:
        if not lead_ids:
            return
        ids = sorted(lead_ids)
        conn.execute(update(t.leads).where(t.leads.c.id.in_(ids)).values(resume_at=resume_at))
        conn.execute(
            update(t.messages)
            .where(
                t.messages.c.lead_id.in_(ids),
                t.messages.c.state.in_([state.value for state in CLAIMABLE_STATES]),
                or_(t.messages.c.next_attempt_at.is_(None), t.messages.c.next_attempt_at < resume_at),
            )
            .values(next_attempt_at=resume_at, updated_at=now)
        )

    @staticmethod
    def _add_bounce(
        conn: Connection,
        account_id: int,
        address: str,
        kind: LedgerKind,
        effect: InboundEffect,
        now: datetime,
    ) -> None:
        recipient = normalize_address(address)
        message_id = effect.item.verdict.original_message_id or effect.item.message_id
        if message_id is not None:
            existing = conn.execute(
                select(t.ledger.c.id).where(
                    t.ledger.c.message_id == message_id,
                    t.ledger.c.recipient == recipient,
                    t.ledger.c.kind == kind.value,
                )
            ).first()
            if existing is not None:
                return
        conn.execute(
            insert(t.ledger).values(
                account_id=account_id,
                at=now,
                recipient=recipient,
                recipient_domain=_domain_of(recipient),
                subject=effect.subject,
                message_id=message_id,
                cold=True,
                manual=False,
                kind=kind.value,
            )
        )

    # --- inbox gaps: company-domain stop (services.inbox_effects) -------------------------------------------

    def stop_company_leads(
        self, account_id: int, *, domain: str, references: Sequence[str], now: datetime, reason: str
    ) -> tuple[int, ...]:
        """A person at `domain` answered: the open leads at that domain (new, contacted, paused) stop in the
        campaigns of the lead the answer refers to (by our Message-IDs), else in every campaign of this
        account with a lead at that domain. Their queued messages are cancelled. Returns the lead ids."""
        domain = domain.strip().lower()
        if not domain:
            return ()
        pattern = "%@" + domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        leads = t.leads.c
        account_campaigns = select(t.campaigns.c.id).where(t.campaigns.c.account_id == account_id)
        with self._db.write() as conn:
            campaign_ids: set[int] = set()
            refs = [ref for ref in references if ref][:ID_CHUNK]
            if refs:
                campaign_ids = set(
                    conn.execute(
                        select(leads.campaign_id)
                        .select_from(t.messages.join(t.leads, t.messages.c.lead_id == leads.id))
                        .where(t.messages.c.message_id.in_(refs), t.messages.c.account_id == account_id)
                    ).scalars()
                )
            query = select(leads.id).where(
                leads.email.like(pattern, escape="\\"),
                leads.status.in_(
                    [s.value for s in (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.PAUSED)]
                ),
            )
            if campaign_ids:
                query = query.where(leads.campaign_id.in_(sorted(campaign_ids)))
            else:
                query = query.where(leads.campaign_id.in_(account_campaigns))
            lead_ids = sorted(conn.execute(query).scalars())
            self._set_lead_status(
                conn, lead_ids, status=LeadStatus.FINISHED, now=now, reason=reason, resume_at=None
            )
            return tuple(lead_ids)

    # --- end inbox gaps ---------------------------------------------------------------------------------


def _blocked_text(blocked: Blocked) -> str:
    return f"{blocked.reason.value}: {blocked.detail}" if blocked.detail else blocked.reason.value


def _suppression_key(value: str) -> tuple[str, bool]:
    """`@domain` or an address, normalised; anything else is refused with a clear message."""
    key = normalize_address(value)
    if key.startswith("@"):
        domain = key[1:]
        if not domain or "@" in domain or "." not in domain:
            raise ValueError(f"{value!r} is not a domain suppression (expected @example.com)")
        return key, True
    local, at, domain = key.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        raise ValueError(f"{value!r} is not an email address or @domain")
    return key, False


def _address_hash(salt: str, address: str) -> str:
    return "sha256:" + hashlib.sha256(f"{salt}:{address}".encode()).hexdigest()
