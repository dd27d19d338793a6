"""resource facts: each row's section and policy labels stored beside its body

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:00:00

The read path judged every row by parsing its body to place it in a section and collect its
labels; ingest now stores what ``consent.meta_of`` derives (``engine.facts``), with the version
of the rules it was derived by. Existing rows get theirs in 0009: ``engine.facts.restamp``
writes every fact column the code knows, some of which only exist from 0009 on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("resource", "staged")


def _columns() -> list[sa.Column[str]]:
    return [
        sa.Column("section", sa.String(length=64), nullable=True),
        sa.Column("policy_labels", sa.Text(), nullable=True),
        sa.Column("facts_version", sa.String(length=16), nullable=True),
    ]


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            for column in _columns():
                batch_op.add_column(column)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            for column in reversed(_columns()):
                batch_op.drop_column(column.name)
