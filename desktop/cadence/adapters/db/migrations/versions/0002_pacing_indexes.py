"""Decision-speed indexes and the columns the backoff, auto-reply and in-doubt handling need.

- ledger (account_id, kind, at, recipient, subject, cold, manual): the pacing snapshot reads one account's
  last 24 h of sends from this covering index alone
- messages (account_id, state, next_attempt_at): candidate lookup for the next send
- accounts.pace_factor: multiplicative slow-down after repeated throttling
- leads.resume_at: an auto-reply's return date pauses a lead until then
- messages.smtp_transcript: the SMTP conversation of the last attempt, for in-doubt review

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("pace_factor", sa.Float, nullable=False, server_default="1.0"))
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("resume_at", sa.String(32)))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("smtp_transcript", sa.Text))
        batch.create_index("ix_messages_account_state_next", ["account_id", "state", "next_attempt_at"])
    with op.batch_alter_table("ledger") as batch:
        batch.create_index(
            "ix_ledger_recent", ["account_id", "kind", "at", "recipient", "subject", "cold", "manual"]
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_index("ix_ledger_recent")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_account_state_next")
        batch.drop_column("smtp_transcript")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("resume_at")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("pace_factor")
