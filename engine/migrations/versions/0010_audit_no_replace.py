"""audit: SQLite refuses a REPLACE of an entry

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 07:15:00

SQLite's REPLACE deletes the row it conflicts with without running delete triggers, so the
update and delete triggers of 0003 let it rewrite an entry. A trigger now refuses any insert
that names a sequence number the trail already holds (a store made since gets it from 0003, as
``audit.storage.protect`` installs it too). PostgreSQL has no REPLACE: its
``ON CONFLICT DO UPDATE`` runs the update trigger.
"""

from __future__ import annotations

from alembic import op

from audit.storage import SQLITE_NO_REPLACE

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_NO_REPLACE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_replace")
