"""Read the whole trail back in sequence order: the stream an export walks.

IG searches are ``audit.search``; both return the hashed bodies, whose searchable columns
``audit.verify`` checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Engine, Table, func, select

from audit.entry import flat
from audit.tables import AuditRow

T = cast(Table, AuditRow.__table__)
CHUNK = 5_000


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
