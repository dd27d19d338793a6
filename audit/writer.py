"""The append: durable, serialised, gapless; a failure raises and the access must fail.

Each append is one short transaction that locks the head row first (``SELECT ... FOR UPDATE``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), reads the last sequence number and hash, inserts
the chained entries and moves the head. Writers on any number of processes therefore take turns,
and the sequence has no gap: a transaction that fails rolls back its number with it. Nothing is
returned until the entries are durable.

On PostgreSQL the database seals each entry itself (:data:`_PG_SEAL`: number, time, hash) in
the statement that inserts it, and the whole transaction goes in one round trip
(:func:`commit_with`), so the head is locked only while the database works, never while the
application is scheduled or holds its GIL. The transaction commits without waiting for its
WAL flush, so the lock is released as soon as the entries are written and the next writer need
not queue behind this one's flush; the same connection then commits a tiny synchronous
transaction, which returns only once the WAL is on disk up to and past that commit (see
:func:`durable`). WAL is written in order, so a crash can only lose a tail of the trail whose
appends never returned: the chain stays whole, and those callers got an error and released
nothing.

Under load, :class:`Writer` batches: while one append is in flight, entries arriving on other
threads of the process queue up and go together in the next transaction (group commit), so the
lock is taken once per batch rather than once per entry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
from sqlalchemy import Connection, Engine, String, text

from audit.chain import Sealed, seal
from audit.entry import PG_TIME_TEXT, AuditEntry, body, encodable, time_text
from audit.tables import AuditRow
from engine.db import error_text, synced_turn

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


#: The body as :func:`audit.entry.body` writes it with a blank sequence number and time, from
#: the sequence number's key: the two values the database stamps (:data:`_PG_SEAL`).
_BLANK_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_BLANK = b'"seq":0,"time":"1970-01-01T00:00:00.000000Z"'
_SEQ_KEY = len(b'"seq":')


def _around(entry: AuditEntry) -> tuple[bytes, bytes]:
    """The body of ``entry`` before its sequence number, and after its time's text.

    Both sit side by side in ``index``, which sorts last; a key's quote cannot occur unescaped
    inside a string, so the last such run of bytes is theirs.
    """
    blank = body(entry, 0, _BLANK_TIME)
    at = blank.rindex(_BLANK)
    return blank[: at + _SEQ_KEY], blank[at + len(_BLANK) - 1 :]


#: The entry fields :data:`_PG_SEAL` takes as text, one array each.
_TEXT = ("request_id", "action", "outcome", "user_id", "org", "purpose", "patient_id",
         "nhs_number")  # fmt: skip
#: Entries sealed by the database, after any data-modifying CTEs of the caller's, in one
#: statement (:func:`_statement`): lock the head; stamp the time (after the lock, so times
#: follow the sequence; one time for the batch, as the writer's clock gives on SQLite); number
#: each entry after the head, complete its body and hash it onto the one before (a recursive
#: CTE, in order); insert them and move the head. Nothing between the lock and the statement's
#: end waits for the application, so in autocommit the head is held only while the database
#: works. The text does not depend on the number of entries (one array per field), so it is
#: prepared once per caller.
#: Every given entry is inserted, sealed or not: with no head row none is numbered, the table
#: refuses a row with no number, and the statement fails whole, the caller's writes with it.
_PG_SEAL = (
    "given AS (SELECT * FROM unnest(%(audit_pre)b::bytea[], %(audit_post)b::bytea[], "
    + ", ".join(f"%(audit_{c})b::text[]" for c in _TEXT)
    + f") WITH ORDINALITY AS g(pre, post, {', '.join(_TEXT)}, n)), "
    "head_row AS (SELECT seq, hash FROM audit_head WHERE id = 1{written} FOR UPDATE), "
    "stamp AS MATERIALIZED (SELECT time, "
    f"to_char(time AT TIME ZONE 'UTC', '{PG_TIME_TEXT}') AS text, "
    "set_config('synchronous_commit', CASE WHEN %(audit_async)b::boolean THEN 'off' "
    "ELSE current_setting('synchronous_commit') END, true) AS commit_mode "
    "FROM (SELECT clock_timestamp() AS time FROM head_row) locked), "
    "chain (n, seq, prev, hash, body) AS ("
    "SELECT 0::bigint, seq, NULL::bytea, hash, NULL::bytea FROM head_row "
    "UNION ALL SELECT g.n, c.seq + 1, c.hash, sha256(c.hash || b.body), b.body "
    "FROM chain c JOIN given g ON g.n = c.n + 1 CROSS JOIN stamp s CROSS JOIN LATERAL "
    "(SELECT g.pre || convert_to((c.seq + 1)::text || ',\"time\":\"' || s.text, 'UTF8') "
    "|| g.post AS body) b), "
    "moved AS (UPDATE audit_head SET seq = last.seq, hash = last.hash "
    "FROM (SELECT seq, hash FROM chain ORDER BY n DESC LIMIT 1) last WHERE audit_head.id = 1) "
    f"INSERT INTO audit_entry ({_INSERT_COLUMNS}) SELECT c.seq, s.time, "
    + ", ".join(f"g.{c}" for c in _TEXT)
    + ", c.body, c.prev, c.hash FROM given g LEFT JOIN chain c USING (n) "
    "LEFT JOIN stamp s ON true RETURNING seq, time, prev_hash, hash"
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


def _statement(writes: Mapping[str, str]) -> str:
    """:data:`_PG_SEAL` after the caller's ``writes`` (a name for each data-modifying
    statement, which returns a row for each it writes), which are done before the head is
    locked: each is counted in a condition of the head's lock, which the database settles
    once, before it reads the head (an unreferenced one would run last). So the statement
    takes its locks as a transaction appending with :func:`append_within` does, its own rows
    first and then the head: one writing a key another holds waits for it without holding the
    head, rather than deadlocking with it (a message whose header id another is writing)."""
    for name, sql in writes.items():
        if not name.isidentifier() or "RETURNING" not in sql.upper():
            raise ValueError(f"a write is a named INSERT ... RETURNING, not {name!r}")
    ctes = "".join(f"{name} AS ({sql}), " for name, sql in writes.items())
    written = "".join(f" AND (SELECT count(*) FROM {name}) >= 0" for name in writes)
    return "WITH RECURSIVE " + ctes + _PG_SEAL.replace("{written}", written)


class _Sealing:
    """Entries (made storable by :func:`_fitted`) as :data:`_PG_SEAL` takes them, and as
    sealed once it has."""

    def __init__(self, entries: Sequence[AuditEntry]) -> None:
        self.entries = entries
        self.around = [_around(e) for e in entries]

    def params(self, asynchronous: bool) -> dict[str, Any]:
        given = {f"audit_{c}": [getattr(e, c) for e in self.entries] for c in _TEXT}
        return given | {
            "audit_pre": [pre for pre, _ in self.around],
            "audit_post": [post for _, post in self.around],
            "audit_async": asynchronous,
        }

    def sealed(self, rows: Sequence[Sequence[Any]]) -> list[Sealed]:
        out = []
        for (seq, time, prev, digest), entry, (pre, post) in zip(
            sorted(rows, key=lambda r: int(r[0])), self.entries, self.around, strict=True
        ):
            time = time.astimezone(UTC)
            data = pre + f'{seq},"time":"{time_text(time)}'.encode() + post
            out.append(Sealed(seq, time, entry, data, bytes(prev), bytes(digest)))
        return out


def commit_with(
    raw: Any, writes: Mapping[str, str], params: Mapping[str, Any], entries: Sequence[AuditEntry]
) -> list[Sealed]:
    """PostgreSQL: the caller's ``writes`` (data-modifying statements by name, each
    ``INSERT ... RETURNING`` something, with ``params``) and the ``entries`` recording them,
    in one statement committed on its own and durable before this returns.

    The statement commits without waiting for the WAL, so the head lock is free at once; the
    synchronous flush that follows returns only once the WAL is on disk up to and past that
    commit. WAL is written in order, so a crash can only lose a tail of the trail whose appends
    never returned. An integrity error of the caller's (a duplicate key) is raised as the
    driver's, and nothing is kept; any other failure is :class:`AuditUnavailable`. A failed
    flush comes after the commit, so what was committed stays (the trail then records an
    access that did not happen, never the reverse) and the caller is told it failed.
    """
    driver: Any = raw.driver_connection
    sealing = _Sealing([_fitted(e) for e in entries])
    driver.autocommit = True  # the statement is its own transaction
    try:
        with driver.cursor() as cur:
            cur.execute(_statement(writes), {**params, **sealing.params(asynchronous=True)})
            sealed = sealing.sealed(cur.fetchall())
            cur.execute(_FLUSH)
        return sealed
    except Exception as exc:
        if isinstance(exc, AuditUnavailable) or _their_integrity(exc):
            raise
        raise AuditUnavailable(f"the audit entry could not be written: {_reason(exc)}") from exc
    finally:
        if not driver.closed:
            driver.autocommit = False


def _reason(exc: Exception) -> str:
    """Why an append failed, fit for a log (:func:`engine.db.error_text`: the detail can quote
    the row, the entry's NHS number among it); an entry left unnumbered means the head row is
    missing."""
    if isinstance(exc, psycopg.errors.NotNullViolation) and exc.diag.column_name == "seq":
        return "the audit head row is missing"
    return error_text(exc)


def _their_integrity(exc: Exception) -> bool:
    """Whether ``exc`` is an integrity error of a caller's write, not of the trail's tables."""
    if not isinstance(exc, psycopg.IntegrityError):
        return False
    table = exc.diag.table_name
    return table is not None and not table.startswith("audit_")


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


def _sqlite_append(engine: Engine, raw: Any, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """The transaction, synced to disk, in the file's write turn (``engine.db.synced_turn``)."""
    cur = raw.cursor()
    try:
        with synced_turn(engine, raw):
            try:
                # IMMEDIATE takes the write lock before the head is read, so two writers cannot
                # both read the same head (a deferred transaction would fail to upgrade its lock
                # instead).
                cur.execute("BEGIN IMMEDIATE")
                sealed = _sqlite_chain(cur, entries)
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
    finally:
        cur.close()
    return sealed


def append_batch(engine: Engine, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Append ``entries`` in one transaction, committed and durable before this returns."""
    if not entries:
        return []
    try:
        raw = engine.raw_connection()
        try:
            if engine.dialect.name == "postgresql":
                return commit_with(raw, {}, {}, entries)
            return _sqlite_append(engine, raw, [_fitted(e) for e in entries])
        finally:
            raw.close()
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {_reason(exc)}") from exc


def append_within(conn: Connection, entries: Sequence[AuditEntry]) -> list[Sealed]:
    """Append ``entries`` in the transaction open on ``conn``, so that they commit with the
    caller's own writes or not at all: a message is accepted with its audit entry, and a
    message that loses a race leaves no entry saying it was accepted.

    The caller writes first and then appends (on SQLite its first write has taken the file's
    write lock, under :func:`engine.db.synced_turn`; on PostgreSQL the head row stays locked
    from here to the commit, so the append comes last), and commits durably
    (:func:`engine.db.durable_write`) before anything is answered. Where the writes are known
    before the transaction begins, :func:`commit_with` holds the head for less.
    """
    raw: Any = conn.connection.driver_connection
    entries = [_fitted(e) for e in entries]
    try:
        if conn.dialect.name != "postgresql":
            return _sqlite_chain(raw.cursor(), entries)
        sealing = _Sealing(entries)
        with raw.cursor() as cur:
            cur.execute(_statement({}), sealing.params(asynchronous=False))
            return sealing.sealed(cur.fetchall())
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {_reason(exc)}") from exc


def append(engine: Engine, entry: AuditEntry) -> Sealed:
    """Append one entry on its own (no batching): durable before this returns."""
    return append_batch(engine, [entry])[0]


class _Pending:
    """One entry waiting to be written, and the lock its thread sleeps on until it is written
    or handed the lead (held from the start; released once, by whoever wakes it)."""

    __slots__ = ("entry", "error", "leads", "sealed", "turn")

    def __init__(self, entry: AuditEntry) -> None:
        self.entry = entry
        self.sealed: Sealed | None = None
        self.error: BaseException | None = None
        #: Whether its thread holds the lead: set under the writer's lock, before it is woken.
        self.leads = False
        self.turn = threading.Lock()
        self.turn.acquire()

    @property
    def done(self) -> bool:
        return self.sealed is not None or self.error is not None


class Writer:
    """Thread-safe appends with group commit: one writer per process and store.

    The first caller to find no transaction in flight leads: it writes everything queued so
    far (its own entry included), wakes the callers whose entries that was, and hands the lead
    to the first still queued, or stands down when none is. Only those threads wake: the
    others sleep on until their own turn (a condition shared by all woke every waiting thread
    after each transaction, to find the one of them that should lead). A failure fails every
    entry of that batch. A caller that leaves early (an interrupt, which only a process's main
    thread receives) still hands on a lead it holds or was handed, so appends go on.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._busy = False

    def append(self, entry: AuditEntry) -> Sealed:
        mine = _Pending(entry)
        with self._lock:
            self._queue.append(mine)
            if not self._busy:
                self._busy = mine.leads = True
        try:
            if not mine.leads:
                mine.turn.acquire()  # written by the lead, or handed it
            while not mine.done:  # leading: its entry is in the first batch it takes
                interrupted = self._write_next(mine)
                if interrupted is not None:
                    raise interrupted  # the batch has failed; now let the interrupt out
        finally:
            with self._lock:
                if mine in self._queue:  # left before it was written
                    self._queue.remove(mine)
                if mine.leads:
                    self._hand_on(mine)
        if mine.error is not None:
            raise AuditUnavailable("the audit entry could not be written") from mine.error
        if mine.sealed is None:
            raise AuditUnavailable("the audit entry was not written")
        return mine.sealed

    def _hand_on(self, mine: _Pending) -> None:
        """Under the lock: the lead to the first caller still queued, or stand down."""
        mine.leads = False
        if self._queue:
            first = self._queue[0]
            first.leads = True
            first.turn.release()
        else:
            self._busy = False

    def _write_next(self, mine: _Pending) -> BaseException | None:
        """As the lead: write the next batch and wake its callers (but ``mine``); the
        interrupt that failed it, if one did."""
        with self._lock:
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
        sealed: list[Sealed] = []
        error: BaseException | None = AuditUnavailable("the batch was interrupted")
        try:
            sealed, error = self._write(batch)
        finally:  # every caller taken from the queue is marked and woken, whatever happened
            for i, p in enumerate(batch):
                if error is None:
                    p.sealed = sealed[i]
                else:
                    p.error = error
                if p is not mine:
                    p.turn.release()
        return error if error is not None and not isinstance(error, Exception) else None

    def _write(self, batch: list[_Pending]) -> tuple[list[Sealed], BaseException | None]:
        """Never raises, so the batch is always marked and its callers always woken."""
        try:
            return append_batch(self._engine, [p.entry for p in batch]), None
        except BaseException as exc:
            return [], exc
