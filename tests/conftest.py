"""Shared fixtures: a fresh migrated store per test on the backend chosen by SCR_TEST_DATABASE.

``SCR_TEST_DATABASE`` is ``sqlite`` (default: a file in the test's tmp dir) or a PostgreSQL URL;
on PostgreSQL each test gets its own schema (``engine.db.scratch_store``), dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.codes import CodeMaps, load_all
from engine.db import make_engine, scratch_store
from engine.migrate import upgrade
from engine.settings import Settings

BACKEND = os.environ.get("SCR_TEST_DATABASE", "sqlite")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    with scratch_store(BACKEND, tmp_path) as url:
        yield url


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
