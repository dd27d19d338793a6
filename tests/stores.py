"""PostgreSQL test stores kept for the whole run: one database per template and worker, put
back to its template's contents before each test, rather than a new database each test.

Creating a database from a template and dropping it afterwards cost about 140 ms a test under
the suite's load, 45% of the PostgreSQL suite's time (the SQLite suite's copies cost a file
copy). Putting a kept one back costs a few milliseconds: the tables the last test wrote are
emptied, the template's rows copied in again (binary ``COPY``, read from the template once),
every sequence set to the template's value, and the planner's statistics and the activity
counters dropped, so a test of plans without statistics sees none. Connections a test left open
are ended first, as ``DROP DATABASE ... WITH (FORCE)`` ended them.

A test may change more than rows: a migration test downgrades, a role test grants, a tamper
test drops a trigger. The catalogue's account of the schema (tables, columns, constraints,
indexes, triggers, functions, grants, settings) is compared with the template's before each
test, and a store whose schema differs, or that cannot be put back, is made again from the
template, as before.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy import make_url

#: What a test could change of the schema, one row each, in a fixed order.
_SHAPE = """
SELECT 'rel', c.relname, c.relkind::text, coalesce(c.relacl::text, ''),
       c.relpersistence::text || c.relrowsecurity::text || pg_get_userbyid(c.relowner)
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'col', a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull::text || a.attisdropped::text || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
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
  FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'fn', p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc),
       coalesce(p.proacl::text, '')
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'ns', nspname, coalesce(nspacl::text, ''), pg_get_userbyid(nspowner), ''
  FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL
SELECT 'db', '', coalesce(datacl::text, ''), pg_get_userbyid(datdba), ''
  FROM pg_database WHERE datname = current_database()
UNION ALL
SELECT 'set', '', coalesce(array_to_string(setconfig, ','), ''), setrole::text, ''
  FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL
SELECT 'ext', extname, extversion, '', '' FROM pg_extension
ORDER BY 1, 2, 3, 4, 5
"""
#: Each table and its size in bytes: one of none was never written.
_TABLES = """
SELECT relname, pg_relation_size(oid) FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY relname
"""
#: Past this a table is truncated (new, empty files); below it its rows are deleted, ten times
#: cheaper for the few rows most tests write. With autovacuum off the deleted rows stay until
#: the table passes this size and is truncated.
_TRUNCATED_FROM = 1 << 20
_SEQUENCES = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
#: The connections a test left open, ended (waiting up to 5 s for each) as a forced drop ends them.
_END_OTHERS = """
SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
#: The planner's statistics: the columns' (dropped) and each relation's size as last counted
#: (put back to the template's, as a VACUUM or an ANALYZE in a test changes them).
_NO_STATISTICS = """
DELETE FROM pg_statistic
 WHERE starelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
"""
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


def _shape(conn: psycopg.Connection) -> str:
    rows = conn.execute(_SHAPE).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@dataclass
class _Template:
    """What a kept store is put back to: the template's rows, sequences and schema."""

    rows: dict[str, bytes]
    sequences: list[tuple[str, int | None]]
    #: ``_COUNTED`` by column: names, pages, tuples, pages all visible.
    counted: tuple[list[object], ...]
    shape: str

    @classmethod
    def read(cls, url: str) -> _Template:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = {}
            for table, size in conn.execute(_TABLES).fetchall():
                name = sql.Identifier(table)
                if not size or conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT FROM {})").format(name)
                ).fetchone() != (True,):
                    continue
                copy_out = sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(name)
                with conn.cursor() as cur, cur.copy(copy_out) as copy:
                    rows[table] = b"".join(bytes(chunk) for chunk in copy)
            sequences = [(n, v) for n, v in conn.execute(_SEQUENCES).fetchall()]
            counted = tuple(map(list, zip(*conn.execute(_COUNTED).fetchall(), strict=True)))
            return cls(rows, sequences, counted, _shape(conn))


@dataclass
class KeptStores:
    """The kept stores of one worker, by template URL, on the server ``url`` names."""

    url: str
    _made: dict[str, str] = field(default_factory=dict)
    _templates: dict[str, _Template] = field(default_factory=dict)

    def fresh(self, template: str) -> str:
        """A store holding what ``template`` holds, and nothing a test before left."""
        name = self._made.get(template)
        if name is None or not self._put_back(name, template):
            if name is not None:
                self._drop(name)
            name = self._made[template] = f"keep_{uuid.uuid4().hex[:12]}"
            self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(_database(template))))  # fmt: skip
        return self._on(name)

    def close(self) -> None:
        for name in self._made.values():
            self._drop(name)
        self._made.clear()

    def _put_back(self, name: str, template: str) -> bool:
        if template not in self._templates:
            self._templates[template] = _Template.read(_driver(template))
        kept = self._templates[template]
        try:
            with psycopg.connect(_driver(self._on(name)), autocommit=True) as conn:
                conn.execute(_END_OTHERS)
                if _shape(conn) != kept.shape:
                    return False
                sizes = conn.execute(_TABLES).fetchall()
                big = [sql.Identifier(t) for t, size in sizes if size >= _TRUNCATED_FROM]
                with conn.transaction():
                    # No trigger fires: the trail's refuse a DELETE or a TRUNCATE, no foreign
                    # key is checked as tables empty one by one, and the rows put back are the
                    # template's, whose references hold.
                    conn.execute("SET LOCAL session_replication_role = replica")
                    if big:
                        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(big)))
                    for table, size in sizes:
                        if 0 < size < _TRUNCATED_FROM:
                            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
                    for table, data in kept.rows.items():
                        copy_in = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(
                            sql.Identifier(table))  # fmt: skip
                        with conn.cursor() as cur, cur.copy(copy_in) as copy:
                            copy.write(data)
                    for sequence, value in kept.sequences:
                        conn.execute("SELECT setval(%s, %s, %s)",
                                     (sequence, value or 1, value is not None))  # fmt: skip
                    conn.execute(_NO_STATISTICS)
                    conn.execute(_RECOUNTED, kept.counted)
                conn.execute("SELECT pg_stat_reset()")
            return True
        except psycopg.Error:
            return False

    def _drop(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(_driver(self.url), autocommit=True) as conn:
            conn.execute(statement)

    def _on(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)


def _database(url: str) -> str:
    return str(make_url(url).database)


def _driver(url: str) -> str:
    """The URL as psycopg takes it (``postgresql://``, not SQLAlchemy's dialect prefix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
