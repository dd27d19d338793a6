"""Shared fixtures: a fresh migrated store per test on the backend chosen by SCR_TEST_DATABASE.

``SCR_TEST_DATABASE`` is ``sqlite`` (default: a file in the test's tmp dir) or a PostgreSQL URL;
on PostgreSQL each worker keeps a database per template, put back to the template before each
test (``tests.stores``). Each store is a copy of one migrated once per run; a test of the
migrations themselves takes an empty store from ``engine.db.scratch_store``.
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
from tests.stores import KeptStores, superuser

BACKEND = os.environ.get("SCR_TEST_DATABASE", "sqlite")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_store(BACKEND, tmp_path_factory.mktemp("migrated")) as url:
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url


@pytest.fixture(scope="session")
def kept_stores() -> Iterator[KeptStores | None]:
    """On PostgreSQL, this worker's kept stores (``tests.stores``); none on SQLite, where a
    copy is a file copy, or for a role that is no superuser."""
    if BACKEND == "sqlite" or not superuser(BACKEND):
        yield None
        return
    stores = KeptStores(BACKEND)
    yield stores
    stores.close()


@pytest.fixture
def db_url(
    request: pytest.FixtureRequest,
    migrated: str,
    tmp_path: Path,
    kept_stores: KeptStores | None,
) -> Iterator[str]:
    """A copy of ``migrated``, or of ``loaded`` for a test whose fixtures ask for it (the API
    tests' ``store``, in ``tests/api/conftest.py``)."""
    template = request.getfixturevalue("loaded") if "loaded" in request.fixturenames else migrated
    if kept_stores is not None:
        url = kept_stores.fresh(template)
        yield url
        kept_stores.shut(url)
        return
    with scratch_store(BACKEND, tmp_path, template=template) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
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
