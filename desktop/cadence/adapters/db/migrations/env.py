"""Alembic environment, driven from code: `cadence.adapters.db.engine` passes an open connection."""

from __future__ import annotations

from alembic import context

from cadence.adapters.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run Cadence migrations through cadence.adapters.db.engine (no alembic.ini)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite can alter little in place; batch mode copies the table
    transactional_ddl=True,  # SQLite DDL is transactional: a failed upgrade leaves the old schema
)
with context.begin_transaction():
    context.run_migrations()
