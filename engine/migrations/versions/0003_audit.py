"""audit: the append-only hash-chained trail and its head row

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:40:00.000000

The trail refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) by trigger, whoever asks; on
PostgreSQL the role named by ``SCR_DB_APP_ROLE`` is also granted only SELECT and INSERT on it.
A trigger does not stop the table's owner, who can drop it: the chain and signed checkpoints
are what catch the owner (docs/audit.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audit.storage import grant_app_role, protect
from engine.settings import Settings

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("org", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entry_patient", ["patient_id", "time"], unique=False)
        batch_op.create_index("ix_audit_entry_nhs", ["nhs_number", "time"], unique=False)
        batch_op.create_index("ix_audit_entry_user", ["user_id", "time"], unique=False)
        batch_op.create_index("ix_audit_entry_time", ["time"], unique=False)
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": bytes(32)}])
    conn = op.get_bind()
    protect(conn)
    role = Settings.load().db_app_role
    if role and conn.dialect.name == "postgresql":
        grant_app_role(conn, role)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_refuse()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_time")
        batch_op.drop_index("ix_audit_entry_user")
        batch_op.drop_index("ix_audit_entry_nhs")
        batch_op.drop_index("ix_audit_entry_patient")
    op.drop_table("audit_entry")
