"""Append-only storage: the triggers every store gets, and the grants for the app's role.

The SQL lives here rather than in the migration alone so a deployment that names its
application role after the first migration can grant it the same way
(:func:`grant_app_role`), and so the tests can drop and restore the triggers by name.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

#: What a refused statement reports, on either database.
REFUSAL = "audit_entry is append-only"

_PG_PROTECT = (
    f"""CREATE OR REPLACE FUNCTION audit_entry_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSAL}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_refuse()",
    "CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_refuse()",
)
#: SQLite's REPLACE (and INSERT OR REPLACE) deletes the row it conflicts with without running
#: delete triggers, so an insert that names a sequence number already held is refused first.
SQLITE_NO_REPLACE = (
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_replace BEFORE INSERT ON audit_entry "
    "WHEN EXISTS (SELECT 1 FROM audit_entry WHERE seq = NEW.seq) "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}: REPLACE refused'); END"
)
# SQLite has no TRUNCATE: an unqualified DELETE runs the delete trigger row by row.
_SQLITE_PROTECT = (
    *(
        f"CREATE TRIGGER audit_entry_no_{op.lower()} BEFORE {op} ON audit_entry "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ),
    SQLITE_NO_REPLACE,
)
TRIGGERS = {
    "postgresql": ("audit_entry_append_only", "audit_entry_no_truncate"),
    "sqlite": ("audit_entry_no_update", "audit_entry_no_delete", "audit_entry_no_replace"),
}


def protect(conn: Connection) -> None:
    """Install the triggers that refuse UPDATE, DELETE and TRUNCATE on the trail."""
    for statement in _PG_PROTECT if conn.dialect.name == "postgresql" else _SQLITE_PROTECT:
        conn.execute(text(statement))


def grant_app_role(conn: Connection, role: str) -> None:
    """Let ``role`` read and append to the trail and move its head, and nothing more on it.

    ``role`` is checked by ``Settings`` to be a plain name; it is quoted here as well.
    """
    quoted = '"' + role.replace('"', '""') + '"'
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {quoted}'))
    conn.execute(text(f"REVOKE ALL ON audit_entry, audit_head FROM {quoted}"))
    conn.execute(text(f"GRANT SELECT, INSERT ON audit_entry TO {quoted}"))
    conn.execute(text(f"GRANT SELECT, UPDATE ON audit_head TO {quoted}"))


def may_rewrite(conn: Connection) -> bool:
    """Whether this connection's role could change the trail's storage (it owns the table, or
    is a superuser): the append-only triggers and grants then hold only while it chooses, so
    a server should connect as the application's role. Always false on SQLite (no roles)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text(
            "SELECT r.rolsuper OR pg_has_role(current_user, t.tableowner, 'USAGE') "
            "FROM pg_roles r, pg_tables t WHERE r.rolname = current_user "
            "AND t.tablename = 'audit_entry' AND t.schemaname = current_schema()"
        )
    ).scalar()
    return bool(found)
