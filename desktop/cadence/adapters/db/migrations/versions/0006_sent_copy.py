"""messages.sent_copy_at: when the copy of a sent message was seen in (or stored to) the account's Sent
folder. Cadence APPENDs that copy itself for providers that do not file submitted mail (APP_APPENDS); a
process killed between the delivery and the APPEND leaves it NULL, and the catch-up on the next start (or
reconnect) finds it and makes the copy. NULL for every message sent before this revision.

ix_messages_account_sent_copy (account_id, state, sent_copy_at, state_changed_at): the catch-up's list of
one account's recent sent messages without a copy is a range of this index, not a scan of every message.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("sent_copy_at", sa.String(32)))
    op.create_index(
        "ix_messages_account_sent_copy",
        "messages",
        ["account_id", "state", "sent_copy_at", "state_changed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_account_sent_copy", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sent_copy_at")
