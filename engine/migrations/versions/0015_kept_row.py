"""kept_row: source rows whose resources turn on joined rows, kept for later deltas

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 19:00:00

A coded event is a problem-list Condition when a problem row names it, else an Observation. A
delta that adds or removes only the problem row (the event unchanged, so not sent) could not
map the event again, and one that sends only the event could not tell it was a problem: the
Condition stayed active, or an Observation was added beside it. Such rows are now kept as
taken in, so either can be mapped with the other. ``staged_kept_row`` holds a run's rows until
it completes: UNLOGGED on PostgreSQL, like the other staging tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kept_row",
        sa.Column("source_key", sa.String(length=512), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("source_key"),
    )
    op.create_table(
        "staged_kept_row",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("source_key", sa.String(length=512), nullable=False),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "source_key"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE staged_kept_row SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("staged_kept_row")
    op.drop_table("kept_row")
