"""The reads the API serves, each one person at a time: resolve, decide and release through the
gate, audit, and only then hand back what may leave.

A Patient id the store does not hold, a person the user has no way in to, and a person whose
record policy empties all end the same way: the decision is made (over no facts, for an unknown
id), audited, and the caller answers 404 or an empty searchset. Nothing here says which it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select

from audit import Appender, RequestContext, disclose, entry_for
from audit.entry import Action
from consent import PatientFacts, Policy, Request, Who, decide
from consent.model import Interaction
from engine.gate import Released, gather_facts, release
from engine.identity import patients_of, people_with_nhs_number, person_of
from engine.identity.tables import PatientNumber
from engine.models import Resource

R = cast(Table, Resource.__table__)
NUMBERS = cast(Table, PatientNumber.__table__)


@dataclass(frozen=True, slots=True)
class Reader:
    """What every read needs: the store, the policy, the audit trail and the clock."""

    engine: Engine
    policy: Policy
    audit: Appender

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Page:
    since: datetime | None = None
    offset: int = 0
    count: int | None = None


def _nhs_number(conn: Connection, patient_ids: Sequence[str]) -> str | None:
    rows = conn.execute(
        select(NUMBERS.c.nhs_number).where(NUMBERS.c.patient_id.in_(list(patient_ids)))
    ).scalars()
    return min(rows, default=None)


def _person(
    reader: Reader,
    conn: Connection,
    who: Who,
    person: str | None,
    purpose: str | None,
    request: Request,
    page: Page,
) -> tuple[Released, list[str]]:
    now = reader.now()
    if person is None:
        decision = decide(who, PatientFacts(""), purpose, request, now, reader.policy)
        return Released(decision, (), 0), []
    members = patients_of(conn, person)
    facts = gather_facts(conn, person, members, reader.policy)
    released = release(
        conn, who, facts, members, purpose, request, now, reader.policy,
        since=page.since, offset=page.offset, count=page.count,
    )  # fmt: skip
    return released, members


def _action(interaction: Interaction) -> Action:
    return cast(Action, interaction)


def person_record(
    reader: Reader,
    who: Who,
    context: RequestContext,
    patient_id: str,
    request: Request,
    page: Page = Page(),
) -> Released:
    """One person's record (``$everything``, a read, a search within the person), audited."""
    with reader.engine.connect() as conn:
        person = person_of(conn, patient_id)
        released, members = _person(reader, conn, who, person, who.purpose, request, page)
        nhs = _nhs_number(conn, members) if members else None
    entry = entry_for(
        released.decision, who, context, _action(request.interaction),
        patient_id=person, nhs_number=nhs, released=released.resources,
    )  # fmt: skip
    return disclose(reader.audit, entry, released)


def owner_of(reader: Reader, resource_type: str, resource_id: str) -> str | None:
    """The Patient an active stored resource belongs to (its own id for a Patient)."""
    with reader.engine.connect() as conn:
        return conn.execute(
            select(R.c.patient_id).where(
                R.c.id == resource_id, R.c.resource_type == resource_type, R.c.status == "active"
            )
        ).scalar_one_or_none()


def find_patients(
    reader: Reader, who: Who, context: RequestContext, nhs_number: str, query: str
) -> list[dict[str, Any]]:
    """Patient search by NHS number: one decision and one audit entry per person found."""
    request = Request("search", frozenset({"Patient"}))
    found: list[dict[str, Any]] = []
    with reader.engine.connect() as conn:
        people: list[str | None] = list(people_with_nhs_number(conn, nhs_number)) or [None]
        results = [
            (person, *_person(reader, conn, who, person, who.purpose, request, Page()))
            for person in people
        ]
    for person, released, _ in results:
        entry = entry_for(
            released.decision, who, context, "search",
            patient_id=person, nhs_number=nhs_number, released=released.resources, query=query,
        )  # fmt: skip
        found.extend(disclose(reader.audit, entry, released).resources)
    return found
