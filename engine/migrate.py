"""Apply the Alembic migrations shipped inside the package (``scr db upgrade``)."""

from __future__ import annotations

from pathlib import Path

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
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class StoreNotReady(RuntimeError):
    """The store a command would only read is not there, or not at this scr's revision."""


def check_ready(engine: Engine) -> None:
    """Refuse a store that is absent or behind, naming which: a command that only reads (an
    audit verify) made an empty store where none was, and reported its empty trail intact,
    or migrated the store it was checking (and failed, as the application's role)."""
    database = make_url(engine.url).database
    on_disk = engine.dialect.name == "sqlite" and database and database != ":memory:"
    if on_disk and not Path(str(database)).exists():
        raise StoreNotReady(f"no store at {database}: run scr db upgrade to make one")
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
