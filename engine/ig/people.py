"""Which of the trail's entries are about a person: those under any id the person has had."""

from __future__ import annotations

from sqlalchemy import Engine

from audit.search import Held
from engine.identity import Span, held, patients_of


def held_by(engine: Engine, person: str) -> tuple[Held, ...]:
    """Every person id the person's records have had, while they had it
    (``engine.identity.held``): a merge or a relink retires an id, and what was recorded under
    it is still about them, where an entry under the id before or after their time is someone
    else's. A merged-away id follows to the survivor. The person as asked, at least."""
    with engine.connect() as conn:
        patients = patients_of(conn, person)
    spans = held(engine, [(p, person) for p in patients]) or [Span(person, None, None)]
    return tuple((s.person_id, s.start, s.end) for s in spans)
