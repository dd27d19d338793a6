"""The store's sessions: SQLite writers take turns without polling and sync what others are told
was kept; PostgreSQL plans once and hands reads their results in binary."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from engine import db
from engine.db import durable_write, make_engine, read_only, synced_turn
from engine.models import IngestRun, QuarantineItem
from tests.factories import nhs_numbers

#: Holds the turn on the store named by argv[1] until its stdin closes.
_HOLDER = """
import sys
from engine.db import make_engine, synced_turn
engine = make_engine(sys.argv[1])
with engine.connect() as conn, synced_turn(engine, conn.connection):
    print("held", flush=True)
    sys.stdin.read()
"""


def _sqlite(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'turns.db'}")


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """The turn, on a connection of its own."""
    with engine.connect() as conn, synced_turn(engine, conn.connection):
        yield


def test_a_write_inside_another_on_the_same_thread_does_not_wait_on_itself(
    tmp_path: Path,
) -> None:
    engine, again = _sqlite(tmp_path), _sqlite(tmp_path)  # two engines, one file
    with write_turn(engine), write_turn(again), write_turn(engine):
        pass


def test_a_thread_waits_for_another_threads_turn(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    order: list[str] = []
    with write_turn(engine):
        waiter = threading.Thread(target=lambda: _take(engine, order, "second"))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()
        order.append("first")
    waiter.join(10)
    assert order == ["first", "second"]


def test_a_process_waits_for_another_processs_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=Path(__file__).parents[2],
    ) as holder:  # fmt: skip
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        order: list[str] = []
        waiter = threading.Thread(target=lambda: _take(make_engine(url), order, "mine"))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "took the turn while another process held it"
        holder.stdin.close()
        waiter.join(10)
        assert order == ["mine"]


def _take(engine: Engine, order: list[str], name: str) -> None:
    with write_turn(engine):
        order.append(name)


def test_postgresql_keeps_one_generic_plan_per_prepared_statement(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    with engine.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"


def test_postgresql_compiles_no_statement_as_it_runs(engine: Engine) -> None:
    """JIT compiles a statement whose estimated cost is high, at every execution: half a
    second for a facts statement that runs in half a millisecond, costed on a guess."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    costly = "SELECT sum(n) FROM generate_series(1, 100000000) n"
    with engine.connect() as conn:
        plan = "\n".join(conn.execute(text(f"EXPLAIN {costly}")).scalars())
        threshold = float(conn.execute(text("SHOW jit_above_cost")).scalar_one())
    assert float(plan.split("..")[1].split()[0]) > threshold, plan  # costed to be compiled
    assert "JIT" not in plan, plan


def _format(conn: Connection) -> int:
    """The result format of a new cursor on ``conn``'s driver connection (1: binary)."""
    return int(conn.connection.driver_connection.cursor().format)  # type: ignore[union-attr]


def test_reads_come_in_binary_and_nothing_after_them_does(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL wire format")
    assert read_only(engine, lambda conn: (_format(conn), conn.execute(text(
        "SELECT '\\x00ff'::bytea")).scalar())) == (1, b"\x00\xff")  # fmt: skip

    def fails(conn: Connection) -> None:
        raise RuntimeError("the read failed")

    with pytest.raises(RuntimeError):
        read_only(engine, fails)
    for _ in range(engine.pool.size() + 1):  # every pooled connection the reads used
        with engine.connect() as conn:
            assert _format(conn) == 0


def test_a_database_error_never_shows_the_values_bound_to_the_statement(engine: Engine) -> None:
    number = next(nhs_numbers(999_800_000))
    with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
        conn.execute(text("SELECT nhs_number FROM no_such_table WHERE nhs_number = :n"),
                     {"n": number})  # fmt: skip
    assert "no_such_table" in str(failed.value)  # the error still says what went wrong
    assert number not in str(failed.value)


def _synchronous(conn: Connection) -> int:
    level: int = conn.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0]
    return level


def _autocheckpoint(conn: Connection) -> int:
    pages: int = conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[
        0
    ]
    return pages


def test_a_durable_write_on_sqlite_syncs_its_commit_and_no_other(tmp_path: Path) -> None:
    """An accepted message is answered as kept; SQLite's ``NORMAL`` could lose it to a power
    cut, so its transaction commits under ``FULL`` (2), with no checkpoint in it, and the
    connection goes back to ``NORMAL`` (1) and checkpointing for everything after, even when
    the write fails."""
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.db'}", pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (n INTEGER PRIMARY KEY)"))
    with durable_write(engine) as conn:
        assert (_synchronous(conn), _autocheckpoint(conn)) == (2, 0)
        conn.execute(text("INSERT INTO kept VALUES (1)"))
    with pytest.raises(DBAPIError), durable_write(engine) as conn:
        conn.execute(text("INSERT INTO kept VALUES (1)"))
    with engine.connect() as conn:
        assert (_synchronous(conn), _autocheckpoint(conn)) == (1, 1000)
        assert conn.execute(text("SELECT count(*) FROM kept")).scalar() == 1
    engine.dispose()


def test_durable_writers_checkpoint_after_their_turn_every_so_many_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No commit in a turn checkpoints (it would hold every other writer while the WAL is
    copied); the writer does, after its turn, every ``CHECKPOINT_EVERY`` commits, so the WAL
    is still copied into the database file as it grows."""
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 3)
    path = tmp_path / "checkpointed.db"
    engine = make_engine(f"sqlite:///{path}", pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (n INTEGER PRIMARY KEY, blob BLOB)"))
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    empty = path.stat().st_size
    sizes = []
    for n in range(3):
        with durable_write(engine) as conn:
            conn.execute(text("INSERT INTO kept VALUES (:n, zeroblob(200000))"), {"n": n})
        sizes.append(path.stat().st_size)
    assert sizes[0] == sizes[1] == empty  # in the WAL alone
    assert sizes[2] > empty + 3 * 200_000  # copied in after the third commit's turn
    engine.dispose()


def test_a_quarantined_record_with_a_lone_surrogate_or_a_nul_is_stored(engine: Engine) -> None:
    """A stray byte in a CSV column's name reaches the quarantined record as a lone surrogate,
    which no JSON writer encodes: the record must be kept (the surrogate as U+FFFD, a NUL as
    sent) rather than fail the write of its run."""
    record = {"fields": {"NHSNumber": "123", "Note\udc81": "x\x00y"}, "read_issues": []}
    when = datetime(2024, 1, 1, tzinfo=UTC)
    run = {"id": "r1", "kind": "systmone", "location": "x", "started_at": when, "status": "running"}
    row = {"run_id": "r1", "kind": "systmone", "source_key": "k", "file": "f.csv", "line": 2,
           "field": "NHSNumber", "reason": "bad", "record": record, "status": "open",
           "created_at": when}  # fmt: skip
    q = QuarantineItem.__table__
    with engine.begin() as conn:
        conn.execute(insert(IngestRun.__table__), run)
        conn.execute(insert(q), row)
        kept = conn.execute(select(q.c.record)).scalar_one()
    assert kept["fields"] == {"NHSNumber": "123", "Note\ufffd": "x\x00y"}


def test_a_checkpoint_that_fails_after_a_commit_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The commit before it is on disk: telling the writer it failed would have a kept
    message answered as refused."""
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 1)
    engine = make_engine(f"sqlite:///{tmp_path / 'failing.db'}", pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (n INTEGER PRIMARY KEY)"))

    class Failing:
        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def execute(self, sql: str) -> Any:
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("disk I/O error")
            return self.cursor.execute(sql)

        def close(self) -> None:
            self.cursor.close()

    class Raw:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def cursor(self) -> Failing:
            return Failing(self.raw.cursor())

    with engine.connect() as conn:
        with synced_turn(engine, Raw(conn.connection)):
            conn.execute(text("INSERT INTO kept VALUES (1)"))
            conn.commit()
        assert conn.execute(text("SELECT count(*) FROM kept")).scalar() == 1
    assert "disk I/O error" in caplog.text
    engine.dispose()
