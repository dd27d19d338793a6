"""The organisation directory: which kind of organisation (GP practice, hospital, council, care
home, IG office) each code is.

A user's access profile depends on the kind of organisation their role is held at, and a token
names only the code, so the kind must come from a reviewed source: a directory file the
deployment loads (from ODS data), checked against its schema and against the kinds the policy
knows. A code the directory does not hold has no kind, and so no profile and no access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Connection, String, Table, Text, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from adapters import schema
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
