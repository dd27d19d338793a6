"""run seen: every resource id a run has taken in, for the duplicate check

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:20:00

The duplicate check asked which ids the run had staged, but an unchanged row is not staged,
so on a re-run a row id met twice was not caught: its second copy overwrote the first, and the
run then failed closing the same quarantine item twice. The run now records every id it takes
in. Like the staging tables, this matters only while the run lasts: UNLOGGED on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_seen",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "resource_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE run_seen SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("run_seen")
