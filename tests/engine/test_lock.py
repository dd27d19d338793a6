"""One ingest at a time per store; another store in the same database is not held up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from engine.db import make_engine, scratch_store
from engine.lock import IngestBusy, ingest_lock
from engine.migrate import upgrade
from tests.conftest import BACKEND


def test_a_second_ingest_on_the_same_store_is_refused(engine):
    with ingest_lock(engine), pytest.raises(IngestBusy), ingest_lock(engine):
        pass
    with ingest_lock(engine):
        pass


@contextmanager
def _store_beside(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """Another store in the same database: on PostgreSQL a schema of its own, which is how one
    database holds several stores."""
    if engine.dialect.name != "postgresql":
        with scratch_store(BACKEND, tmp_path) as url:
            yield url
        return
    schema = f"beside_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{engine.url.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_another_store_in_the_same_database_is_not_held_up(engine, tmp_path):
    with _store_beside(engine, tmp_path) as url:
        other = make_engine(url)
        try:
            upgrade(other)
            with ingest_lock(engine), ingest_lock(other):
                pass
        finally:
            other.dispose()
