"""The kept PostgreSQL stores (``tests.stores``): each test must find its store as a new copy of
the template would be, whatever the test before did to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from engine.db import make_engine
from tests.conftest import BACKEND
from tests.stores import KeptStores

pytestmark = pytest.mark.skipif(BACKEND == "sqlite", reason="SQLite stores are file copies")

#: What a test could leave that a new copy would not have.
_STATE = {
    "heads": "SELECT id, seq FROM audit_head ORDER BY id",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1",
    "statistics": "SELECT count(*) FROM pg_stats WHERE schemaname = 'public'",
    "counted": "SELECT relname, relpages, reltuples FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace ORDER BY relname",
    "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
}


def _state(conn: Connection) -> dict[str, list[tuple[object, ...]]]:
    tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                               "ORDER BY 1")).scalars()  # fmt: skip
    rows = [(t, conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()) for t in tables]
    return {"rows": rows} | {
        name: [tuple(r) for r in conn.execute(text(q))] for name, q in _STATE.items()
    }


@pytest.fixture
def store(kept_stores: KeptStores, migrated: str) -> Iterator[tuple[str, Engine]]:
    url = kept_stores.fresh(migrated)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def _as_new(kept_stores: KeptStores, migrated: str) -> dict[str, list[tuple[object, ...]]]:
    """The state of a store just made from the template."""
    engine = make_engine(kept_stores.fresh(migrated))
    try:
        with engine.connect() as conn:
            return _state(conn)
    finally:
        engine.dispose()


def test_rows_sequences_and_statistics_a_test_leaves_are_gone_from_the_next_store(
    kept_stores: KeptStores, migrated: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    with engine.connect() as conn:
        new = _state(conn)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_entry (seq, time, request_id, action, outcome, user_id, org, body,"
            " prev_hash, hash) SELECT g, now(), 'r', 'read', 'permit', 'u', 'Y00001', '{}', "
            "'p', 'h' FROM generate_series(1, 50) g"
        ))  # fmt: skip
        conn.execute(text("UPDATE audit_head SET seq = 50"))
        conn.execute(text("SELECT nextval(sequencename::regclass) FROM pg_sequences"))
        conn.execute(text("ANALYZE"))
    assert kept_stores.fresh(migrated) == url  # the same database, put back
    engine.dispose()  # its connections were ended, as a forced drop ends them
    with engine.connect() as conn:
        assert _state(conn) == new


def test_a_store_whose_schema_a_test_changed_is_made_again(
    kept_stores: KeptStores, migrated: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entry_append_only ON audit_entry"))
    engine.dispose()
    again = kept_stores.fresh(migrated)
    assert again != url
    assert _as_new(kept_stores, migrated)["triggers"] == [
        ("audit_entry_append_only",),
        ("audit_entry_no_truncate",),
    ]


def test_a_connection_a_test_left_in_a_transaction_does_not_hold_the_next_store(
    kept_stores: KeptStores, migrated: str, store: tuple[str, Engine]
) -> None:
    url, engine = store
    conn = engine.connect()
    conn.execute(text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))  # and never ends
    assert kept_stores.fresh(migrated) == url
    conn.invalidate()  # ended by the server
    engine.dispose()
