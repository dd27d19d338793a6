"""Read the trail back: IG searches (by patient, user, day) and the stream an export walks.

Searches narrow on the searchable columns and their indexes, then return the hashed bodies,
newest first. The columns are checked against the bodies by ``audit.verify``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import ColumnElement, Engine, Table, func, select

from audit.entry import flat
from audit.tables import AuditRow

T = cast(Table, AuditRow.__table__)
CHUNK = 5_000


def search(
    engine: Engine,
    *,
    patient_id: str | None = None,
    nhs_number: str | None = None,
    user_id: str | None = None,
    day: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries matching every criterion given, newest first; ``day`` is a UTC calendar day."""
    where: list[ColumnElement[bool]] = []
    if patient_id is not None:
        where.append(T.c.patient_id == patient_id)
    if nhs_number is not None:
        where.append(T.c.nhs_number == nhs_number)
    if user_id is not None:
        where.append(T.c.user_id == user_id)
    if day is not None:
        start = day.replace(hour=0, minute=0, second=0, microsecond=0)
        where += [T.c.time >= start, T.c.time < start + timedelta(days=1)]
    if since is not None:
        where.append(T.c.time >= since)
    if until is not None:
        where.append(T.c.time < until)
    query = select(T.c.body).where(*where).order_by(T.c.time.desc(), T.c.seq.desc()).limit(limit)
    with engine.connect() as conn:
        return [flat(orjson.loads(b)) for b in conn.execute(query).scalars()]


def stream(engine: Engine, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every entry from ``since`` in sequence order, read in chunks so memory stays bounded.

    Times rise with the sequence (the writer stamps them under the lock), so the first entry
    at or after ``since`` is found once by the time index; the filter stays on in case the
    clock ever stepped back.
    """
    after = 0
    if since is not None:
        with engine.connect() as conn:
            first = conn.execute(select(func.min(T.c.seq)).where(T.c.time >= since)).scalar()
        if first is None:
            return
        after = first - 1
    while True:
        query = select(T.c.seq, T.c.body).where(T.c.seq > after).order_by(T.c.seq).limit(CHUNK)
        if since is not None:
            query = query.where(T.c.time >= since)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield flat(orjson.loads(row.body))
        after = rows[-1].seq
