"""Who a read is about: the person, their Patients and the NHS number for the audit entry.

Every read needs all three before it can decide, so they come back from one query (a round
trip to the database costs more than the rows), not from one query each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    and_,
    bindparam,
    select,
)
from sqlalchemy.orm import aliased

from engine.identity.index import patients_of
from engine.identity.workset import LINKS, NUMBERS
from engine.models import Resource

#: The link of the Patient asked about (made once: an alias costs more to build than to use).
_MINE = aliased(LINKS)
R = cast(Table, Resource.__table__)
#: A Patient the source deleted, or withdrew (a test patient), is no member: its records that
#: the source did not also delete would otherwise still be read through its person.
_LIVE = and_(R.c.id == LINKS.c.patient_id, R.c.status == "active")
_MINE_LIVE = aliased(R)


@dataclass(frozen=True, slots=True)
class Members:
    """A person and their Patients now; ``nhs_number`` is the lowest valid one they hold."""

    person_id: str
    patient_ids: tuple[str, ...]
    nhs_number: str | None


def _members(person_id: str, rows: Sequence[tuple[str, str | None]]) -> Members:
    numbers = [n for _, n in rows if n is not None]
    return Members(person_id, tuple(sorted({p for p, _ in rows})), min(numbers, default=None))


def _linked(conn: Connection, where: ColumnElement[bool]) -> list[tuple[str, str | None]]:
    query = (
        select(LINKS.c.patient_id, NUMBERS.c.nhs_number)
        .join(R, _LIVE)
        .outerjoin(NUMBERS, NUMBERS.c.patient_id == LINKS.c.patient_id)
        .where(where)
    )
    return [(r.patient_id, r.nhs_number) for r in conn.execute(query)]


def members_of(conn: Connection, person_id: str) -> Members:
    """The person's Patients and number; a merged-away person id (it has no links of its own)
    reads the survivor's."""
    rows = _linked(conn, LINKS.c.person_id == person_id)
    if not rows:
        patients = patients_of(conn, person_id)
        rows = _linked(conn, LINKS.c.patient_id.in_(patients)) if patients else []
    return _members(person_id, rows)


def _by_patient(patient_id: ColumnElement[Any]) -> Select[Any]:
    return (
        select(_MINE.c.person_id, LINKS.c.patient_id, NUMBERS.c.nhs_number)
        .select_from(_MINE)
        .join(
            _MINE_LIVE,
            and_(_MINE_LIVE.c.id == _MINE.c.patient_id, _MINE_LIVE.c.status == "active"),
        )
        .join(LINKS, LINKS.c.person_id == _MINE.c.person_id)
        .join(R, _LIVE)
        .outerjoin(NUMBERS, NUMBERS.c.patient_id == LINKS.c.patient_id)
        .where(_MINE.c.patient_id == patient_id)
    )


#: Built once for a Patient id given as a value: every ``$everything`` runs it.
_BY_PATIENT = _by_patient(bindparam("patient", type_=String()))


def members_of_patient(conn: Connection, patient_id: str | ColumnElement[Any]) -> Members | None:
    """The person a Patient id (or a subquery giving one) belongs to, with all their Patients;
    ``None`` when none."""
    if isinstance(patient_id, str):
        rows = conn.execute(_BY_PATIENT, {"patient": patient_id}).all()
    else:
        rows = conn.execute(_by_patient(patient_id)).all()
    if not rows:
        return None
    return _members(rows[0].person_id, [(r.patient_id, r.nhs_number) for r in rows])


def served_patient(conn: Connection, person_id: str) -> str | None:
    """The Patient id the FHIR API serves for a person, for a reference that resolves: the
    lowest of their active Patients (a read of any of them is served; the lowest, so every
    event about the person names the same one). A merged-away person id follows to the
    survivor; ``None`` when the person has no active Patient now."""
    ids = members_of(conn, person_id).patient_ids
    return ids[0] if ids else None


#: People remembered by one export's lookup: bounded, so a long export stays in memory bounds.
_LOOKUPS = 65_536


def patient_lookup(engine: Engine) -> Callable[[str], str | None]:
    """:func:`served_patient` for a stream of entries: each person looked up once (while
    remembered), on a connection of its own, so it can run beside the stream's."""

    @lru_cache(maxsize=_LOOKUPS)
    def look(person_id: str) -> str | None:
        with engine.connect() as conn:
            return served_patient(conn, person_id)

    return look
