"""How each account signs in: a password (or app password) from the keyring, or OAuth (XOAUTH2) with a
refresh token in the keyring. Existing accounts keep signing in with their password.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("auth_method", sa.String(32), nullable=False, server_default="password"))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("auth_method")
