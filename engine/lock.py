"""One ingest at a time per store: a run that finds another still running would abandon it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

#: Arbitrary but fixed key for PostgreSQL's advisory lock; the schema is the second key, since
#: an advisory lock spans the whole database and one database may hold several stores.
_PG_LOCK_KEY = 0x5C12_0001


class IngestBusy(RuntimeError):
    """Another ingest holds the store."""


@contextmanager
def ingest_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"),
                {"k": _PG_LOCK_KEY},
            ).scalar()
            if not got:
                raise IngestBusy("another ingest is running against this database")
            try:
                yield
            finally:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:k, hashtext(current_schema()))"),
                    {"k": _PG_LOCK_KEY},
                )
        return
    database = engine.url.database
    path = Path(database + ".ingest-lock") if database and database != ":memory:" else None
    if path is None:
        yield
        return
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestBusy(f"another ingest is running against {database}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
