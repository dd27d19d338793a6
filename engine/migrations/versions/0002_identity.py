"""identity: person index, link history, manual pins, review queue, blocking keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:03:31.808534
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_block",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", "patient_id"),
    )
    with op.batch_alter_table("identity_block", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_block_patient_id"), ["patient_id"], unique=False
        )

    lock = op.create_table(
        "identity_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("writes", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one row every identity transaction updates first (see engine/identity/tables.py).
    op.bulk_insert(lock, [{"id": 1, "writes": 0}])
    op.create_table(
        "link_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=True),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("from_person_id", sa.String(length=36), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("link_event", schema=None) as batch_op:
        batch_op.create_index("ix_link_event_other", ["other_patient_id"], unique=False)
        batch_op.create_index("ix_link_event_patient", ["patient_id", "id"], unique=False)

    op.create_table(
        "link_pin",
        sa.Column("patient_a", sa.String(length=64), nullable=False),
        sa.Column("patient_b", sa.String(length=64), nullable=False),
        sa.Column("pin", sa.String(length=8), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("patient_a", "patient_b"),
    )
    with op.batch_alter_table("link_pin", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_pin_patient_b"), ["patient_b"], unique=False)

    op.create_table(
        "person",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_into", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "review_item",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("patient_a", sa.String(length=64), nullable=False),
        sa.Column("patient_b", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_a", "patient_b", name="uq_review_item_pair"),
    )
    with op.batch_alter_table("review_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_item_patient_b"), ["patient_b"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_item_status"), ["status"], unique=False)

    op.create_table(
        "person_link",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    with op.batch_alter_table("person_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_link_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("person_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_link_person_id"))

    op.drop_table("person_link")
    with op.batch_alter_table("review_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_item_status"))
        batch_op.drop_index(batch_op.f("ix_review_item_patient_b"))

    op.drop_table("review_item")
    op.drop_table("person")
    with op.batch_alter_table("link_pin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_pin_patient_b"))

    op.drop_table("link_pin")
    with op.batch_alter_table("link_event", schema=None) as batch_op:
        batch_op.drop_index("ix_link_event_patient")
        batch_op.drop_index("ix_link_event_other")

    op.drop_table("link_event")
    op.drop_table("identity_lock")
    with op.batch_alter_table("identity_block", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_block_patient_id"))

    op.drop_table("identity_block")
