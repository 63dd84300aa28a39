"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.String(32)  # UTC ISO-8601 text, fixed width (see tables.UtcDateTime)
ADDRESS = sa.String(320)
MESSAGE_ID = sa.String(998)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("email", ADDRESS, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False, server_default=""),
        sa.Column("smtp_host", sa.Text, nullable=False),
        sa.Column("smtp_port", sa.Integer, nullable=False),
        sa.Column("smtp_security", sa.String(16), nullable=False),
        sa.Column("imap_host", sa.Text, nullable=False),
        sa.Column("imap_port", sa.Integer, nullable=False),
        sa.Column("imap_security", sa.String(16), nullable=False),
        sa.Column("ca_file", sa.Text),
        sa.Column("provider_key", sa.String(64)),
        sa.Column("guardrails", sa.Text, nullable=False, server_default="{}"),
        sa.Column("warmup_started_at", TIME),
        sa.Column("paused_reason", sa.Text),
        sa.Column("paused_until", TIME),
        sa.Column("backoff_until", TIME),
        sa.Column("sent_folder_kind", sa.String(32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("email", name="uq_accounts_email"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_campaigns_account_id_accounts", ondelete="RESTRICT"
        ),
    )
    op.create_index("ix_campaigns_account_id", "campaigns", ["account_id"])
    op.create_table(
        "campaign_steps",
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("html_body", sa.Text),
        sa.Column("delay_days", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "step_index", name="pk_campaign_steps"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_campaign_steps_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("email", ADDRESS, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False, server_default=""),
        sa.Column("last_name", sa.Text, nullable=False, server_default=""),
        sa.Column("company", sa.Text, nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64)),
        sa.Column("consent", sa.Boolean),
        sa.Column("fields", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("stopped_reason", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leads"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name="fk_leads_campaign_id_campaigns", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("campaign_id", "email", name="uq_leads_campaign_id_email"),
    )
    op.create_index("ix_leads_email", "leads", ["email"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("lead_id", sa.Integer, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("hold_reasons", sa.Text, nullable=False, server_default=""),
        sa.Column("defer_reason", sa.String(32)),
        sa.Column("next_attempt_at", TIME),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message_id", MESSAGE_ID),
        sa.Column("mime", sa.LargeBinary),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("state_changed_at", TIME, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name="fk_messages_campaign_id_campaigns", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name="fk_messages_lead_id_leads", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_messages_account_id_accounts", ondelete="RESTRICT"
        ),
        sa.UniqueConstraint("message_id", name="uq_messages_message_id"),
        sa.UniqueConstraint("lead_id", "step_index", name="uq_messages_lead_id_step_index"),
    )
    op.create_index("ix_messages_state", "messages", ["state"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("recipient", ADDRESS, nullable=False),
        sa.Column("recipient_domain", sa.String(255), nullable=False),
        sa.Column("subject", sa.Text, nullable=False, server_default=""),
        sa.Column("message_id", MESSAGE_ID),
        sa.Column("cold", sa.Boolean, nullable=False),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_account_id_accounts", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,  # ids never reused (the store keeps ledger value objects by id)
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence"),
        sa.UniqueConstraint("sha256", name="uq_evidence_sha256"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("value", ADDRESS, nullable=False),
        sa.Column("is_domain", sa.Boolean, nullable=False),
        sa.Column("hashed", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("evidence_id", sa.Integer),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.ForeignKeyConstraint(
            ["evidence_id"], ["evidence.id"], name="fk_suppressions_evidence_id_evidence", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("value", name="uq_suppressions_value"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("message_id", MESSAGE_ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_idempotency_keys"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("account_id", sa.Integer),
        sa.Column("lead_id", sa.Integer),
        sa.Column("sender", sa.Text, nullable=False, server_default=""),
        sa.Column("recipient", sa.Text, nullable=False, server_default=""),
        sa.Column("subject", sa.Text, nullable=False, server_default=""),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("legal_basis", sa.String(32)),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("uidvalidity", sa.Integer, nullable=False),
        sa.Column("uid", sa.Integer, nullable=False),
        sa.Column("message_id", MESSAGE_ID),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("evidence_id", sa.Integer),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_events"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_inbound_events_account_id_accounts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
            name="fk_inbound_events_evidence_id_evidence",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "account_id",
            "folder",
            "uidvalidity",
            "uid",
            name="uq_inbound_events_account_id_folder_uidvalidity_uid",
        ),
    )
    op.create_table(
        "mailbox_state",
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("uidvalidity", sa.Integer, nullable=False),
        sa.Column("last_uid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "folder", name="pk_mailbox_state"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_mailbox_state_account_id_accounts", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    for table in (
        "mailbox_state",
        "inbound_events",
        "audit_log",
        "idempotency_keys",
        "suppressions",
        "evidence",
        "ledger",
        "messages",
        "leads",
        "campaign_steps",
        "campaigns",
        "accounts",
        "meta",
    ):
        op.drop_table(table)
