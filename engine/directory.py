"""The organisation directory: which kind of organisation (GP practice, hospital, council, care
home, IG office) each code is.

A user's access profile depends on the kind of organisation their role is held at, and a token
names only the code, so the kind must come from a reviewed source: a directory file the
deployment loads (from ODS data), checked against its schema and against the kinds the policy
knows. A code the directory does not hold has no kind, and so no profile and no access.

Every request needs its user's kind, and the directory changes only when a deployment loads a
new file, so a server keeps the kinds it has read (:class:`Kinds`) for a short while instead
of asking the database each time. A load forgets them in the process that made it once its
transaction commits; other processes read the new file within their ``ttl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Engine, String, Table, Text, delete, event, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from adapters import schema
from engine.db import read_only
from engine.models import Base, UtcDateTime


class DirectoryError(ValueError):
    """The directory file is malformed or names a kind the policy does not know."""


class Organisation(Base):
    __tablename__ = "organisation_directory"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    #: The directory file's ``version`` this row came from, so a review can trace it.
    version: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime)


D = cast(Table, Organisation.__table__)


@dataclass(frozen=True, slots=True)
class Entry:
    code: str
    name: str
    kind: str


def read_directory(path: Path, kinds: frozenset[str]) -> tuple[str, list[Entry]]:
    """The file's version and entries, or a :class:`DirectoryError` naming every problem."""
    try:
        doc: Any = orjson.loads(path.read_bytes())
        schema.check("organisations", doc, str(path))
    except (OSError, orjson.JSONDecodeError, schema.MapFileError) as exc:
        raise DirectoryError(str(exc)) from None
    problems = [
        f"organisations/{i}/kind: {o['kind']!r} is not one of {', '.join(sorted(kinds))}"
        for i, o in enumerate(doc["organisations"])
        if o["kind"] not in kinds
    ]
    seen: dict[str, int] = {}
    for i, o in enumerate(doc["organisations"]):
        if o["code"] in seen:
            problems.append(f"organisations/{i}/code: {o['code']} is listed twice")
        seen[o["code"]] = i
    if problems:
        raise DirectoryError(f"{path}:\n  " + "\n  ".join(problems))
    entries = [Entry(o["code"], o["name"], o["kind"]) for o in doc["organisations"]]
    return str(doc["version"]), entries


def replace_directory(conn: Connection, version: str, entries: list[Entry], now: datetime) -> int:
    """The directory becomes exactly the file: an organisation the file drops loses its kind."""
    event.listen(conn, "commit", _forget, once=True)
    conn.execute(delete(D))
    if entries:
        conn.execute(
            insert(D),
            [
                {"code": e.code, "name": e.name, "kind": e.kind, "version": version}
                | {"loaded_at": now}
                for e in entries
            ],
        )
    return len(entries)


def org_kind(conn: Connection, code: str) -> str | None:
    """The kind of organisation ``code`` is; ``None`` (no access) when the directory lacks it."""
    return conn.execute(select(D.c.kind).where(D.c.code == code)).scalar_one_or_none()


def organisations(conn: Connection) -> Mapping[str, Entry]:
    rows = conn.execute(select(D.c.code, D.c.name, D.c.kind).order_by(D.c.code))
    return {r.code: Entry(r.code, r.name, r.kind) for r in rows}


#: Bumped when a new directory commits; a :class:`Kinds` entry from before it is not used.
_generation = 0


def _forget(_conn: Connection) -> None:
    global _generation
    _generation += 1


class Kinds:
    """Organisation kinds as one process sees them: each code's kind (or its absence) is read
    at most once per ``ttl`` seconds, and again at once after a directory load commits here."""

    def __init__(
        self, engine: Engine, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._engine, self._ttl, self._clock = engine, ttl, clock
        self._known: dict[str, tuple[str | None, float, int]] = {}

    def cached(self, code: str) -> tuple[bool, str | None]:
        """``(True, kind)`` when the code's kind is known and fresh, without reading the
        database (so an async caller may ask on the event loop); ``(False, None)`` otherwise."""
        known = self._known.get(code)
        if known is not None and known[2] == _generation and self._clock() - known[1] < self._ttl:
            return True, known[0]
        return False, None

    def kind(self, code: str) -> str | None:
        now, generation = self._clock(), _generation
        known = self._known.get(code)
        if known is not None and known[2] == generation and now - known[1] < self._ttl:
            return known[0]
        found = read_only(self._engine, lambda conn: org_kind(conn, code))
        self._known[code] = (found, now, generation)
        return found
