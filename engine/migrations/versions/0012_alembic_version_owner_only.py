"""the application role cannot rewrite which revision the schema is at

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:25:00

The owner's default privileges give the application role INSERT, UPDATE and DELETE on every
table the owner makes, Alembic's ``alembic_version`` among them: the app could then make the
next upgrade skip a migration (the audit trail's triggers, say) or run one twice. It keeps
SELECT, which ``scr serve`` needs to see the schema is at the head revision.
"""

from __future__ import annotations

from alembic import op

from engine.settings import Settings

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = Settings.load().db_app_role
    if role and op.get_bind().dialect.name == "postgresql":
        quoted = '"' + role.replace('"', '""') + '"'
        op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {quoted}")


def downgrade() -> None:
    """Nothing to give back: the role never needed to write it."""
