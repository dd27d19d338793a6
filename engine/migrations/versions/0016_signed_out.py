"""signed_out: sessions signed out, until their tokens expire

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 19:05:00

Signing out dropped the cookie holding the session's token, which stayed valid until it
expired: a copy taken before still signed in. A digest of the token's claims is now kept
until then, and the pages and the API refuse it.
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
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session"),
    )
    op.create_index(op.f("ix_signed_out_until"), "signed_out", ["until"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_signed_out_until"), table_name="signed_out")
    op.drop_table("signed_out")
