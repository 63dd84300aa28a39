"""What the scheduler needs to remember between passes.

- accounts.consecutive_throttles: the throttle streak, so the pace factor halves on every throttle in a
  row (AIMD) instead of being guessed from backoff_until
- messages.audited_defer_reason / audited_defer_until: the last pacing deferral written to the audit log,
  so a deferral is audited when it changes, not on every wake

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("consecutive_throttles", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("audited_defer_reason", sa.String(32)))
        batch.add_column(sa.Column("audited_defer_until", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("audited_defer_until")
        batch.drop_column("audited_defer_reason")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("consecutive_throttles")
