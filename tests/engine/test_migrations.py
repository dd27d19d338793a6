"""The migrations build exactly the schema the code declares, on either backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import engine.access
import engine.directory
import engine.identity.tables
import engine.transfer.tables  # noqa: F401  (their tables on Base)
from engine.db import make_engine
from engine.migrate import alembic_config, upgrade
from engine.models import Base


def test_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_staging_tables_are_unlogged_on_postgresql(engine: Engine) -> None:
    """What a run stages only matters until it applies; it is kept out of the WAL."""
    if engine.dialect.name != "postgresql":
        pytest.skip("UNLOGGED is a PostgreSQL table setting")
    with engine.connect() as conn:
        persistence = dict(
            conn.execute(
                text(
                    "SELECT relname, relpersistence FROM pg_class WHERE relname IN "
                    "('staged', 'staged_resolution', 'run_seen', 'staged_pointer', 'pointer', "
                    "'staged_inherit', 'staged_kept_row', 'kept_row', 'resource') "
                    "AND relnamespace = current_schema()::regnamespace"
                )
            ).all()
        )
    assert persistence == {
        "staged": "u",
        "staged_resolution": "u",
        "run_seen": "u",
        "staged_pointer": "u",
        "staged_inherit": "u",
        "staged_kept_row": "u",
        "pointer": "p",
        "kept_row": "p",
        "resource": "p",
    }


def test_people_merged_into_a_person_are_found_by_index(engine: Engine) -> None:
    """Every split looks up person.merged_into IN (...): without an index that reads every
    person ever made. 0013 adds it, and its downgrade takes it away again."""

    def indexed() -> list[list[str]]:
        return [i["column_names"] for i in inspect(engine).get_indexes("person")]

    assert ["merged_into"] in indexed()
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
    assert ["merged_into"] not in indexed()
    upgrade(engine)
    assert ["merged_into"] in indexed()


@pytest.mark.parametrize("form", ["sqlite:///{path}", "sqlite:///file:{path}?uri=true"])
def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path, form: str) -> None:
    """A store holds people's records: under the usual umask SQLite made it, and its WAL,
    readable by every local user (also when named by a file: URI, which made a stray file
    of that name instead)."""
    path = tmp_path / "store.db"
    made = make_engine(form.format(path=path))
    try:
        upgrade(made)
        with made.begin() as conn:
            conn.execute(text("CREATE TABLE probe (n int)"))
        files = [path, path.with_name("store.db-wal"), path.with_name("store.db-shm")]
        assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
    finally:
        made.dispose()
