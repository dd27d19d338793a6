"""The combined record is the union of a person's linked source records, and an unlink takes
the other source's data out of the view at once (issue 3)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine

from adapters.base import SourceRef
from adapters.systmone import SystmOneAdapter
from consent import Request, Who, load
from engine.gate import gather_facts, release
from engine.identity import patients_of, people_with_nhs_number, person_of, unlink
from engine.ingest import ingest
from tests.factories import nhs_numbers, s1_code, s1_patient, s1_registration, write_systmone

POLICY = load()
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NHS = next(nhs_numbers(999_300_000))
PRACTICES = {"Y00001": "5001", "Y00002": "5002"}
GP = Who(
    user_id="u-gp", name="Synthetic GP", profile="clinical", role_code="S8000:G8000:R8000",
    org="Y00001", org_kind="gp-practice", ig_training=date(2026, 6, 1),
)  # fmt: skip


def patient_id(ods: str) -> str:
    return SourceRef("systmone", ods, "SRPatient", "1").resource_id("Patient")


def load_practice(engine, settings, codes, tmp_path, ods: str, value: str) -> None:  # type: ignore[no-untyped-def]
    org = PRACTICES[ods]
    folder = write_systmone(
        tmp_path / ods,
        [s1_patient("1", NHS)],
        [s1_code("10", "1", NumericValue=value)],
        organisations=[{"ID": org, "Name": f"Practice {ods}", "NationalId": ods}],
        registrations=[s1_registration("90", org)],
    )  # fmt: skip
    ingest(engine, settings, codes, SystmOneAdapter(), str(folder))


def values_seen(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        person = person_of(conn, patient_id("Y00001"))
        assert person is not None
        members = patients_of(conn, person)
        facts = gather_facts(conn, person, members, POLICY)
        released = release(
            conn, GP, facts, members, "TREAT", Request("everything", frozenset({"Observation"})),
            NOW, POLICY,
        )  # fmt: skip
    return {r["valueQuantity"]["value"] for r in released.resources}


def test_view_is_the_union_of_linked_sources_and_an_unlink_narrows_it_at_once(
    engine, settings, codes, tmp_path
):
    load_practice(engine, settings, codes, tmp_path, "Y00001", "121")
    load_practice(engine, settings, codes, tmp_path, "Y00002", "132")
    with engine.connect() as conn:
        assert person_of(conn, patient_id("Y00001")) == person_of(conn, patient_id("Y00002"))
        assert people_with_nhs_number(conn, NHS) == [person_of(conn, patient_id("Y00001"))]
    assert values_seen(engine) == {121, 132}
    unlink(
        engine, patient_id("Y00001"), patient_id("Y00002"),
        who="ig-officer-1", reason="Two people sharing one NHS number: reported to PDS",
    )  # fmt: skip
    assert values_seen(engine) == {121}
