"""ingest run: when its Patients were linked into people

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:10:00

A run becomes visible in one commit, and its Patients are linked after it. A process that
died between the two left them in no person, and the re-run found nothing changed, so nothing
linked them. ``linked_at`` says a run was linked; the next run links any completed run that
was not. Runs completed before this were linked in the same process: they count as linked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingest_run", sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE ingest_run SET linked_at = finished_at WHERE status = 'completed'")


def downgrade() -> None:
    # Both databases drop a column in place (SQLite since 3.35); a copy of the table, as
    # Alembic's batch mode makes, would trip the foreign keys that point to it.
    op.execute("ALTER TABLE ingest_run DROP COLUMN linked_at")
