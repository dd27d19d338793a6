"""The IG search: filters in, one page of entries out, newest first, with a cursor to the next.

Filters on searchable columns (patient, NHS number, user, organisation, purpose, outcome,
action, time range) become the query's WHERE and ride the trail's indexes; role and profile
live only in the hashed body, so they are checked on each parsed entry as pages are read.
Paging is by keyset on ``(time, seq)``: a page costs the same however deep it is, and entries
appended meanwhile never shift one page's items onto the next.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, Engine, Table, and_, or_, select

from audit.entry import flat, time_text
from audit.tables import AuditRow

T = cast(Table, AuditRow.__table__)
#: Rows read per round trip when role or profile filters leave some rows out.
SCAN = 500
MAX_PAGE = 500
#: Longer than any identifier the trail holds (and PostgreSQL refuses a NUL byte outright).
MAX_VALUE = 128
#: The largest sequence number the trail's column holds (a 64-bit integer on PostgreSQL).
MAX_SEQ = 2**63 - 1


#: A person id and the part of time its entries count, ``[since, until)`` (``None``: open).
Held = tuple[str, datetime | None, datetime | None]


class SearchError(ValueError):
    """A filter or cursor that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What an IG officer asks for; ``None`` matches anything. ``until`` is exclusive."""

    patient_id: str | None = None
    nhs_number: str | None = None
    user_id: str | None = None
    org: str | None = None
    #: A job role code (``R8000``), matched against the last part of the entry's role code.
    role: str | None = None
    profile: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Entries under any of these person ids, each within its own times: every id a person's
    #: records have had (``engine.identity.held``). Empty matches anything, like ``None``.
    people: tuple[Held, ...] = ()

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            texts = [p for p, _, _ in value] if name == "people" else [value]
            for text in texts:
                if isinstance(text, str) and (len(text) > MAX_VALUE or "\x00" in text):
                    raise SearchError(f"{name}: at most {MAX_VALUE} characters, no NUL")

    def as_query(self) -> str:
        """The filters as asked, for the IG officer's own audit entry."""
        parts = []
        for name in self.__slots__:
            value = getattr(self, name)
            if name == "people":
                parts += [f"{name}={_held_text(h)}" for h in value]
            elif value is not None:
                text = time_text(value) if isinstance(value, datetime) else str(value)
                parts.append(f"{name}={text}")
        return "&".join(parts)


def _held_text(held: Held) -> str:
    person, since, until = held
    return f"{person}[{time_text(since) if since else ''},{time_text(until) if until else ''})"


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[dict[str, Any]]
    #: Opaque; pass back as ``after`` for the next page. ``None`` on the last page.
    next_cursor: str | None
    disclosed: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, int] = field(default_factory=dict)


def _cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{doc['time']}|{doc['seq']}".encode()).decode()


def _uncursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor names; a forged one whose sequence number no entry can have (the
    driver may not even bind it), whose time has no zone, or whose time cannot be put in UTC
    (``0001-01-01T00:00:00+05:00``: before the first instant a time can hold) is refused like
    any other."""
    try:
        text, number = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        when, seq = datetime.fromisoformat(text), int(number)
        if not 1 <= seq <= MAX_SEQ or when.tzinfo is None:
            raise ValueError
        when = when.astimezone(UTC)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise SearchError("after: not a cursor this search handed out") from None
    return when, seq


def _where(f: Filters) -> list[ColumnElement[bool]]:
    columns = {
        "patient_id": f.patient_id,
        "nhs_number": f.nhs_number,
        "user_id": f.user_id,
        "org": f.org,
        "purpose": f.purpose,
        "outcome": f.outcome,
        "action": f.action,
    }
    where = [T.c[name] == value for name, value in columns.items() if value is not None]
    if f.since is not None:
        where.append(T.c.time >= f.since)
    if f.until is not None:
        where.append(T.c.time < f.until)
    if f.people:
        where.append(or_(*(_under(*held) for held in f.people)))
    return where


def _under(person: str, since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    within = [T.c.patient_id == person]
    if since is not None:
        within.append(T.c.time >= since.astimezone(UTC))
    if until is not None:
        within.append(T.c.time < until.astimezone(UTC))
    return and_(*within)


def _body_matches(f: Filters, doc: dict[str, Any]) -> bool:
    if f.role is not None and str(doc.get("role_code", "")).rsplit(":", 1)[-1] != f.role:
        return False
    return f.profile is None or doc.get("profile") == f.profile


def search(engine: Engine, f: Filters, *, after: str | None = None, limit: int = 50) -> Page:
    """One page of entries matching every filter, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise SearchError(f"limit: between 1 and {MAX_PAGE}")
    where = _where(f)
    position = _uncursor(after) if after else None
    found: list[dict[str, Any]] = []
    more = False
    with engine.connect() as conn:
        while True:
            query = select(T.c.body).where(*where)
            if position is not None:
                when, seq = position
                query = query.where(
                    T.c.time <= when, or_(T.c.time < when, and_(T.c.time == when, T.c.seq < seq))
                )
            chunk = max(limit + 1, SCAN) if f.role or f.profile else limit + 1
            bodies = conn.execute(
                query.order_by(T.c.time.desc(), T.c.seq.desc()).limit(chunk)
            ).scalars()
            docs = [flat(orjson.loads(b)) for b in bodies]
            found += [d for d in docs if _body_matches(f, d)]
            if len(found) > limit:
                more = True
                break
            if len(docs) < chunk:
                break
            position = (datetime.fromisoformat(docs[-1]["time"]), docs[-1]["seq"])
    page = found[:limit]
    disclosed: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    for doc in page:
        disclosed.update(doc.get("disclosed") or {})
        withheld.update(doc.get("withheld") or {})
    return Page(
        page,
        _cursor(page[-1]) if more else None,
        dict(sorted(disclosed.items())),
        dict(sorted(withheld.items())),
    )
