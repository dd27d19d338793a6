"""The kept PostgreSQL stores (``tests.stores``): each test must find its store as a new copy of
the template would be, whatever the test before did to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text

from engine.db import make_engine, scratch_store
from tests.conftest import BACKEND
from tests.stores import KeptStores

#: What a test could leave that a new copy would not have.
_STATE = {
    "heads": "SELECT id, seq FROM audit_head ORDER BY id",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1",
    "statistics": "SELECT tablename, attname, n_distinct FROM pg_stats "
    "WHERE schemaname = 'public' ORDER BY 1, 2",
    "counted": "SELECT relname, relpages, reltuples FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace ORDER BY relname",
    "counters": "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
    "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 1",
    "sizes": "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname",
    "triggers": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
    "oid": "SELECT oid FROM pg_database WHERE datname = current_database()",
}
State = dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def stores(kept_stores: KeptStores | None) -> Iterator[KeptStores]:
    """Kept stores of the test's own, so that none of the run's is dropped or made again."""
    if kept_stores is None:
        pytest.skip("no kept stores: SQLite, or a PostgreSQL role that is no superuser")
    own = KeptStores(BACKEND)
    yield own
    own.close()


def _state_of(url: str) -> State:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return _state(conn)
    finally:
        engine.dispose()


def _state(conn: Connection) -> State:
    tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                               "ORDER BY 1")).scalars()  # fmt: skip
    rows = [(t, conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()) for t in tables]
    return {"rows": rows} | {
        name: [tuple(r) for r in conn.execute(text(q))] for name, q in _STATE.items()
    }


def _as_copied(state: State, copy: State) -> bool:
    """``state`` is a copy's but for its tables' sizes, which are no larger: the template's
    rows, copied back, may take less room than they did as written, never more."""
    sizes, copied = dict(state["sizes"]), dict(copy["sizes"])
    return {k: v for k, v in state.items() if k != "sizes"} == {
        k: v for k, v in copy.items() if k != "sizes"
    } and all(sizes[t] <= size for t, size in copied.items())


def _write(url: str, entries: int) -> None:
    """What a test might do: append to the trail, link people, advance every sequence, and
    analyse."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_entry (seq, time, request_id, action, outcome, user_id, org, body,"
            " prev_hash, hash) SELECT s.seq + g, now(), 'r', 'read', 'permit', 'u', 'Y00001', "
            "convert_to(repeat('x', 500), 'UTF8'), 'p', 'h' FROM generate_series(1, :n) g, "
            "(SELECT coalesce(max(seq), 0) AS seq FROM audit_entry) s"
        ), {"n": entries})  # fmt: skip
        conn.execute(text("UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_entry)"))
        # person_link refers to person: the person table grown is truncated with it
        conn.execute(text(
            "INSERT INTO person (id, created_at) SELECT 'p-' || s.n || '-' || g, now() "
            "FROM generate_series(1, :n) g, (SELECT count(*) AS n FROM person) s"
        ), {"n": entries})  # fmt: skip
        conn.execute(text(
            "INSERT INTO person_link (patient_id, person_id, linked_at, rule) "
            "SELECT 'Patient/' || id, id, now(), 'new' FROM person WHERE id LIKE 'p-%' LIMIT 1 "
            "ON CONFLICT DO NOTHING"
        ))  # fmt: skip
        conn.execute(text("SELECT nextval(format('%I', sequencename)) FROM pg_sequences"))
        conn.execute(text("ANALYZE"))
    engine.dispose()


@pytest.mark.parametrize("entries", [3, 3000], ids=["a-few-rows", "grown-tables"])
def test_rows_sequences_sizes_and_statistics_a_test_leaves_are_gone_from_the_next_store(
    stores: KeptStores, migrated: str, entries: int
) -> None:
    url = stores.fresh(migrated)
    new = _state_of(url)
    _write(url, entries)
    assert _state_of(url) != new
    stores.shut(url)
    again = stores.fresh(migrated)
    assert again != url and _as_copied(_state_of(again), new)  # the same database, put back


def test_a_templates_own_statistics_are_kept_and_a_store_whose_changed_is_made_again(
    stores: KeptStores, migrated: str, tmp_path: Path
) -> None:
    with scratch_store(BACKEND, tmp_path, template=migrated) as template:
        _write(template, 20)  # a template analysed, as an ingest analyses
        first = stores.fresh(template)
        new = _state_of(first)
        assert new["statistics"]
        stores.shut(first)
        second = stores.fresh(template)
        assert _as_copied(_state_of(second), new)
        _write(second, 2000)
        stores.shut(second)
        third = _state_of(stores.fresh(template))
        assert third["oid"] != new["oid"]  # made again
        assert {k: v for k, v in third.items() if k != "oid"} == {
            k: v for k, v in new.items() if k != "oid"
        }
        stores.close()  # before the template is dropped


def test_a_store_whose_schema_a_test_changed_is_made_again(
    stores: KeptStores, migrated: str
) -> None:
    url = stores.fresh(migrated)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entry_append_only ON audit_entry"))
    engine.dispose()
    before = _state_of(url)["oid"]
    again = _state_of(stores.fresh(migrated))
    assert again["oid"] != before
    assert again["triggers"] == [("audit_entry_append_only",), ("audit_entry_no_truncate",)]


def test_a_connection_a_test_left_in_a_transaction_does_not_hold_the_next_store(
    stores: KeptStores, migrated: str
) -> None:
    url = stores.fresh(migrated)
    oid = _state_of(url)["oid"]
    engine = make_engine(url)
    conn = engine.connect()
    conn.execute(text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))  # and never ends
    stores.shut(url)
    assert _state_of(stores.fresh(migrated))["oid"] == oid
    conn.invalidate()  # ended by the server
    engine.dispose()


def test_after_a_test_its_store_is_out_of_reach(stores: KeptStores, migrated: str) -> None:
    """A pool or thread a test left behind fails, as it did when the store was dropped, rather
    than write into the next test's store: the next test's has another name."""
    url = stores.fresh(migrated)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    stores.shut(url)
    with pytest.raises(psycopg.OperationalError):  # no database has that name now
        psycopg.connect(dsn)
    stores.fresh(migrated)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn)


def test_a_store_that_could_not_be_made_is_made_at_the_next_test(
    stores: KeptStores, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed CREATE (the template busy a moment) fails that test alone."""
    made = stores._admin

    def busy(statement: Any, params: Any = None) -> None:
        if "CREATE DATABASE" in repr(statement):
            raise psycopg.errors.ObjectInUse("source database is being accessed by other users")
        made(statement, params)

    monkeypatch.setattr(stores, "_admin", busy)
    with pytest.raises(psycopg.errors.ObjectInUse):
        stores.fresh(migrated)
    monkeypatch.undo()
    assert _state_of(stores.fresh(migrated))["rows"]
