"""access: organisation directory, break-glass grants, self-claims, NHS numbers for search

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def _reviewed(name: str, *extra: sa.Column[str]) -> None:
    """A user-made access record (engine/access.py): who, why, until when, and IG's review."""
    op.create_table(
        name,
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("role_code", sa.String(length=64), nullable=False),
        sa.Column("org", sa.String(length=16), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=False),
        sa.Column("start", _TIME, nullable=False),
        sa.Column("expiry", _TIME, nullable=False),
        sa.Column("review", sa.String(length=16), nullable=False),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("reviewed_at", _TIME, nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        *extra,
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{name}_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f(f"ix_{name}_review"), ["review"], unique=False)


def upgrade() -> None:
    op.create_table(
        "organisation_directory",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    _reviewed("break_glass_grant", sa.Column("reason_code", sa.String(length=16), nullable=False))
    _reviewed("self_claim")
    op.create_table(
        "patient_nhs_number",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("nhs_number", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    with op.batch_alter_table("patient_nhs_number", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_nhs_number_nhs_number"), ["nhs_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("patient_nhs_number", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_nhs_number_nhs_number"))
    op.drop_table("patient_nhs_number")
    for name in ("self_claim", "break_glass_grant"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_review"))
            batch_op.drop_index(batch_op.f(f"ix_{name}_person_id"))
        op.drop_table(name)
    op.drop_table("organisation_directory")
