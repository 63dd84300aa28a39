"""Indexes for the window at scale (100,000 drafts):

- messages (campaign_id, state, next_attempt_at): the campaigns tab counts each campaign's messages by state
  with their latest due time from this covering index instead of reading every message (bodies included)
- leads (campaign_id, status): each campaign's leads by status, from this covering index alone

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_campaign_state_next", "messages", ["campaign_id", "state", "next_attempt_at"]
    )
    op.create_index("ix_leads_campaign_status", "leads", ["campaign_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_leads_campaign_status", table_name="leads")
    op.drop_index("ix_messages_campaign_state_next", table_name="messages")
