"""The schema as SQLAlchemy Core tables. Migrations (not `create_all`) create it; a test checks both agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TIMESTAMP_LENGTH = 32  # "2026-11-27T09:47:43.123456+00:00"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as fixed-width UTC ISO text: sorts and compares correctly as a string."""

    impl = String(TIMESTAMP_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return to_db_time(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value)


def to_db_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _created_at() -> Column[datetime]:
    return Column("created_at", UtcDateTime(), nullable=False)


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("smtp_host", Text, nullable=False),
    Column("smtp_port", Integer, nullable=False),
    Column("smtp_security", String(16), nullable=False),
    Column("imap_host", Text, nullable=False),
    Column("imap_port", Integer, nullable=False),
    Column("imap_security", String(16), nullable=False),
    Column("ca_file", Text),
    Column("provider_key", String(64)),
    Column("guardrails", Text, nullable=False, server_default="{}"),
    Column("warmup_started_at", UtcDateTime()),
    Column("paused_reason", Text),
    Column("paused_until", UtcDateTime()),
    Column("backoff_until", UtcDateTime()),
    Column("pace_factor", Float, nullable=False, server_default="1.0"),  # revision 0002
    Column("sent_folder_kind", String(32), nullable=False),
    _created_at(),
    Column("auth_method", String(32), nullable=False, server_default="password"),  # revision 0003
    Column("consecutive_throttles", Integer, nullable=False, server_default="0"),  # revision 0004
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    _created_at(),
)

campaign_steps = Table(
    "campaign_steps",
    metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("html_body", Text),
    Column("delay_days", Float, nullable=False),
    PrimaryKeyConstraint("campaign_id", "step_index"),
)

leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False, index=True),
    Column("first_name", Text, nullable=False, server_default=""),
    Column("last_name", Text, nullable=False, server_default=""),
    Column("company", Text, nullable=False, server_default=""),
    Column("timezone", String(64)),
    Column("consent", Boolean),
    Column("fields", Text, nullable=False, server_default="{}"),
    Column("status", String(32), nullable=False),
    Column("stopped_reason", Text),
    Column("resume_at", UtcDateTime()),  # revision 0002
    _created_at(),
    UniqueConstraint("campaign_id", "email"),
    Index("ix_leads_campaign_status", "campaign_id", "status"),  # revision 0005
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("lead_id", Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False),
    Column("state", String(32), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("hold_reasons", Text, nullable=False, server_default=""),
    Column("defer_reason", String(32)),
    Column("next_attempt_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("message_id", String(998), unique=True),
    Column("mime", LargeBinary),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("state_changed_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("smtp_transcript", Text),  # revision 0002
    Column("audited_defer_reason", String(32)),  # revision 0004: the last pacing deferral audited
    Column("audited_defer_until", UtcDateTime()),  # revision 0004
    Column("sent_copy_at", UtcDateTime()),  # revision 0006: the copy is in the account's Sent folder
    UniqueConstraint("lead_id", "step_index"),  # no lead ever gets the same step twice
    Index("ix_messages_account_state_next", "account_id", "state", "next_attempt_at"),  # revision 0002
    Index("ix_messages_state", "state"),
    Index("ix_messages_campaign_state_next", "campaign_id", "state", "next_attempt_at"),  # revision 0005
    # revision 0006: the Sent-copy catch-up's recent sent messages without a copy, per account
    Index("ix_messages_account_sent_copy", "account_id", "state", "sent_copy_at", "state_changed_at"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_domain", String(255), nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("message_id", String(998)),
    Column("cold", Boolean, nullable=False),
    Column("manual", Boolean, nullable=False),
    Column("kind", String(16), nullable=False),
    # every decision reads one account's sends of the last 24 h; covering, so SQLite never visits the table
    # (3,000+ scattered rows otherwise): revision 0002
    Index("ix_ledger_recent", "account_id", "kind", "at", "recipient", "subject", "cold", "manual"),
    # ids are never reused, even after deletions: the store keeps value objects of ledger rows by id
    sqlite_autoincrement=True,
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("raw", LargeBinary, nullable=False),
    _created_at(),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", String(320), nullable=False, unique=True),
    Column("is_domain", Boolean, nullable=False),
    Column("hashed", Boolean, nullable=False, server_default="0"),
    Column("reason", String(32), nullable=False),
    Column("source", Text, nullable=False, server_default=""),
    Column("evidence_id", Integer, ForeignKey("evidence.id", ondelete="SET NULL")),
    _created_at(),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("message_id", String(998), primary_key=True),
    _created_at(),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    # plain ids, no foreign keys: the audit trail outlives deleted accounts and leads
    Column("account_id", Integer),
    Column("lead_id", Integer),
    Column("sender", Text, nullable=False, server_default=""),
    Column("recipient", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("result", String(32), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("legal_basis", String(32)),
    Column("detail", Text, nullable=False, server_default=""),
)

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("folder", Text, nullable=False),
    Column("uidvalidity", Integer, nullable=False),
    Column("uid", Integer, nullable=False),
    Column("message_id", String(998)),
    Column("kind", String(32), nullable=False),
    Column("verdict", Text, nullable=False),
    Column("evidence_id", Integer),
    _created_at(),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["evidence_id"], ["evidence.id"], ondelete="SET NULL"),
    UniqueConstraint("account_id", "folder", "uidvalidity", "uid"),
)

mailbox_state = Table(
    "mailbox_state",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("folder", Text, nullable=False),
    Column("uidvalidity", Integer, nullable=False),
    Column("last_uid", Integer, nullable=False),
    PrimaryKeyConstraint("account_id", "folder"),
)
