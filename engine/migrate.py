"""Apply the Alembic migrations shipped inside the package (``scr db upgrade``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    url = engine.url.render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    _private(engine)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _private(engine: Engine) -> None:
    """Make a new SQLite store readable by its owner only: it holds people's records, and
    SQLite would make it (and its ``-wal`` and ``-shm`` files, which take the store's own
    permissions) as the umask allows, readable by every local user under the usual 022."""
    path = _sqlite_file(engine)
    if path is None or make_url(engine.url).query.get("mode") == "ro":
        return
    # One that is there is left as it is; one that cannot be made here (no such folder)
    # fails SQLite's own open next, which the commands report.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_file(engine: Engine) -> str | None:
    """The file a SQLite store is kept in, also when named by a ``file:`` URI (SQLAlchemy's
    ``sqlite:///file:path?uri=true``); ``None`` for PostgreSQL or memory."""
    url = make_url(engine.url)
    database = url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if url.query.get("uri") not in ("true", "1"):
        return database
    if url.query.get("mode") == "memory":
        return None
    path = unquote(urlsplit(database).path)
    return path or None


class StoreNotReady(RuntimeError):
    """The store a command would only read is not there, or not at this scr's revision."""


def check_ready(engine: Engine) -> None:
    """Refuse a store that is absent or behind, naming which: a command that only reads (an
    audit verify) made an empty store where none was, and reported its empty trail intact,
    or migrated the store it was checking (and failed, as the application's role)."""
    path = _sqlite_file(engine)
    if path is not None and not Path(path).exists():
        raise StoreNotReady(f"no store at {path}: run scr db upgrade to make one")
    with engine.connect() as conn:
        found = MigrationContext.configure(conn).get_current_revision()
    wanted = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    if found is None:
        raise StoreNotReady("the database holds no scr store: run scr db upgrade to make one")
    if found != wanted:
        raise StoreNotReady(
            f"the store is at revision {found}, this scr needs {wanted}: run scr db upgrade "
            "as the database's owner"
        )
