"""Database engines and sessions; the SQLite/PostgreSQL differences live here and nowhere else."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Row,
    Select,
    String,
    Table,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    literal,
    literal_column,
    make_url,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from engine.canonical import encodable, exact

log = logging.getLogger("scr.store")

T = TypeVar("T")

#: Values per ``IN (...)`` list on SQLite, well under its bound-parameter limit.
_SQLITE_IN_CHUNK = 500


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose errors never show the values bound to a statement: they are NHS numbers,
    names and record content, and an error's text ends up in logs and on operators' screens.
    Its JSON columns write a Decimal as its own text (read back exactly where it matters:
    ``engine.quarantine``)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, hide_parameters=True, json_serializer=_json_text, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "connect", _pg_session)
    return engine


def _json_text(value: Any) -> str:
    """A JSON column's text, a Decimal (a FHIR decimal a quarantined record holds) as written.

    A lone surrogate (what a CSV read with ``surrogateescape`` leaves for a stray byte, in a
    column's name too) is written as U+FFFD, so that a quarantined record holding one is kept
    rather than failing the write of its whole batch. A NUL needs nothing: JSON escapes it, so
    PostgreSQL's ``json`` (unlike its text) holds it.
    """
    try:
        return orjson.dumps(value, default=exact).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(encodable(value), default=exact).decode()


def error_text(exc: BaseException) -> str:
    """What an error says, fit for a log: a database error's primary message only, as
    PostgreSQL's detail can quote the row it failed on (``Failing row contains (...)``: an NHS
    number, a record's content), where ``hide_parameters`` hides only the statement's values;
    the driver's error alone, without SQLAlchemy's copy of the statement."""
    found = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(found, psycopg.Error):
        primary = found.diag.message_primary
        return f"{type(found).__name__}: {primary}" if primary else type(found).__name__
    return f"{type(found).__name__}: {found}"


def read_only(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work``, which only reads, on one connection checked out once for all of it.

    The connection is in autocommit: under PostgreSQL's read committed every statement sees
    its own snapshot anyway, so a transaction would add a BEGIN and a ROLLBACK and no
    consistency. The pool does not ping a connection before handing it out (a round trip on
    every checkout); instead a read that finds its connection dead (the database restarted,
    and the pool has now dropped every connection) runs once more on a new one, which is safe
    because it wrote nothing.

    On PostgreSQL its results come in the binary format. In the text format a ``bytea`` (every
    resource body) is sent hex-encoded: twice its size, encoded by the server and decoded by
    the driver; a typical record's read costs about 0.1 ms less of the driver's CPU and 0.06 ms
    less of the server's in binary. A type the driver has no binary loader for (``pg_lsn``,
    the catalogues' own) would come back as raw bytes, so reads of those go elsewhere.
    """
    try:
        return _autocommit(engine, work)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return _autocommit(engine, work)


def _autocommit(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        driver: Any = conn.connection.driver_connection
        if engine.dialect.driver != "psycopg" or driver.cursor_factory is not psycopg.Cursor:
            return work(conn.execution_options(isolation_level="AUTOCOMMIT"))
        driver.cursor_factory = _BinaryCursor
        try:
            return work(conn.execution_options(isolation_level="AUTOCOMMIT"))
        finally:
            driver.cursor_factory = psycopg.Cursor


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    """Prepared statements keep one generic plan rather than planning again for each call,
    and no statement is compiled to machine code (JIT) as it runs.

    Every statement scr runs is a look-up by key or by a short list of keys, whose best plan
    does not depend on the values; but PostgreSQL cannot know how long a bound list is, costs
    the generic plan for ten elements, and so plans the policy's facts statement afresh on
    every read (about 0.4 ms of the server's CPU each time, more than running it).

    PostgreSQL compiles a statement whose estimated cost passes ``jit_above_cost``, again at
    every execution. An estimate is all it is: the facts statement, costed for a hundred people
    merged into one, passed it on a store without statistics, and took half a second to
    compile where it runs in half a millisecond. A look-up has nothing for JIT to speed up,
    and the one scan of a whole table, ``scr audit verify``, ran no slower without it (388,092
    entries a second over 1,000,000, against 374,933 with it).
    """
    dbapi_conn.execute("SET plan_cache_mode = force_generic_plan")
    dbapi_conn.execute("SET jit = off")
    dbapi_conn.commit()


class _BinaryCursor(psycopg.Cursor[Any]):
    """A cursor whose results come in PostgreSQL's binary format (see :func:`read_only`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.format = psycopg.pq.Format.BINARY


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets readers work during an ingest; foreign keys are off by default in SQLite."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class _Turn:
    """One SQLite file's writers, in turn: a thread lock within the process, ``flock`` across.

    Re-entrant within a thread, so a write inside another write of the same thread does not
    wait on itself; the file is reopened after a fork, whose child would otherwise share the
    parent's lock.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._pid = 0
        self._commits = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth > 1:
            return
        try:
            if self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._depth -= 1
            self._lock.release()
            raise

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def committed(self) -> bool:
        """Count a commit made in this turn (while it is held); whether its writer is due to
        checkpoint (every :data:`CHECKPOINT_EVERY`)."""
        self._commits += 1
        return self._commits % CHECKPOINT_EVERY == 0


_TURNS: dict[str, _Turn] = {}
_TURNS_LOCK = threading.Lock()


#: SQLite's own default: a commit that takes the WAL past this many pages checkpoints it.
_AUTOCHECKPOINT = 1000
#: A process's synced commits to one file between the checkpoints it runs itself.
CHECKPOINT_EVERY = 64


@contextmanager
def synced_turn(engine: Engine, raw: Any) -> Iterator[None]:
    """A transaction on ``raw`` (a SQLite connection of ``engine``) in this process's turn to
    write the file, committed to disk; PostgreSQL and in-memory SQLite need nothing.

    The turn wakes a writer the moment it is free: SQLite's own busy handler polls instead,
    sleeping up to 100 ms between tries, so under contention a writer could wait far longer
    than the writes ahead of it take. Paths that write often under concurrent load (the audit
    append, a received transfer) take their turn here; any other writer still meets SQLite's
    lock and its busy handler, so nothing can wait on a turn forever.

    Every other writer waits while a turn is held, so it holds the transaction alone. The store
    runs with ``synchronous=NORMAL``, where a commit reaches the WAL but can be lost to a power
    cut; this commit syncs (``FULL``), set before the turn. Nor does it checkpoint: SQLite
    checkpoints in the commit that takes the WAL past 1,000 pages, which held every writer for
    about 4 ms every fifty messages. The writer checkpoints after leaving the turn instead,
    every :data:`CHECKPOINT_EVERY` of its commits (``PASSIVE``: what no reader still needs,
    while others write on). A checkpoint that fails is logged, not raised: the commit before
    it is on disk already, and the next checkpoint copies what this one did not.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = os.path.realpath(database) + ".write-turn"
    with _TURNS_LOCK:
        turn = _TURNS.setdefault(path, _Turn(path))
    cur = raw.cursor()
    cur.execute("PRAGMA synchronous=FULL")  # outside a transaction, so it takes effect
    cur.execute("PRAGMA wal_autocheckpoint=0")
    try:
        with turn:
            yield
            due = turn.committed()
        if due:
            try:
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("checkpoint of %s failed: %s", database, error_text(exc))
    finally:
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
        cur.close()


@contextmanager
def durable_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that is on disk once it has committed, for writes another organisation is
    told were kept: an accepted message (its response says so), an acknowledgement.

    PostgreSQL commits durably already; on SQLite the transaction is a :func:`synced_turn`, as
    the audit append's is, the connection checked out before it and handed back after.
    """
    with engine.connect() as conn, synced_turn(engine, conn.connection), conn.begin():
        yield conn


def member_of(
    conn: Connection, column: Any, values: Sequence[str], *, probe: bool = False
) -> Iterator[ColumnElement[bool]]:
    """Conditions that together select ``column`` in ``values``: one per statement to run.

    PostgreSQL takes the whole list as one JSON text parameter, unnested by the server, so the
    statement text is the same for every batch and is neither re-compiled nor re-parsed. (Not
    an array parameter: the driver builds an array's text element by element in Python, about
    1.3 ms for a batch's thousand ids, several times a batch, where orjson takes 0.02; the
    server also probes the index for a JSON list faster.) SQLite gets ``IN`` lists in chunks.

    ``probe`` is for a column whose index is not unique (a source key) looked up every batch.
    Without statistics on its table (a store not analysed yet; a run's own rows, which its
    look-ups cannot see but still pass over) the planner takes such a list for a join over the
    whole table; made an array on the server, the list is probed through the index.
    """
    if not values:
        return
    if conn.dialect.name == "postgresql":
        listed = bindparam(None, orjson.dumps(list(values)).decode(), type_=String)
        elements = select(func.json_array_elements_text(cast(listed, JSON)))
        if probe:
            yield column == any_(func.array(elements.scalar_subquery()))
        else:
            yield column.in_(elements)
        return
    for i in range(0, len(values), _SQLITE_IN_CHUNK):
        yield column.in_(values[i : i + _SQLITE_IN_CHUNK])


def in_one_trip(
    conn: Connection, selects: Sequence[Select[*tuple[Any, ...]]]
) -> Iterator[Row[*tuple[Any, ...]]]:
    """The rows of every one of ``selects`` (which must have the same columns).

    One ``UNION ALL`` on PostgreSQL, saving a round trip per select; one at a time on SQLite,
    in process, whose limit on bound parameters a union of ``IN`` lists could pass.
    """
    if not selects:
        return
    if conn.dialect.name == "postgresql":
        yield from conn.execute(union_all(*selects))
        return
    for stmt in selects:
        yield from conn.execute(stmt)


def one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` in the list bound as ``name``, for a statement built once and run many times:
    one array parameter on PostgreSQL, so its text is the same however long the list; an
    expanding ``IN`` elsewhere."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def probe_each(
    query: Select[Any], column: ColumnElement[Any], ids: FromClause, dialect: str,
    keep: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:  # fmt: skip
    """``query``'s rows whose ``column`` is one of ``ids.c.id``, each beside ``keep`` (columns
    of ``ids``), found by one probe of ``column``'s index for each id, however large
    ``column``'s table grows and whatever its statistics say. Its columns are ``keep`` and
    ``query``'s, by name: order or limit the result through its ``selected_columns``.

    On PostgreSQL, asked with ``= ANY`` of a few ids, or joined to them, the plan rests on the
    statistics, and a store just loaded (or one autovacuum has not reached) has none: it then
    guesses each value to match one row in two hundred, and read a whole table (every stay,
    every person) or ANDed in another index's bitmap (every Patient and Encounter in the
    store), on every read of every record. Asked once per id, for that id, in a lateral
    subquery, a table is cheapest read by its index whatever the statistics say; ``OFFSET 0``
    keeps the planner from merging the subquery into a join, which it could then hash. SQLite
    looks the plain join up by index as it is.
    """
    if dialect != "postgresql":
        return query.with_only_columns(*keep, *query.selected_columns).where(column == ids.c.id)
    probe = query.where(column == ids.c.id).offset(literal_column("0")).lateral()
    return select(*keep, *probe.c).select_from(ids.join(probe, true()))


def each_of(query: Select[Any], column: ColumnElement[Any], name: str, dialect: str) -> Select[Any]:
    """``query``'s rows whose ``column`` is in the list bound as ``name`` (:func:`one_of`, a
    value listed twice asked once): on PostgreSQL, one index probe per value
    (:func:`probe_each`); SQLite looks ``IN`` up by index as it is."""
    if dialect == "postgresql":
        listed = func.unnest(bindparam(name, type_=ARRAY(String)))
        ids = select(listed.label("id")).distinct().subquery("listed")
        return probe_each(query, column, ids, dialect)
    return query.where(one_of(column, name, dialect))


def among(column: ColumnElement[Any], values: Sequence[str]) -> ColumnElement[bool]:
    """``column`` in a list fixed when the statement is built, each value its own parameter.

    Given plain values, ``in_`` makes one expanding parameter, which SQLAlchemy renders into
    the statement's text at every execution (a regular-expression pass over all of it); given
    these, the text is rendered once, with the same ``IN`` list.
    """
    return column.in_([literal(v, column.type) for v in values])


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows: binary ``COPY`` on PostgreSQL, ``executemany`` elsewhere.

    Binary ``COPY`` sends bodies as they are rather than hex-escaped: a third of the client CPU
    of text ``COPY`` and about half its time. Values go through each column type's bind
    processing either way, so both paths store the same thing.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    columns = [table.c[n] for n in names]
    # Only the columns whose type processes binds (times, bytes) cost a call per row.
    procs = [(i, p) for i, c in enumerate(columns) if (p := c.type.bind_processor(conn.dialect))]
    # "VARCHAR(36)" -> "varchar": psycopg knows PostgreSQL's type names, not their modifiers.
    # A JSON column's bind gives its text, which is json's binary form: sent as text, or
    # psycopg would quote it into a JSON string.
    types = [
        "text"
        if (name := c.type.compile(dialect=conn.dialect).split("(")[0].lower()) == "json"
        else name
        for c in columns
    ]
    cols = ", ".join(f'"{n}"' for n in names)
    sql = f'COPY "{table.name}" ({cols}) FROM STDIN (FORMAT BINARY)'
    dbapi: Any = conn.connection.driver_connection  # a psycopg 3 connection
    with dbapi.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(types)
        for row in rows:
            values = [row[n] for n in names]
            for i, process in procs:
                values[i] = process(values[i])
            copy.write_row(values)


@contextmanager
def scratch_store(url: str, workdir: Path, template: str | None = None) -> Iterator[str]:
    """A fresh store for a test or a measurement, removed afterwards: empty, or a copy of
    ``template`` (another scratch store), which costs a file copy where a migration costs half a
    second.

    ``url`` is ``sqlite`` (a new file in ``workdir``) or a PostgreSQL URL, where the store is a
    new database on that server, so several can share one server without seeing each other.
    """
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    if url == "sqlite":
        path = workdir / f"{name}.db"
        if template is not None:
            shutil.copyfile(str(make_url(template).database), path)
        yield f"sqlite:///{path}"
        return
    source = f' TEMPLATE "{make_url(template).database}"' if template is not None else ""
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
