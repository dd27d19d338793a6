"""PostgreSQL test stores kept for the whole run: one database per template and worker, put
back to its template's state before each test, rather than a new database each test.

Creating a database from a template and dropping it afterwards cost about 140 ms a test under
the suite's load, 45% of the PostgreSQL suite's time (the SQLite suite's copies cost a file
copy). Putting a kept one back costs 10 to 50 ms, by how much its template holds, and leaves
what a new copy would hold:

- no connection of the last test's: they are ended and the store renamed, so each test has a
  URL of its own, as it had a database of its own, and a pool or thread a test left behind
  fails rather than write into the next test's store;
- the template's rows: each table the test grew is truncated with the tables referring to it
  (new, empty files, so no table or index is larger than the template's, which would plan
  apart), any other holding rows has them deleted, and the template's rows are copied back in
  binary;
- each sequence at the template's value;
- the template's planner statistics: none are dropped, or, where the template has some and a
  test changed them, the store is made again (they cannot be written back; ``loaded``, which an
  ingest analysed, is kept without any: ``forget_statistics``); each relation's counted size is
  the template's; the activity counters are zeroed.

A test may change more than rows: a migration test downgrades, a role test grants, a tamper
test drops a trigger. The catalogue's account of the schema is compared with the template's
before each test, and a store whose schema differs, or that cannot be put back (a lock not
released within 5 s), is made again from the template.

It needs a superuser (no trigger fires as tables are emptied; the statistics are catalogue
rows); for another role each test gets a new database, as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

log = logging.getLogger(__name__)

#: What a test could change of the schema, one row each, in a fixed order. A copy of a
#: database keeps its objects' OIDs, so they may be compared.
_SHAPE = """
SELECT 'rel', c.relname, c.relkind::text, coalesce(c.relacl::text, ''),
       concat_ws('|', c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
                 c.relreplident, c.reloptions, pg_get_userbyid(c.relowner))
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'col', a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod),
       concat_ws('|', a.attnotnull, a.attisdropped, a.attidentity, a.attgenerated,
                 a.attstattarget, a.attcollation, a.attoptions, a.attacl,
                 pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
UNION ALL
SELECT 'con', conrelid::regclass::text, conname, pg_get_constraintdef(oid), ''
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'idx', tablename, indexname, indexdef, '' FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'trg', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled::text
  FROM pg_trigger
UNION ALL
SELECT 'rule', ev_class::regclass::text, rulename, pg_get_ruledef(oid), ev_enabled::text
  FROM pg_rewrite WHERE ev_class IN
       (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
UNION ALL
SELECT 'policy', polrelid::regclass::text, polname, polcmd::text,
       concat_ws('|', polpermissive, polroles, pg_get_expr(polqual, polrelid),
                 pg_get_expr(polwithcheck, polrelid))
  FROM pg_policy
UNION ALL
SELECT 'seq', seqrelid::regclass::text, seqtypid::regtype::text,
       concat_ws('|', seqstart, seqincrement, seqmax, seqmin, seqcache, seqcycle), ''
  FROM pg_sequence
UNION ALL
SELECT 'type', t.typname, t.typtype::text, coalesce(t.typacl::text, ''),
       coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                   FROM pg_enum WHERE enumtypid = t.oid), '')
  FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
UNION ALL
SELECT 'fn', p.proname, pg_get_function_identity_arguments(p.oid),
       md5(concat_ws('|', p.prosrc, p.prosqlbody::text, p.prorettype::regtype, p.prosecdef,
                     p.proconfig, pg_get_userbyid(p.proowner))),
       coalesce(p.proacl::text, '')
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'ns', nspname, coalesce(nspacl::text, ''), pg_get_userbyid(nspowner), ''
  FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL
SELECT 'acl', defaclrole::regrole::text, defaclnamespace::text, defaclobjtype::text,
       defaclacl::text
  FROM pg_default_acl
UNION ALL
SELECT 'db', '', coalesce(datacl::text, ''), pg_get_userbyid(datdba), ''
  FROM pg_database WHERE datname = current_database()
UNION ALL
SELECT 'set', '', coalesce(array_to_string(setconfig, ','), ''), setrole::text, ''
  FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL
SELECT 'ext', extname, extversion, '', '' FROM pg_extension
UNION ALL
SELECT 'lo', '', count(*)::text, '', '' FROM pg_largeobject_metadata
ORDER BY 1, 2, 3, 4, 5
"""
#: Each table, with its own size (none if never written) and that with its indexes and TOAST.
_TABLES = """
SELECT relname, pg_relation_size(oid), pg_total_relation_size(oid) FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY relname
"""
#: Each foreign key's (referenced table, referencing table).
_REFERENCES = """
SELECT confrelid::regclass::text, conrelid::regclass::text FROM pg_constraint
 WHERE contype = 'f' AND connamespace = 'public'::regnamespace
"""
_SEQUENCES = "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences"
_STATISTICS = """
SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY starelid, staattnum, stainherit), ''))
  FROM pg_statistic s
 WHERE starelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
"""
_NO_STATISTICS_MD5 = hashlib.md5(b"").hexdigest()
_NO_STATISTICS = """
DELETE FROM pg_statistic
 WHERE starelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
"""
#: Each relation's size as last counted (by a VACUUM, an ANALYZE), which the planner reads.
_COUNTED = """
SELECT relname, relpages, reltuples, relallvisible FROM pg_class
 WHERE relnamespace = 'public'::regnamespace ORDER BY relname
"""
_RECOUNTED = """
UPDATE pg_class c SET relpages = t.pages, reltuples = t.tuples, relallvisible = t.visible
  FROM unnest(%s::text[], %s::int[], %s::real[], %s::int[]) AS t(name, pages, tuples, visible)
 WHERE c.relnamespace = 'public'::regnamespace AND c.relname = t.name
   AND (c.relpages, c.reltuples, c.relallvisible) IS DISTINCT FROM (t.pages, t.tuples, t.visible)
"""
_UNCOUNTED = """
UPDATE pg_class SET relpages = 0, reltuples = -1, relallvisible = 0
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
"""
#: Whether every connection but this one ended, waiting up to 5 s for each.
_END_OTHERS = """
SELECT coalesce(bool_and(pg_terminate_backend(pid, 5000)), true) FROM pg_stat_activity
 WHERE datname = %s AND pid <> pg_backend_pid()
"""


def forget_statistics(url: str) -> None:
    """The planner's statistics of the store at ``url`` dropped, each relation's counted size
    with them, as a store just restored has none: for a template an ingest analysed, so that
    a test that analyses its copy again finds it put back by dropping them, not made again."""
    with psycopg.connect(_driver(url), autocommit=True) as conn, conn.transaction():
        conn.execute(_NO_STATISTICS)
        conn.execute(_UNCOUNTED)


def superuser(url: str) -> bool:
    """Whether the role ``url`` connects as may put a store back (``KeptStores``)."""
    with psycopg.connect(_driver(url), autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        return bool(row and row[0])


@dataclass(frozen=True)
class _Template:
    """What a kept store is put back to: the template's rows, sizes, sequences, statistics and
    schema."""

    rows: dict[str, bytes]
    #: Each table's size with its indexes and TOAST.
    sizes: dict[str, int]
    #: The tables referring to each, directly or not: truncated with it.
    referring: dict[str, set[str]]
    #: Each sequence, its value and whether that was given out (``setval``'s arguments).
    sequences: list[tuple[str, int, bool]]
    statistics: str
    #: ``_COUNTED`` by column: names, pages, tuples, pages all visible.
    counted: tuple[list[Any], ...]
    shape: list[tuple[Any, ...]]

    @classmethod
    def read(cls, url: str) -> _Template:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = conn.execute(_TABLES).fetchall()
            rows = {}
            for table, size, _ in tables:
                name = sql.Identifier(table)
                held = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(name))
                if not size or held.fetchone() != (True,):
                    continue
                copy_out = sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(name)
                with conn.cursor() as cur, cur.copy(copy_out) as copy:
                    rows[table] = b"".join(bytes(chunk) for chunk in copy)
            return cls(
                rows=rows, sizes={t: total for t, _, total in tables},
                referring=_closure(conn.execute(_REFERENCES).fetchall()),
                sequences=[_sequence(conn, n) for (n,) in conn.execute(_SEQUENCES).fetchall()],
                statistics=_one(conn, _STATISTICS),
                counted=tuple(map(list, zip(*conn.execute(_COUNTED).fetchall(), strict=True))),
                shape=conn.execute(_SHAPE).fetchall(),
            )  # fmt: skip


@dataclass
class KeptStores:
    """The kept stores of one worker, by template URL, on the server ``url`` names. Each is
    renamed after every test, so a test's URL is its own, as a new copy's was: a pool a test
    left behind cannot reach the next test's store."""

    url: str
    _made: dict[str, str] = field(default_factory=dict, init=False)
    _templates: dict[str, _Template] = field(default_factory=dict, init=False)
    #: To the server's own database, for what is done to the kept ones; opened once.
    _server: psycopg.Connection[Any] | None = field(default=None, init=False)

    def fresh(self, template: str) -> str:
        """A store holding what ``template`` holds, and nothing a test before left."""
        name = self._made.pop(template, None)
        if name is not None and not self._put_back(name, template):
            self._drop(name)
            name = None
        if name is None:
            name = _named()
            self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(_database(template))))  # fmt: skip
        self._made[template] = name
        return self._on(name)

    def shut(self, url: str) -> None:
        """After a test: its connections ended, and the store closed to new ones under a new
        name, which the next test opens (``fresh``)."""
        old = _database(url)
        template = next(t for t, name in self._made.items() if name == old)
        new = self._made[template] = _named()
        self._admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(old)))  # fmt: skip
        self._admin(sql.SQL(_END_OTHERS), (old,))
        self._admin(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)))  # fmt: skip

    def close(self) -> None:
        """Every kept store dropped, at the end of the worker's run."""
        for name in self._made.values():
            self._drop(name)
        self._made.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _put_back(self, name: str, template: str) -> bool:
        """Whether ``name`` now holds what a new copy of ``template`` would; ``False`` when its
        schema or statistics differ in a way only a new copy mends, or a step failed."""
        if template not in self._templates:
            self._templates[template] = _Template.read(_driver(template))
        kept = self._templates[template]
        try:
            self._admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(name)))  # fmt: skip
            url = _driver(self._on(name))
            with psycopg.connect(url, autocommit=True, options="-c lock_timeout=5s") as conn:
                if not _one(conn, _END_OTHERS, (name,)):
                    return False
                if conn.execute(_SHAPE).fetchall() != kept.shape:
                    return False
                statistics = _one(conn, _STATISTICS)
                if statistics != kept.statistics and kept.statistics != _NO_STATISTICS_MD5:
                    return False  # the template's statistics cannot be written back
                with conn.transaction():
                    _empty(conn, kept, statistics != kept.statistics)
                # the counts of what was just done are sent at the statement's end, then zeroed
                conn.execute("SELECT pg_stat_force_next_flush()")
                conn.execute("SELECT pg_stat_reset()")
            return True
        except psycopg.Error as exc:
            log.warning("kept store %s made again, not put back: %s", name, exc)
            return False

    def _drop(self, name: str) -> None:
        """``name`` dropped; one that cannot be is left, named in the log, for the run to
        go on (a worker's stores carry its name)."""
        try:
            self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
        except psycopg.Error as exc:
            log.warning("kept store %s not dropped: %s", name, exc)

    def _admin(self, statement: sql.Composable, params: tuple[Any, ...] | None = None) -> None:
        """``statement`` on the server's own database, on a connection kept open (and opened
        again once, should the server have ended it)."""
        for attempt in (1, 2):
            if self._server is None or self._server.closed:
                self._server = psycopg.connect(_driver(self.url), autocommit=True)
            try:
                self._server.execute(statement, params)
                return
            except psycopg.OperationalError:
                if attempt == 2 or not self._server.closed:
                    raise

    def _on(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)


def _named() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"keep_{worker}_{uuid.uuid4().hex[:8]}"


def _sequence(conn: psycopg.Connection[Any], name: str) -> tuple[str, int, bool]:
    found = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
        sql.SQL(name))).fetchone()  # fmt: skip
    assert found is not None
    return name, found[0], found[1]


def _empty(conn: psycopg.Connection[Any], kept: _Template, drop_statistics: bool) -> None:
    """The tables back to the template's rows, in one transaction. No trigger fires: the
    trail's refuse a DELETE and a TRUNCATE, no foreign key is checked as tables empty one by
    one, and the rows put back are the template's, whose references hold."""
    conn.execute("SET LOCAL session_replication_role = replica")
    tables = conn.execute(_TABLES).fetchall()
    _refill(conn, kept, [t for t, own, total in tables if own and total <= kept.sizes.get(t, 0)],
            [t for t, _, total in tables if total > kept.sizes.get(t, 0)])  # fmt: skip
    # Rows deleted stay until a VACUUM: a table whose template rows no longer fit beside them
    # is truncated too, so that none is larger than the template's (a larger one plans apart).
    regrown = [t for t, _, total in conn.execute(_TABLES) if total > kept.sizes.get(t, 0)]
    if regrown:
        _refill(conn, kept, [], regrown)
    for sequence in kept.sequences:
        conn.execute("SELECT setval(%s, %s, %s)", sequence)
    if drop_statistics:
        conn.execute(_NO_STATISTICS)
    conn.execute(_RECOUNTED, kept.counted)


def _refill(
    conn: psycopg.Connection[Any], kept: _Template, deleted: list[str], truncated: list[str]
) -> None:
    """``deleted`` emptied row by row (cheap for a few rows), ``truncated`` and the tables
    referring to them emptied whole (new, empty files), then each given the template's rows."""
    whole = set(truncated).union(*(kept.referring.get(t, set()) for t in truncated))
    if whole:
        conn.execute(sql.SQL("TRUNCATE {}").format(
            sql.SQL(", ").join(map(sql.Identifier, sorted(whole)))))  # fmt: skip
    for table in set(deleted) - whole:
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    for table in whole.union(deleted) & kept.rows.keys():
        copy_in = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table))
        with conn.cursor() as cur, cur.copy(copy_in) as copy:
            copy.write(kept.rows[table])


def _closure(references: list[tuple[str, str]]) -> dict[str, set[str]]:
    """For each table, every table whose foreign keys lead to it, however indirectly."""
    direct: dict[str, set[str]] = {}
    for referenced, referring in references:
        direct.setdefault(referenced, set()).add(referring)
    closed: dict[str, set[str]] = {}
    for table in direct:
        seen: set[str] = set()
        todo = [table]
        while todo:
            for other in direct.get(todo.pop(), set()) - seen:
                seen.add(other)
                todo.append(other)
        closed[table] = seen
    return closed


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _database(url: str) -> str:
    return str(make_url(url).database)


def _driver(url: str) -> str:
    """The URL as psycopg takes it (``postgresql://``, not SQLAlchemy's dialect prefix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
