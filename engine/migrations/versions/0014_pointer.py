"""pointer: which records each source record names, so later labels reach them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:40:00

A course or a result recorded under a problem is labelled with the problem's confidentiality
and sensitive category when it is read. A later extract that makes the problem confidential (or
recodes it as sensitive) without bringing its courses again left them as they were. The store
now keeps which records each record names; a run passes the labels it gives a record back to
the stored records naming it. ``staged_pointer`` holds a run's changes until it completes, and
``staged_inherit`` what its records took from the store: UNLOGGED on PostgreSQL, like the
other staging tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pointer",
        sa.Column("to_key", sa.String(length=512), nullable=False),
        sa.Column("from_key", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("to_key", "from_key"),
    )
    op.create_index(op.f("ix_pointer_from_key"), "pointer", ["from_key"], unique=False)
    op.create_table(
        "staged_pointer",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("from_key", sa.String(length=512), nullable=False),
        sa.Column("to_key", sa.String(length=512), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "from_key", "to_key"),
    )
    op.create_table(
        "staged_inherit",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("from_key", sa.String(length=512), nullable=False),
        sa.Column("to_key", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "from_key", "to_key"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE staged_pointer SET UNLOGGED")
        op.execute("ALTER TABLE staged_inherit SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("staged_inherit")
    op.drop_table("staged_pointer")
    op.drop_index(op.f("ix_pointer_from_key"), table_name="pointer")
    op.drop_table("pointer")
