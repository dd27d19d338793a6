"""index person.merged_into

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 12:00:00

Every split of a person looks up the people merged into it (``merged_into IN (...)``, and
again for each step of a chain). Without an index each lookup read the whole person table,
which holds every person ever made, merged or not.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_person_merged_into"), "person", ["merged_into"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_person_merged_into"), table_name="person")
