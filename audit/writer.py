"""The append: durable, serialised, gapless; a failure raises and the access must fail.

Each append is one short transaction that locks the head row first (``SELECT ... FOR UPDATE``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), reads the last sequence number and hash, inserts
the chained entries and moves the head. Writers on any number of processes therefore take turns,
and the sequence has no gap: a transaction that fails rolls back its number with it. Nothing is
returned until the entries are durable.

On PostgreSQL the append's transaction commits without waiting for its WAL flush, so the head
lock is released as soon as the entries are written and the next writer need not queue behind
this one's flush; the same connection then commits a tiny synchronous transaction, which
returns only once the WAL is on disk up to and past that commit (see :func:`durable`). WAL is
written in order, so a crash can only lose a tail of the trail whose appends never returned:
the chain stays whole, and those callers got an error and released nothing.

Under load, :class:`Writer` batches: while one append is in flight, entries arriving on other
threads of the process queue up and go together in the next transaction (group commit), so the
lock is taken once per batch rather than once per entry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, String, text

from audit.chain import Sealed, seal
from audit.entry import AuditEntry, encodable
from audit.tables import AuditRow
from engine.db import write_turn

_INSERT_COLUMNS = (
    "seq, time, request_id, action, outcome, user_id, org, purpose, patient_id, nhs_number, "
    "body, prev_hash, hash"
)
#: Largest batch one transaction takes; more waits for the next.
MAX_BATCH = 256


#: Each searchable column's width. An entry's value is made storable, in the entry itself (so
#: its body and its column still agree), rather than fail the append, and with it every entry
#: batched beside it: the request id, purpose and identities come from requests and tokens.
#: So is any string the body could not encode (a lone surrogate), in any field.
_WIDTHS = {
    c.name: c.type.length
    for c in AuditRow.__table__.columns
    if isinstance(c.type, String) and c.type.length
}
#: PostgreSQL stores no NUL in text; the replacement character shows that one was there.
_NUL, _SHOWN_FOR_NUL = "\x00", "\ufffd"


def _fitted(entry: AuditEntry) -> AuditEntry:
    """``entry`` with each searchable value cut to its column and any NUL replaced, and every
    string in it encodable (:func:`audit.entry.encodable`)."""
    entry = encodable(entry)
    over: dict[str, Any] = {
        name: value.replace(_NUL, _SHOWN_FOR_NUL)[:width]
        for name, width in _WIDTHS.items()
        if isinstance(value := getattr(entry, name, None), str)
        and (len(value) > width or _NUL in value)
    }
    return replace(entry, **over) if over else entry


class AuditUnavailable(RuntimeError):
    """The audit entry could not be written, so the access it records must not happen (503)."""


#: Lock and read the head; ``set_config(..., true)`` is ``SET LOCAL``, one statement fewer.
_PG_HEAD = (
    "SELECT seq, hash, set_config('synchronous_commit', 'off', true) "
    "FROM audit_head WHERE id = 1 FOR UPDATE"
)
_MOVE_HEAD = "WITH moved AS (UPDATE audit_head SET seq = %b, hash = %b WHERE id = 1) "
_TYPES = ("bigint", "timestamptz", *["text"] * 8, "bytea", "bytea", "bytea")
#: One row per entry, one array per column: the statement's text and parameter count do not
#: depend on the batch size, so it is prepared once and its parameters go in binary.
_PG_INSERT = (
    f"{_MOVE_HEAD}INSERT INTO audit_entry ({_INSERT_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"%b::{t}[]" for t in _TYPES)
    + ")"
)
#: A batch of one, the usual case below full load: the row as values, with no array to build
#: (about 0.1 ms of psycopg's CPU less per append).
_PG_INSERT_ONE = (
    f"{_MOVE_HEAD}INSERT INTO audit_entry ({_INSERT_COLUMNS}) VALUES ("
    + ", ".join(f"%b::{t}" for t in _TYPES)
    + ")"
)
#: A transaction that writes WAL (the message) under an xid commits with a WAL flush, unless
#: ``synchronous_commit`` is off; it is set on for this transaction only, and a stronger
#: setting (waiting for standbys) is kept. The flush covers every earlier WAL record, so all
#: commits before this one are durable when it returns. (A transaction that only takes an xid,
#: such as ``SELECT txid_current()``, writes no WAL of its own and commits without a flush.)
_FLUSH = (
    "SELECT set_config('synchronous_commit', CASE current_setting('synchronous_commit') "
    "WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true), "
    "pg_logical_emit_message(true, 'scr.audit.flush', '')"
)


def _pg_chain(cur: Any, entries: Sequence[AuditEntry], head: Sequence[Any]) -> list[Sealed]:
    """Seal ``entries`` on after ``head`` (locked by the caller), insert them, move the head."""
    sealed = seal(entries, head[0], bytes(head[1]), datetime.now(UTC))
    moved = [sealed[-1].seq, sealed[-1].hash]
    if len(sealed) == 1:
        cur.execute(_PG_INSERT_ONE, [*moved, *sealed[0].row().values()])
    else:
        columns = [list(c) for c in zip(*(s.row().values() for s in sealed), strict=True)]
        cur.execute(_PG_INSERT, [*moved, *columns])
    return sealed


def _pg_append(raw: Any, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Lock, read the head, then in one round trip: insert, commit (asynchronously), flush.

    The flush is a separate transaction sent after the COMMIT, so the head lock is free while
    the WAL reaches the disk; the append returns only when the flush has, so no entry is
    reported written before it is durable. The statements go in a pipeline, two round trips in
    all: the lock-held part is as short as the network allows.
    """
    driver: Any = raw.driver_connection
    driver.autocommit = True  # BEGIN and COMMIT are sent explicitly, in the pipeline
    try:
        with driver.pipeline() as pipe, driver.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(_PG_HEAD)
            pipe.sync()
            head = cur.fetchone()
            if head is None:
                raise AuditUnavailable("the audit head row is missing")
            sealed = _pg_chain(cur, entries, head)
            cur.execute("COMMIT")
            cur.execute(_FLUSH)
    except BaseException:
        if not driver.closed:  # a lost connection has nothing to roll back; its error stands
            raw.rollback()
        raise
    finally:
        if not driver.closed:
            driver.autocommit = False
    return sealed


def durable(engine: Engine) -> None:
    """Make every commit so far durable, as an append does before it returns.

    A reader can see an append's entries between its commit and its flush; one that hands on
    what it saw as final (a signed checkpoint) calls this first, so a crash cannot take back an
    entry it vouched for. SQLite appends are durable when they commit, so there is nothing to do.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        conn.execute(text(_FLUSH))
        conn.commit()


def _sqlite_chain(cur: Any, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Read the head, seal ``entries`` on after it, insert them, move the head: in a
    transaction that already holds the file's write lock."""
    head = cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        raise AuditUnavailable("the audit head row is missing")
    sealed = seal(entries, head[0], bytes(head[1]), datetime.now(UTC))
    rows = [list(s.row().values()) for s in sealed]
    for r in rows:
        r[1] = r[1].strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores a DateTime
    cur.executemany(
        f"INSERT INTO audit_entry ({_INSERT_COLUMNS}) VALUES ({', '.join(['?'] * 13)})", rows
    )
    cur.execute(
        "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (sealed[-1].seq, sealed[-1].hash)
    )
    return sealed


def _sqlite_append(raw: Any, entries: Sequence[AuditEntry]) -> list[Sealed]:
    cur = raw.cursor()
    try:
        # The store runs with synchronous=NORMAL (engine/db.py), where a WAL commit can be lost
        # to a power cut; an audit commit must not be, so this one syncs. IMMEDIATE takes the
        # write lock before the head is read, so two writers cannot both read the same head (a
        # deferred transaction would fail to upgrade its lock instead).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("BEGIN IMMEDIATE")
        sealed = _sqlite_chain(cur, entries)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
    return sealed


def append_batch(engine: Engine, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Append ``entries`` in one transaction, committed and durable before this returns."""
    if not entries:
        return []
    entries = [_fitted(e) for e in entries]
    try:
        raw = engine.raw_connection()
        try:
            if engine.dialect.name == "postgresql":
                return _pg_append(raw, entries)
            with write_turn(engine):
                return _sqlite_append(raw, entries)
        finally:
            raw.close()
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {exc}") from exc


def append_within(conn: Connection, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Append ``entries`` in the transaction open on ``conn``, so that they commit with the
    caller's own writes or not at all: a message is accepted with its audit entry, and a
    message that loses a race leaves no entry saying it was accepted.

    The caller writes first and then appends (on SQLite its first write has taken the file's
    write lock, under :func:`engine.db.write_turn`; on PostgreSQL the head row stays locked
    from here to the commit, so the append comes last), and commits durably
    (:func:`engine.db.durable_write`) before anything is answered.
    """
    raw: Any = conn.connection.driver_connection
    entries = [_fitted(e) for e in entries]
    try:
        if conn.dialect.name != "postgresql":
            return _sqlite_chain(raw.cursor(), entries)
        with raw.cursor() as cur:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            head = cur.fetchone()
            if head is None:
                raise AuditUnavailable("the audit head row is missing")
            return _pg_chain(cur, entries, head)
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {exc}") from exc


def append(engine: Engine, entry: AuditEntry) -> Sealed:
    """Append one entry on its own (no batching): durable before this returns."""
    return append_batch(engine, [entry])[0]


class _Pending:
    __slots__ = ("entry", "error", "sealed")

    def __init__(self, entry: AuditEntry) -> None:
        self.entry = entry
        self.sealed: Sealed | None = None
        self.error: BaseException | None = None


class Writer:
    """Thread-safe appends with group commit: one writer per process and store.

    The first caller to find no transaction in flight writes everything queued so far (its own
    entry included) and wakes the rest; a failure fails every entry of that batch.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._busy = False

    def append(self, entry: AuditEntry) -> Sealed:
        mine = _Pending(entry)
        with self._cond:
            self._queue.append(mine)
            while mine.sealed is None and mine.error is None:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                self._cond.release()
                try:
                    sealed, error = self._write(batch)
                finally:
                    self._cond.acquire()
                for i, p in enumerate(batch):
                    if error is None:
                        p.sealed = sealed[i]
                    else:
                        p.error = error
                self._busy = False
                self._cond.notify_all()
                if error is not None and not isinstance(error, Exception):
                    raise error  # interrupted: the batch has failed, now let the interrupt out
        if mine.error is not None:
            raise AuditUnavailable("the audit entry could not be written") from mine.error
        if mine.sealed is None:
            raise AuditUnavailable("the audit entry was not written")
        return mine.sealed

    def _write(self, batch: list[_Pending]) -> tuple[list[Sealed], BaseException | None]:
        """Never raises, so the batch is always marked and the next writer always woken."""
        try:
            return append_batch(self._engine, [p.entry for p in batch]), None
        except BaseException as exc:
            return [], exc
