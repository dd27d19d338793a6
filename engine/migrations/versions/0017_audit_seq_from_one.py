"""audit: PostgreSQL refuses an entry numbered below 1

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 09:00:00

The application's role may INSERT into the trail, and nothing stopped it inserting a row at a
number scr never appends (0, or the lowest a bigint holds), which IG searches show. A CHECK now
refuses ``seq < 1``; ``audit.verify`` also names any such row already there. A store that
already holds one keeps it, as evidence: the constraint is then left NOT VALID (still checking
every new row) rather than failing the upgrade, and the migration warns. The triggers and the
grants are untouched.

SQLite gets no CHECK: adding one means rebuilding the table (every entry copied, the triggers
dropped and made again), and protects against no one, since SQLite has no roles and whoever can
insert can rebuild the table without it. Its walk has always read every row in order, so verify
names a row below 1 there.
"""

from __future__ import annotations

import warnings

from alembic import op
from sqlalchemy import text

from audit.tables import SEQ_FROM_ONE

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE audit_entry ADD CONSTRAINT {SEQ_FROM_ONE} CHECK (seq >= 1) NOT VALID")
    if conn.execute(text("SELECT EXISTS (SELECT 1 FROM audit_entry WHERE seq < 1)")).scalar():
        warnings.warn(
            "audit_entry holds a row numbered below 1, which scr never appends: it is kept, "
            f"and {SEQ_FROM_ONE} is left NOT VALID; scr audit verify names it",
            stacklevel=1,
        )
        return
    op.execute(f"ALTER TABLE audit_entry VALIDATE CONSTRAINT {SEQ_FROM_ONE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_entry DROP CONSTRAINT IF EXISTS {SEQ_FROM_ONE}")
