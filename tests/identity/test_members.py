"""Who a read is about, in one query: the person, their Patients, the audit entry's number."""

from __future__ import annotations

from sqlalchemy import Engine

from engine.identity import Members, link, members_of, members_of_patient, relink
from tests.identity.people import NHS_B, NHS_D, patient
from tests.identity.test_index import DOCTOR, person_of, store


def test_a_patient_id_gives_the_person_every_patient_and_the_lowest_number(
    engine: Engine,
) -> None:
    store(engine, patient(pid="a", nhs=NHS_D), patient(pid="b", nhs=NHS_B, born="1999-09-09"))
    relink(engine, ["a", "b"])
    link(engine, "a", "b", who=DOCTOR, reason="one person")
    person = person_of(engine, "a")
    assert person is not None
    with engine.connect() as conn:
        found = members_of_patient(conn, "b")
        assert found == Members(person, ("a", "b"), min(NHS_B, NHS_D))
        assert members_of(conn, person) == found
        assert members_of_patient(conn, "nobody") is None


def test_a_merged_away_person_reads_the_survivors_patients(engine: Engine) -> None:
    store(engine, patient(pid="a", nhs=NHS_D), patient(pid="b", nhs=NHS_B, born="1999-09-09"))
    relink(engine, ["a", "b"])
    gone = person_of(engine, "b")
    assert gone is not None
    link(engine, "a", "b", who=DOCTOR, reason="one person")
    with engine.connect() as conn:
        assert members_of(conn, gone) == Members(gone, ("a", "b"), min(NHS_B, NHS_D))
