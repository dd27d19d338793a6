"""The read path against a real store: narrowed, filtered and counted on what may be seen."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pytest
from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql

from adapters.base import SourceRef
from adapters.systmone import SystmOneAdapter
from consent import Request, Who, load, mask
from engine.canonical import dumps
from engine.gate import (
    _FIELDS,
    RELATIONSHIP_TYPES,
    _facts_query,
    _page_query,
    gather_facts,
    release,
)
from engine.ingest import ingest
from engine.models import Resource
from tests.factories import nhs_numbers, s1_code, s1_patient, s1_registration, write_systmone

POLICY = load()
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORGS = [
    {"ID": "5001", "Name": "Riverside Surgery", "NationalId": "Y00001"},
    {"ID": "5002", "Name": "Hillside Surgery", "NationalId": "Y00002"},
]
NHS = next(nhs_numbers())
PATIENT_ID = SourceRef("systmone", "Y00001", "SRPatient", "1").resource_id("Patient")


def user(org: str, role: str = "S8000:G8000:R8000", profile: str = "clinical") -> Who:
    return Who(
        user_id=f"u-{org}", name="Test User", profile=profile, role_code=role, org=org,
        org_kind="gp-practice", ig_training=date(2026, 6, 1),
    )  # fmt: skip


@pytest.fixture
def store(engine, settings, codes, tmp_path):  # type: ignore[no-untyped-def]
    def load_extract(extra_sensitive: int = 0) -> None:
        codes_rows = [
            s1_code("10", "1"),
            s1_code("11", "1", NumericValue="130"),
            s1_code("12", "1", IDOrganisationVisibleTo="5001"),
            *(
                s1_code(str(20 + i), "1", SNOMEDCode="76272004", SNOMEDText="Syphilis")
                for i in range(1 + extra_sensitive)
            ),
        ]
        registrations = [s1_registration("90", "5001"), s1_registration("91", "5002")]
        folder = write_systmone(
            tmp_path / "x", [s1_patient("1", NHS)], codes_rows,
            organisations=ORGS, registrations=registrations,
        )  # fmt: skip
        ingest(engine, settings, codes, SystmOneAdapter(), str(folder))

    load_extract()
    return engine, load_extract


def read(engine, who: Who, types: frozenset[str] = frozenset(), **page):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        facts = gather_facts(conn, "person-1", [PATIENT_ID], POLICY)
        return release(
            conn, who, facts, [PATIENT_ID], "TREAT", Request("everything", types), NOW, POLICY,
            **page,
        )  # fmt: skip


def observations(released) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [r for r in released.resources if r["resourceType"] == "Observation"]


def test_owning_practice_sees_its_own_confidential_items_but_not_its_sensitive_ones(store):
    """Source-confidential stays with its source; a legally restricted category leaves no
    one, the practice that recorded it included, unless a consent opens it (contract)."""
    engine, _ = store
    released = read(engine, user("Y00001"))
    assert released.decision.permit
    assert len(observations(released)) == 3
    assert all("76272004" not in str(o) for o in released.resources)
    assert released.withheld == {"labels.excluded": 1}


def test_other_practice_sees_neither_confidential_nor_sensitive_items(store):
    engine, _ = store
    released = read(engine, user("Y00002"))
    assert released.decision.permit
    assert {o["valueQuantity"]["value"] for o in observations(released)} == {120, 130}
    assert all("76272004" not in str(o) for o in released.resources)


def test_totals_and_pages_do_not_change_when_hidden_items_are_added(store):
    engine, load_extract = store
    before = read(engine, user("Y00002"), frozenset({"Observation"}), offset=0, count=1)
    load_extract(extra_sensitive=5)
    after = read(engine, user("Y00002"), frozenset({"Observation"}), offset=0, count=1)
    assert before.total == after.total == 2
    assert len(after.resources) == 1
    second = read(engine, user("Y00002"), frozenset({"Observation"}), offset=1, count=1)
    assert second.resources != after.resources and second.total == 2


def test_organisation_without_a_relationship_gets_nothing(store):
    engine, _ = store
    released = read(engine, user("Y00009"))
    assert not released.decision.permit
    assert released.resources == () and released.total == 0


def test_receptionist_sees_no_clinical_item(store):
    engine, _ = store
    released = read(engine, user("Y00001", role="S8001:G8003:R8009", profile="admin"))
    assert released.decision.permit
    kinds = {r["resourceType"] for r in released.resources}
    assert "Observation" not in kinds and "Patient" in kinds


def test_what_policy_holds_back_is_counted_by_reason_never_shown(store):
    engine, _ = store
    other = read(engine, user("Y00002"))
    assert other.withheld == {"labels.excluded": 2}
    receptionist = read(engine, user("Y00001", role="S8001:G8003:R8009", profile="admin"))
    assert receptionist.withheld["profile.types"] >= 4
    assert read(engine, user("Y00009")).withheld == {}


def _restamp_observation(engine, value: int, **facts: str) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        rows = conn.execute(
            select(Resource.id, Resource.body).where(Resource.resource_type == "Observation")
        ).all()
        (target,) = [r.id for r in rows if orjson.loads(r.body)["valueQuantity"]["value"] == value]
        conn.execute(update(Resource).where(Resource.id == target).values(**facts))


def test_a_row_is_judged_on_its_stored_facts(store):
    engine, _ = store
    _restamp_observation(engine, 130, section="unclassified", facts_version=POLICY.facts_version)
    released = read(engine, user("Y00002"))
    assert {o["valueQuantity"]["value"] for o in observations(released)} == {120}
    assert released.withheld == {"labels.excluded": 2, "profile.sections": 1}


def test_facts_derived_by_other_rules_are_not_trusted(store):
    """A row stored under other section rules is judged on its body, as if it had no facts."""
    engine, _ = store
    _restamp_observation(engine, 130, section="unclassified", facts_version="other-rules")
    released = read(engine, user("Y00002"))
    assert {o["valueQuantity"]["value"] for o in observations(released)} == {120, 130}
    assert released.withheld == {"labels.excluded": 2}


def _bodies(engine) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {r.id: r.body for r in conn.execute(select(Resource.id, Resource.body))}


def test_an_item_of_a_type_the_decision_masks_nothing_of_is_the_stored_json(store):
    engine, _ = store
    released = read(engine, user("Y00001"))
    stored = _bodies(engine)
    assert len(released.items) > 5
    assert all(i.json == stored[i.id] for i in released.items)
    assert released.resources == tuple(orjson.loads(stored[i.id]) for i in released.items)


def test_a_masked_item_is_never_the_stored_json(store):
    engine, _ = store
    narrative = {"status": "generated", "div": "<div>narrative</div>"}
    with engine.begin() as conn:
        body = conn.execute(select(Resource.body).where(Resource.id == PATIENT_ID)).scalar_one()
        body = dumps(orjson.loads(body) | {"text": narrative})
        conn.execute(update(Resource).where(Resource.id == PATIENT_ID).values(body=body))
    released = read(engine, user("Y00001", role="S8001:G8003:R8009", profile="admin"))
    stored = _bodies(engine)
    assert released.items and released.decision.obligations.fields
    for item in released.items:
        assert item.json == orjson.dumps(
            mask(orjson.loads(stored[item.id]), released.decision, POLICY, "Y00001")
        )
        assert "text" not in orjson.loads(item.json)
    assert any(b"text" in stored[i.id] and i.json != stored[i.id] for i in released.items)


def _retie(engine, **facts: str | None) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the stored facts, not the body, of the person's registration at Y00002."""
    with engine.begin() as conn:
        registration = and_(
            Resource.resource_type == "EpisodeOfCare", Resource.source_key.endswith("|91")
        )
        assert conn.execute(update(Resource).where(registration).values(**facts)).rowcount == 1


def _relationship_orgs(engine) -> set[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        facts = gather_facts(conn, "person-1", [PATIENT_ID], POLICY)
    return {r.org for r in facts.relationships}


ELSEWHERE = '{"kind":"registration","org":"Y00009"}'


def test_a_relationship_is_gathered_from_its_stored_facts(store):
    engine, _ = store
    assert _relationship_orgs(engine) == {"Y00001", "Y00002"}
    _retie(engine, relation=ELSEWHERE, relation_ref=None, facts_version=POLICY.facts_version)
    assert _relationship_orgs(engine) == {"Y00001", "Y00009"}
    assert read(engine, user("Y00009")).decision.permit
    assert not read(engine, user("Y00002")).decision.permit


@pytest.mark.parametrize("version", ["other-rules", None])
def test_a_relationship_stored_under_other_rules_is_gathered_from_its_body(store, version):
    """Stale or missing relation facts never decide: the body does, as if there were none."""
    engine, _ = store
    _retie(engine, relation=ELSEWHERE, relation_ref=None, facts_version=version)
    assert _relationship_orgs(engine) == {"Y00001", "Y00002"}
    assert read(engine, user("Y00002")).decision.permit
    assert not read(engine, user("Y00009")).decision.permit


def test_an_organisation_stored_under_other_rules_is_resolved_from_its_body(store):
    engine, _ = store
    with engine.begin() as conn:
        conn.execute(
            update(Resource)
            .where(Resource.resource_type == "Organization")
            .values(relation="Y00009", facts_version="other-rules")
        )
    assert _relationship_orgs(engine) == {"Y00001", "Y00002"}


def test_the_facts_statement_is_rendered_once_on_postgresql() -> None:
    """No parameter of it is rendered into its text per execution (``engine.db.among``); its
    fixed lists are bound as they always were."""
    compiled = _facts_query("postgresql").compile(dialect=postgresql.psycopg.dialect())
    assert not compiled.post_compile_params
    bound = set(compiled.params.values())
    assert {*RELATIONSHIP_TYPES, "Consent", "Patient", "received", "discharged"} <= bound


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_statements_columns_come_in_the_order_their_rows_are_unpacked(dialect: str) -> None:
    """``release`` and ``_Gathered.add`` unpack rows by position, so a column moved in either
    statement would be read as another; this pins both orders to the unpacking."""
    for own_only, labels, since, ids in [(False, frozenset(), False, False),
                                         (True, frozenset({"x"}), True, True)]:  # fmt: skip
        page = _page_query(dialect, own_only, labels, labels, since, ids)
        assert [c.name for c in page.selected_columns] == [
            "id", "resource_type", "source_org", "body", "labels", "section", "policy_labels",
            "facts_version", "source_key", "run_id", "version_id",
        ]  # fmt: skip
    facts = _facts_query(dialect)
    assert [c.name for c in facts.selected_columns] == list(_FIELDS) == [
        "kind", "resource_type", "source_org", "labels", "relation", "body", "relation_ref",
        "org_relation", "org_body", "reason_code", "user_id", "org", "reason_text", "review",
        "start", "expiry",
    ]  # fmt: skip
    for part in facts.selects:
        assert [c.name for c in part.selected_columns] == list(_FIELDS)
