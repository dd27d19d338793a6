"""The kept PostgreSQL stores (``tests.stores``): each test must find its store as a new copy of
the template would be, whatever the test before did to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text

from engine.db import make_engine, scratch_store
from tests.conftest import BACKEND
from tests.stores import KeptStores

pytestmark = pytest.mark.skipif(BACKEND == "sqlite", reason="SQLite stores are file copies")

#: What a test could leave that a new copy would not have.
_STATE = {
    "heads": "SELECT id, seq FROM audit_head ORDER BY id",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1",
    "statistics": "SELECT tablename, attname, n_distinct FROM pg_stats "
    "WHERE schemaname = 'public' ORDER BY 1, 2",
    "counted": "SELECT relname, relpages, reltuples FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace ORDER BY relname",
    "sizes": "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname",
    "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
}


def _state(conn: Connection) -> dict[str, list[tuple[object, ...]]]:
    tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                               "ORDER BY 1")).scalars()  # fmt: skip
    rows = [(t, conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()) for t in tables]
    return {"rows": rows} | {
        name: [tuple(r) for r in conn.execute(text(q))] for name, q in _STATE.items()
    }


def _state_of(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return _state(conn)
    finally:
        engine.dispose()


def _write(url: str, entries: int) -> None:
    """What a test might do: append to the trail, advance every sequence, analyse."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_entry (seq, time, request_id, action, outcome, user_id, org, body,"
            " prev_hash, hash) SELECT s.seq + g, now(), 'r', 'read', 'permit', 'u', 'Y00001', "
            "convert_to(repeat('x', 500), 'UTF8'), 'p', 'h' FROM generate_series(1, :n) g, "
            "(SELECT coalesce(max(seq), 0) AS seq FROM audit_entry) s"
        ), {"n": entries})  # fmt: skip
        conn.execute(text("UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_entry)"))
        conn.execute(text("SELECT nextval(format('%I', sequencename)) FROM pg_sequences"))
        conn.execute(text("ANALYZE"))
    engine.dispose()


def _as_copied(
    state: dict[str, list[tuple[object, ...]]], copy: dict[str, list[tuple[object, ...]]]
) -> bool:
    """``state`` is a copy's but for its tables' sizes, which are no larger: the template's
    rows, copied back, may take less room than they did as written (so plan the same or
    better), never more."""
    sizes = dict(state.pop("sizes")), dict(copy["sizes"])
    return state == {k: v for k, v in copy.items() if k != "sizes"} and all(
        sizes[0][t] <= size for t, size in sizes[1].items()
    )


@pytest.fixture
def kept_store(kept_stores: KeptStores, migrated: str) -> Iterator[tuple[str, Engine]]:
    url = kept_stores.fresh(migrated)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


@pytest.mark.parametrize("entries", [3, 3000], ids=["a-few-rows", "a-grown-table"])
def test_rows_sequences_sizes_and_statistics_a_test_leaves_are_gone_from_the_next_store(
    kept_stores: KeptStores, migrated: str, kept_store: tuple[str, Engine], entries: int
) -> None:
    url, _ = kept_store
    new = _state_of(url)
    _write(url, entries)
    assert _state_of(url) != new
    assert kept_stores.fresh(migrated) == url  # the same database, put back
    assert _state_of(url) == new


def test_a_templates_own_statistics_are_kept_and_a_store_whose_changed_is_made_again(
    kept_stores: KeptStores, migrated: str, tmp_path: Path
) -> None:
    with scratch_store(BACKEND, tmp_path, template=migrated) as template:
        _write(template, 20)  # a template analysed, as an ingest analyses
        first = kept_stores.fresh(template)
        new = _state_of(first)
        assert new["statistics"]
        assert kept_stores.fresh(template) == first and _as_copied(_state_of(first), new)
        _write(first, 2000)
        again = kept_stores.fresh(template)
        assert again != first and _state_of(again) == new
        kept_stores.close()  # before the template is dropped


def test_a_store_whose_schema_a_test_changed_is_made_again(
    kept_stores: KeptStores, migrated: str, kept_store: tuple[str, Engine]
) -> None:
    url, engine = kept_store
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entry_append_only ON audit_entry"))
    engine.dispose()
    again = kept_stores.fresh(migrated)
    assert again != url
    assert _state_of(again)["triggers"] == [
        ("audit_entry_append_only",),
        ("audit_entry_no_truncate",),
    ]


def test_a_connection_a_test_left_in_a_transaction_does_not_hold_the_next_store(
    kept_stores: KeptStores, migrated: str, kept_store: tuple[str, Engine]
) -> None:
    url, engine = kept_store
    conn = engine.connect()
    conn.execute(text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))  # and never ends
    assert kept_stores.fresh(migrated) == url
    conn.invalidate()  # ended by the server
    engine.dispose()


def test_between_tests_a_store_lets_no_one_in(
    kept_stores: KeptStores, migrated: str, kept_store: tuple[str, Engine]
) -> None:
    """A pool or thread a test left behind fails, as it did when the store was dropped, rather
    than write into the next test's store."""
    url, _ = kept_store
    kept_stores.shut(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(dsn)
    assert kept_stores.fresh(migrated) == url
    psycopg.connect(dsn).close()
