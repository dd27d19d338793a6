"""What the alert rules need to know beyond the trail: staff details and people's names.

Staff details come from the synthetic staff directory (the demo personas: surname and
postcode); a deployment would feed its HR directory in the same shape. People's surnames and
postcodes are read from their Patient resources, only to compare inside the alert rule: the
alert says that they match, never what they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import orjson
from sqlalchemy import Engine, Table, select

from adapters.synth.personas import PERSONAS
from audit.alerts import PersonNames, Staff, normalise
from engine.identity import patients_of
from engine.models import Resource

R = cast(Table, Resource.__table__)


def staff() -> dict[str, Staff]:
    return {p.user_id: Staff(surname=p.surname, postcode=p.postcode) for p in PERSONAS}


def names_of(engine: Engine, people: Iterable[str]) -> dict[str, PersonNames]:
    """Each person's surnames and postcodes across their linked Patient resources."""
    found: dict[str, PersonNames] = {}
    with engine.connect() as conn:
        for person in set(people):
            surnames: set[str] = set()
            postcodes: set[str] = set()
            bodies = conn.execute(
                select(R.c.body).where(
                    R.c.patient_id.in_(patients_of(conn, person)),
                    R.c.resource_type == "Patient",
                    R.c.status == "active",
                )
            ).scalars()
            for body in bodies:
                patient = orjson.loads(body)
                surnames |= {
                    normalise(n["family"]) for n in patient.get("name", []) if n.get("family")
                }
                postcodes |= {
                    normalise(a["postalCode"])
                    for a in patient.get("address", [])
                    if a.get("postalCode")
                }
            found[person] = PersonNames(frozenset(surnames), frozenset(postcodes))
    return found
