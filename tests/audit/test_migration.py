"""Migration 0003 builds exactly the audit tables ``audit/tables.py`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import audit.tables  # noqa: F401  (its tables on Base)
from engine.models import Base


def _touches_audit(diff: object) -> bool:
    return "audit_" in repr(diff)


def test_migrated_audit_tables_match_the_declared_ones(engine: Engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if _touches_audit(d)] == []
