"""Shared fixtures: a fresh migrated store per test on the backend chosen by SCR_TEST_DATABASE.

``SCR_TEST_DATABASE`` is ``sqlite`` (default: a file in the test's tmp dir) or a PostgreSQL URL;
on PostgreSQL each test gets its own schema, dropped afterwards, so tests cannot leak.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.codes import CodeMaps, load_all
from engine.db import make_engine
from engine.migrate import upgrade
from engine.settings import Settings

BACKEND = os.environ.get("SCR_TEST_DATABASE", "sqlite")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def database_url(tmp_path: Path) -> tuple[str, str | None]:
    """A URL for a fresh store, and the PostgreSQL schema to drop afterwards (if any)."""
    if BACKEND == "sqlite":
        return f"sqlite:///{tmp_path / 'scr.db'}", None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(BACKEND)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in BACKEND else "?"
    return f"{BACKEND}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    admin = make_engine(BACKEND)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    url, schema = database_url(tmp_path)
    yield url
    if schema:
        drop_schema(schema)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def codes() -> CodeMaps:
    return load_all()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, ingest_batch_size=50)


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS
