"""The append: durable, serialised, gapless; a failure raises and the access must fail.

Each append is one short transaction that locks the head row first (``SELECT ... FOR UPDATE``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), reads the last sequence number and hash, inserts
the chained entries and moves the head. Writers on any number of processes therefore take turns,
and the sequence has no gap: a transaction that fails rolls back its number with it. Nothing is
returned until the commit has succeeded.

Under load, :class:`Writer` batches: while one append is in flight, entries arriving on other
threads of the process queue up and go together in the next transaction (group commit), so the
lock is taken once per batch rather than once per entry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from audit.chain import Sealed, seal
from audit.entry import AuditEntry

_INSERT_COLUMNS = (
    "seq, time, request_id, action, outcome, user_id, org, purpose, patient_id, nhs_number, "
    "body, prev_hash, hash"
)
#: Largest batch one transaction takes; more waits for the next.
MAX_BATCH = 256


class AuditUnavailable(RuntimeError):
    """The audit entry could not be written, so the access it records must not happen (503)."""


def _pg_append(raw: Any, entries: Sequence[AuditEntry]) -> list[Sealed]:
    cur = raw.cursor()
    try:
        cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
        head = cur.fetchone()
        if head is None:
            raise AuditUnavailable("the audit head row is missing")
        sealed = seal(entries, head[0], bytes(head[1]), datetime.now(UTC))
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(sealed))
        params: list[Any] = [v for s in sealed for v in s.row().values()]
        cur.execute(
            "WITH moved AS (UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1) "
            f"INSERT INTO audit_entry ({_INSERT_COLUMNS}) VALUES {values}",
            [sealed[-1].seq, sealed[-1].hash, *params],
        )
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.close()
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
            "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
            (sealed[-1].seq, sealed[-1].hash),
        )
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
    return sealed


def append_batch(engine: Engine, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Append ``entries`` in one transaction, committed before this returns."""
    if not entries:
        return []
    try:
        raw = engine.raw_connection()
        try:
            if engine.dialect.name == "postgresql":
                return _pg_append(raw, entries)
            return _sqlite_append(raw, entries)
        finally:
            raw.close()
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {exc}") from exc


def append(engine: Engine, entry: AuditEntry) -> Sealed:
    """Append one entry on its own (no batching): committed before this returns."""
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
