"""One ingest at a time per store; another store in the same database is not held up."""

from __future__ import annotations

import pytest

from engine.db import make_engine, scratch_store
from engine.lock import IngestBusy, ingest_lock
from engine.migrate import upgrade
from tests.conftest import BACKEND


def test_a_second_ingest_on_the_same_store_is_refused(engine):
    with ingest_lock(engine), pytest.raises(IngestBusy), ingest_lock(engine):
        pass
    with ingest_lock(engine):
        pass


def test_another_store_is_not_held_up(engine, tmp_path):
    with scratch_store(BACKEND, tmp_path) as url:
        other = make_engine(url)
        try:
            upgrade(other)
            with ingest_lock(engine), ingest_lock(other):
                pass
        finally:
            other.dispose()
