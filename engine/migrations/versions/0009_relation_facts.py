"""relation facts: what each row says about the person, stored beside its body

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00

Every read gathered the policy's facts (relationships, consent directives, the organisations
relationships reference) by parsing the person's relationship, Consent and Patient bodies;
ingest now stores them too (``engine.facts``: ``relation``, ``relation_ref``). The facts
format changed with them, so every existing row's facts are derived again here, from its body.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("resource", "staged")
_COLUMNS = ("relation", "relation_ref")


def upgrade() -> None:
    from engine.facts import ingest_policy, restamp

    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            for name in _COLUMNS:
                batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))
    restamp(op.get_bind(), ingest_policy())


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            for name in reversed(_COLUMNS):
                batch_op.drop_column(name)
