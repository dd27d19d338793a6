"""ingest staging: the staging tables are UNLOGGED on PostgreSQL

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:50:00

What a run stages matters only until its apply transaction commits; after a crash the next run
marks it abandoned and loads everything again. Writing it to the WAL as well only doubled the
server's work for every staged body. SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("staged", "staged_resolution")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} SET UNLOGGED")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} SET LOGGED")
