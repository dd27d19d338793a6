"""An append returns only when its entries are durable, and a failed flush fails the access.

On PostgreSQL the append's own transaction commits without waiting for the WAL (so the head
lock is free sooner) and a second, synchronous commit on the same connection makes it durable
before the append returns. These tests pin that order, show the flush step really reaches the
disk past an earlier asynchronous commit, and show a flush that fails releases nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text

import audit.writer
from audit import AuditUnavailable, Writer, disclose, verify
from audit.writer import append, append_batch, durable
from engine.db import make_engine
from tests.audit.trail import entry
from tests.conftest import BACKEND

pg_only = pytest.mark.skipif(BACKEND == "sqlite", reason="needs PostgreSQL (SCR_TEST_DATABASE)")
RECORD = [{"resourceType": "Observation", "id": "o1"}]


def test_an_appended_entry_is_committed_when_append_returns(engine: Engine, db_url: str):
    sealed = Writer(engine).append(entry(1))
    other = make_engine(db_url)
    try:
        with other.connect() as conn:
            seen = conn.execute(text("SELECT seq, hash FROM audit_entry")).one()
    finally:
        other.dispose()
    assert (seen[0], bytes(seen[1])) == (sealed.seq, sealed.hash)


@pg_only
def test_the_append_commits_then_flushes_before_it_returns(engine: Engine, db_url: str):
    """The lock is taken and released in a statement committed on its own (autocommit) that
    does not wait for the WAL, and the synchronous flush follows it, all before ``append``
    hands back."""
    statements: list[tuple[str, bool, Any]] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            asked = params.get("audit_async") if isinstance(params, dict) else None
            statements.append((str(query), self.connection.autocommit, asked))
            return super().execute(query, params, **kwargs)

    recording = make_engine(db_url)
    event.listen(
        recording, "connect", lambda conn, _record: setattr(conn, "cursor_factory", Recording)
    )
    try:
        append(recording, entry(1))
    finally:
        recording.dispose()
    assert statements == [
        (audit.writer._statement({}), True, True), (audit.writer._FLUSH, True, None)
    ]  # fmt: skip
    assert "set_config('synchronous_commit', CASE WHEN %(audit_async)b" in statements[0][0]


def test_a_batch_of_one_is_stored_as_a_batch_of_several_is(engine: Engine):
    """One entry alone and a batch of several store the same columns."""
    append_batch(engine, [entry(1, purpose=None)])
    append_batch(engine, [entry(1, purpose=None), entry(2)])
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {audit.writer._INSERT_COLUMNS} FROM audit_entry ORDER BY seq")
        ).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0][2:10] == rows[1][2:10] and rows[0].purpose is None
    assert verify(engine).intact


@pg_only
def test_the_flush_makes_every_earlier_commit_durable(engine: Engine):
    """An asynchronous commit is not yet on disk; after the flush step the WAL is flushed past
    it. (Taking an xid alone, as ``txid_current()`` does, would not flush anything.)"""
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        driver.execute("CREATE TABLE flush_probe (n int)")
        driver.execute("SET LOCAL synchronous_commit = off")
        driver.execute("INSERT INTO flush_probe VALUES (1)")
        driver.commit()
        written = driver.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        driver.commit()
    finally:
        raw.close()
    durable(engine)
    with engine.connect() as conn:
        flushed = conn.execute(
            text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)"), {"lsn": written}
        ).scalar_one()
    assert flushed


@pg_only
@pytest.mark.parametrize(
    "failing_flush",
    ["SELECT 1 / 0", "SELECT pg_terminate_backend(pg_backend_pid())"],
    ids=["error", "connection-lost"],
)
def test_a_failure_in_the_flush_step_fails_the_append_and_releases_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, failing_flush: str
):
    """The entry was committed, so it stays in the trail (an access that did not happen is
    recorded, never the reverse), but the caller gets an error and the data does not leave;
    the next append carries on the same chain."""
    writer = Writer(engine)
    writer.append(entry(1))
    monkeypatch.setattr(audit.writer, "_FLUSH", failing_flush)
    returned = []
    with pytest.raises(AuditUnavailable):
        returned.append(disclose(writer, entry(2), RECORD))
    assert returned == []
    monkeypatch.undo()

    assert writer.append(entry(3)).seq == 3
    report = verify(engine)
    assert report.intact and report.size == 3


@pg_only
def test_an_entry_appended_inside_a_transaction_leaves_its_commit_synchronous(engine: Engine):
    """The sealing statement turns synchronous commit off only for an append committed on its
    own: inside a caller's transaction (an acknowledgement) the caller's commit still waits
    for the disk, as it promises the other organisation."""
    with engine.begin() as conn:
        audit.writer.append_within(conn, [entry(1)])
        mode = conn.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one()
    assert mode == "on"
    assert verify(engine).intact


@pg_only
def test_with_no_head_row_nothing_of_the_callers_is_kept_either(engine: Engine):
    """The caller's writes ride in the sealing statement, committed on its own: an entry the
    chain cannot number (the head row deleted by the owner) fails the statement whole, so no
    write is kept without the entry that records it."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept_probe (n int)"))
        conn.execute(text("DELETE FROM audit_head"))
    raw = engine.raw_connection()
    try:
        with pytest.raises(AuditUnavailable) as failed:
            probe = {"probe": "INSERT INTO kept_probe VALUES (%(n)s) RETURNING n"}
            audit.writer.commit_with(raw, probe, {"n": 1}, [entry(1), entry(2)])
    finally:
        raw.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kept_probe")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one() == 0
    # Logged as it is (engine.api.app): the database's detail quoted the failing row, the
    # entry's NHS number in it.
    said = str(failed.value)
    assert "head row is missing" in said and entry(1).nhs_number not in said, said
    with engine.begin() as conn, pytest.raises(AuditUnavailable) as within:
        audit.writer.append_within(conn, [entry(3)])
    assert entry(3).nhs_number not in str(within.value)
