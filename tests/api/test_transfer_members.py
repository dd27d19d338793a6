"""A transfer is read as the record is: over the person's Patients that are members now."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.systmone import SystmOneAdapter
from engine.api.transfer import _decision
from engine.gate import gather_facts
from engine.identity import members_of, person_of
from engine.ingest import ingest
from tests.api.conftest import NHS, PATIENT, Store
from tests.consent.personas import POLICY, who
from tests.factories import s1_patient, write_systmone


def test_a_withdrawn_patients_rows_give_no_relationship_to_a_transfer(store: Store) -> None:
    """A test patient flagged after it was taken in is no member of its person: a
    relationship left on its rows must not let its practice read the person's transfers
    while the record read finds none."""
    with store.engine.connect() as conn:
        person = person_of(conn, PATIENT)
    write_systmone(store.folder, [s1_patient("1", NHS, TestPatient="Y")])
    ingest(store.engine, store.settings, store.codes, SystmOneAdapter(), str(store.folder))
    with store.engine.connect() as conn:
        members = members_of(conn, person)
        assert gather_facts(conn, person, members.patient_ids, POLICY).relationships == ()
    gp = who("clinical", org="Y00001", org_kind="gp-practice")
    services: Any = SimpleNamespace(engine=store.engine, policy=POLICY)
    assert not _decision(services, gp, person).permit
