"""The migrations build exactly the schema the code declares, on either backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import engine.access
import engine.directory
import engine.identity.tables
import engine.transfer.tables  # noqa: F401  (their tables on Base)
from engine.models import Base


def test_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
