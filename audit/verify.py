"""Walk the whole trail in sequence order: streaming, in one snapshot, naming the first bad entry.

Two checks run side by side. The chain walk reads ``(seq, body, prev_hash, hash)`` straight
from the driver in pages (no ORM objects) and hashes in Python, so the database is never
trusted to compute a hash. Meanwhile a second connection asks the database for the first entry
whose searchable columns (``audit.entry.INDEX_FIELDS``) no longer match the ending of its body:
an edited column would otherwise hide an access from IG searches without touching the hashed
bytes. The head row and the walk are read in one snapshot, and the column
check stops at that head, so appends made meanwhile are neither half-seen nor taken for
tampering. In that snapshot the rows are also counted: a row the walk cannot reach in order
(no ``seq``, or a second row at a number a keyset page steps past) makes the count differ.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, text

from audit.chain import GENESIS, Problem, Walk, out_of_place
from audit.entry import INDEX_FIELDS, PG_TIME_TEXT
from audit.tables import AuditRow

CHUNK = 20_000
_SELECT = "SELECT seq, body, prev_hash, hash FROM audit_entry ORDER BY seq"
_FIRST_PAGE = "SELECT seq, body, prev_hash, hash FROM audit_entry ORDER BY seq LIMIT %s"
_PAGE = "SELECT seq, body, prev_hash, hash FROM audit_entry WHERE seq > %s ORDER BY seq LIMIT %s"
_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
_COUNT = "SELECT count(*) FROM audit_entry"
#: The first row the walk did not read: one with no ``seq`` first, else the lowest ``seq``
#: held by more than one row. Run only when the count says there is one.
_UNWALKED = (
    "SELECT seq FROM audit_entry GROUP BY seq HAVING seq IS NULL OR count(*) > 1 "
    "ORDER BY seq NULLS FIRST LIMIT 1"
)
_NULLABLE = {c.name: bool(c.nullable) for c in cast(Table, AuditRow.__table__).columns}
#: Where a body's searchable fields begin (``audit.entry.body``).
_INDEX = '"index":{'


@dataclass(frozen=True, slots=True)
class Report:
    """The result of a walk: how far the trail holds, and the first entry that does not."""

    size: int
    head: bytes
    problem: Problem | None = None
    #: The hash of the entry a checkpoint named, when the walk reached it.
    kept: bytes | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _ending(dialect: str, escape: bool) -> str:
    """SQL for the body's ending as the row's columns say it should read.

    ``escape`` writes each text value with the database's JSON quoting; without it a value is
    only put in quotes, which is its JSON when it needs no escaping and is cheaper to build.
    """
    pieces: list[tuple[bool, str]] = [(True, '"index":')]  # (literal?, text)
    for n, field in enumerate(INDEX_FIELDS):
        pieces.append((True, ("{" if n == 0 else ",") + f'"{field}":'))
        if field == "seq":
            pieces.append((False, "seq::text" if dialect == "postgresql" else "CAST(seq AS TEXT)"))
        elif field == "time" and dialect == "postgresql":
            when = f"to_char(time AT TIME ZONE 'UTC', '{PG_TIME_TEXT}')"
            pieces += [(True, '"'), (False, when), (True, '"')]
        elif field == "time":
            pieces += [(True, '"'), (False, "replace(time, ' ', 'T')"), (True, 'Z"')]
        elif dialect == "sqlite":  # a value not stored as text reads as null, so it differs
            text_only = f"CASE WHEN typeof({field}) = 'text' THEN {field} END"
            pieces.append((False, f"json_quote({text_only})"))
        elif escape:
            pieces.append((False, f"coalesce(to_json({field})::text, 'null')"))
        elif _NULLABLE[field]:
            pieces.append((False, f"""coalesce('"' || {field} || '"', 'null')"""))
        else:  # NULL makes the whole ending NULL, which differs
            pieces += [(True, '"'), (False, field), (True, '"')]
    pieces.append((True, "}}"))
    sql: list[str] = []
    literal = ""
    for is_literal, part in pieces:  # adjacent literals as one: fewer concatenations per row
        if is_literal:
            literal += part
            continue
        if literal:
            sql.append(f"'{literal}'")
            literal = ""
        sql.append(part)
    return " || ".join([*sql, f"'{literal}'"])


def _column_sql(dialect: str) -> str:
    """The first entry, up to the head, whose body does not end with its columns' values.

    The expected ending is built in the database from the columns, as ``engine.canonical``
    writes it (``audit.entry.body``): any column edited since the append makes it differ. A
    column set to NULL makes the whole ending NULL, which counts as differing. The body is
    compared from where ``"index":{`` first occurs (in a body scr wrote, a key's quote cannot
    occur inside a string, and the objects before ``index`` hold only numbers), so the ending
    is built once per entry. ``FILTER`` keeps the planner from walking the key's index
    backwards in place of one sequential scan.

    On PostgreSQL the ending is first built with each value merely put in quotes, which is its
    JSON when it needs no escaping; only when that differs, or the ending holds a backslash (an
    escape a raw value could imitate), is it built again with ``to_json``, which costs several
    times more. The stored ending is cut out once per entry, in a subquery that ``OFFSET 0``
    keeps the planner from folding into its uses (it would cut it out up to three times).
    """
    if dialect == "sqlite":
        ending = _ending(dialect, escape=True)
        # SQLite keeps any value in any column: searches compare time as text in the form
        # SQLAlchemy writes, so a time in another form (or not text) would move an entry in
        # time, past a check that read it leniently.
        stored_as_written = (
            "typeof(time) = 'text' AND length(time) = 26 AND substr(time, 11, 1) = ' '"
        )
        return (
            f"SELECT min(seq) FILTER (WHERE substr(body, instr(body, CAST('{_INDEX}' AS BLOB))) "
            f"IS NOT CAST({ending} AS BLOB) OR NOT ({stored_as_written})) "
            "FROM audit_entry WHERE seq <= :head"
        )
    plain, escaped = _ending(dialect, escape=False), _ending(dialect, escape=True)
    differs = (
        f"(convert_to({plain}, 'UTF8') IS DISTINCT FROM stored "
        "OR position('\\x5c'::bytea in stored) > 0) "
        f"AND convert_to({escaped}, 'UTF8') IS DISTINCT FROM stored"
    )
    return (
        f"SELECT min(seq) FILTER (WHERE {differs}) FROM (SELECT *, substring(body from "
        f"position('{_INDEX}'::bytea in body)) AS stored FROM audit_entry WHERE seq <= :head "
        "OFFSET 0) AS entry"
    )


class _ColumnCheck(threading.Thread):
    """Runs the column query on its own connection while the walk hashes."""

    def __init__(self, engine: Engine, head: int) -> None:
        super().__init__(name="audit-column-check", daemon=True)
        self._engine, self._head = engine, head
        self.first: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self._engine.connect() as conn:
                sql = text(_column_sql(self._engine.dialect.name))
                self.first = conn.execute(sql, {"head": self._head}).scalar()
        except BaseException as exc:
            self.error = exc

    def problem(self) -> Problem | None:
        self.join()
        if self.error is not None:
            raise self.error
        if self.first is None:
            return None
        return Problem(self.first, "a searchable column differs from the hashed entry")


#: Runs one query in the walk's snapshot and gives its first row.
One = Callable[[str], Sequence[Any] | None]


@contextmanager
def _snapshot(
    engine: Engine,
) -> Iterator[tuple[tuple[int, bytes], Iterator[Sequence[Any]], One]]:
    """The head row, the entries as row chunks, and further queries, all in one read snapshot."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            driver: Any = raw.driver_connection

            def one(sql: str) -> Sequence[Any] | None:
                with driver.cursor() as cur:
                    return cast(Sequence[Any] | None, cur.execute(sql).fetchone())

            driver.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = one(_HEAD)
            with driver.cursor(binary=True) as rows:
                yield _head(head), _pages(rows), one
        else:
            cur = raw.cursor()

            def one(sql: str) -> Sequence[Any] | None:  # a second cursor: ``cur`` is mid-read
                with closing(raw.cursor()) as other:
                    return cast(Sequence[Any] | None, other.execute(sql).fetchone())

            cur.execute("BEGIN")
            head = cur.execute(_HEAD).fetchone()
            cur.execute(_SELECT)
            yield _head(head), _fetch(cur), one
            cur.close()
        raw.rollback()
    finally:
        raw.close()


def _head(row: Sequence[Any] | None) -> tuple[int, bytes]:
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def _pages(cur: Any) -> Iterator[Sequence[Any]]:
    """Keyset pages in binary (bytea arrives without hex decoding): measured well ahead of a
    server-side cursor. The first page has no lower bound, so a row at the lowest ``seq`` a
    ``bigint`` holds is read in its place too."""
    rows = cur.execute(_FIRST_PAGE, (CHUNK,)).fetchall()
    while rows:
        yield rows
        rows = cur.execute(_PAGE, (rows[-1][0], CHUNK)).fetchall()


def _fetch(cur: Any) -> Iterator[Sequence[Any]]:
    while chunk := cur.fetchmany(CHUNK):
        yield chunk


def verify(
    engine: Engine, keep: int | None = None, progress: Callable[[int], None] | None = None
) -> Report:
    """Check every entry, its columns and the head row; ``keep`` asks for one entry's hash."""
    walk = Walk(keep)
    with _snapshot(engine) as ((head_seq, head_hash), chunks, one):
        columns = _ColumnCheck(engine, head_seq)
        columns.start()
        problem: Problem | None = None
        for chunk in chunks:
            problem = walk.feed(chunk)
            if problem is not None:
                break
            if progress is not None:
                progress(walk.size)
        if problem is None:
            problem = _against_head(walk, head_seq, head_hash) or _unwalked(walk, one)
        found = [p for p in (problem, columns.problem()) if p is not None]
    return Report(walk.size, walk.head, min(found, key=_order) if found else None, walk.kept)


def _order(problem: Problem) -> tuple[bool, int]:
    """Which problem is named first: a row with no ``seq`` (outside any order), then by ``seq``."""
    return (problem.seq is not None, problem.seq or 0)


def _against_head(walk: Walk, head_seq: int, head_hash: bytes) -> Problem | None:
    """The head row is moved by every append, so it shows a cut tail or an added entry."""
    if head_seq > walk.size:
        return Problem(walk.size + 1, f"entries {walk.size + 1}..{head_seq} are missing")
    if head_seq < walk.size:
        return Problem(head_seq + 1, f"entries after {head_seq} were not appended by scr")
    if head_hash != walk.head:
        return Problem(walk.size, "the last entry is not the one scr appended")
    return None


def _unwalked(walk: Walk, one: One) -> Problem | None:
    """A walk of ``1..head`` that holds has read one row for each number; any other row in the
    snapshot (no ``seq``, or a second row a keyset page stepped past) is one it never reached,
    which IG searches would still show."""
    if (one(_COUNT) or (0,))[0] == walk.size:
        return None
    row = one(_UNWALKED)
    return out_of_place(row[0] if row else None, walk.size + 1)
