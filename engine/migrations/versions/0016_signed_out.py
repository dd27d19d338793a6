"""signed_out: session tokens signed out of the pages, until they expire

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 19:05:00

Signing out dropped the cookie holding the session's token, which stayed valid until it
expired: a copy taken before still signed in. Its hash is now kept until then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_out",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_signed_out_until"), "signed_out", ["until"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_signed_out_until"), table_name="signed_out")
    op.drop_table("signed_out")
