"""Masked reads of a restricted person: every path masks alike, and leaves valid FHIR."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import text

from adapters.base import resource_id, source_key
from adapters.emis import EmisAdapter
from consent import PersonLabel, Request, decide, mask, unmasked, visible
from engine.ingest import ingest
from tests.adapters.test_emis import ORG, P_SPINE, TRUE, write_extract
from tests.adapters.test_emis import patient as emis_patient
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.test_fhir import _gp_record_at, _restricted_by_the_council, get
from tests.api.transfers import CARE_HOME, place
from tests.consent.personas import (
    GP,
    NOW,
    POLICY,
    directive,
    facts,
    hospital_clinician,
    meta,
    typical,
    who,
)

EVERYTHING = Request("everything")
ADDRESS = {"line": ["1 Refuge Lane"], "postalCode": "ZZ99 3VZ"}
PHONE = {"system": "phone", "value": "07700 900000"}


def _restricted(user: Any) -> Any:
    return facts(typical(user), labels=frozenset({PersonLabel("restricted-person", GP)}))


def _plan() -> dict[str, Any]:
    return {
        "resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
        "meta": {"versionId": "2"},
        "contained": [{"resourceType": "RelatedPerson", "id": "rp",
                       "patient": {"reference": "Patient/p"},
                       "address": [ADDRESS], "telecom": [PHONE]}],
        "careTeam": [{"reference": "#rp"}],
    }  # fmt: skip


def _stored_plan(plan_id: str) -> dict[str, Any]:
    """A care plan of the person with a contact contained in it."""
    return {
        "resourceType": "CarePlan", "id": plan_id, "status": "active", "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "contained": [{"resourceType": "RelatedPerson", "id": "rp",
                       "patient": {"reference": f"Patient/{PATIENT}"},
                       "address": [ADDRESS], "telecom": [PHONE]}],
        "careTeam": [{"reference": "#rp"}],
    }  # fmt: skip


def _dangling(resource: dict[str, Any]) -> list[str]:
    """Local references (``#id``) with no contained resource of that id (FHIR R4 ref-1)."""
    ids = {c.get("id") for c in resource.get("contained", [])}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("#") and ref[1:] not in ids:
                found.append(ref)
            for k, v in node.items():
                if k != "contained":
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(resource)
    return found


def test_a_type_narrowed_read_masks_a_restricted_persons_contained_contact() -> None:
    """A decision asked for CarePlan alone keeps the rule for the RelatedPerson a care plan may
    contain: a restricted person's refuge address must not leave, versioned, through a
    per-type search, a read by id or ``_type``, when ``$everything`` masks it."""
    user = hospital_clinician()
    asked = Request("search", frozenset({"CarePlan"}))
    d = decide(user, _restricted(user), "TREAT", asked, NOW, POLICY)
    plan = _plan()
    assert d.permit and visible(meta(plan, GP), d)
    assert not unmasked("CarePlan", d), "the whole record's read masks this type"
    shown = mask(plan, d, POLICY, GP)
    assert "ZZ99 3VZ" not in str(shown) and "07700" not in str(shown)
    assert "meta" not in shown


def test_a_type_narrowed_search_or_read_masks_the_contained_address(
    client: TestClient, store: Store, token: Token
) -> None:
    """Through the API: another practice's GP searching CarePlan, or reading it by id, gets the
    restricted person's contained contact masked, as ``$everything`` gives it."""
    _restricted_by_the_council(store)
    _gp_record_at(store, "1 Old Street")
    plan = _stored_plan("cp-review")
    _store_row(store, plan, "CarePlan", "care-plans")
    other = token("other-gp")
    everything = get(client, other, f"Patient/{PATIENT}/$everything").json()
    assert "cp-review" in str(everything) and "ZZ99 3VZ" not in str(everything)
    searched = get(client, other, "CarePlan", patient=PATIENT)
    assert searched.status_code == 200 and "cp-review" in searched.text
    by_id = get(client, other, "CarePlan/cp-review")
    assert "ZZ99 3VZ" not in searched.text and "ZZ99 3VZ" not in by_id.text


def test_a_contained_contact_is_judged_on_the_whole_profile_whatever_was_asked() -> None:
    """A decision asked for CarePlan alone judges the contact a care plan contains against
    every type the profile may see, not the asked one: a clinician keeps it, as in the whole
    record, and a social worker keeps it without its narrative (the profile's rule for it)."""
    asked = Request("read", frozenset({"CarePlan"}))
    contact = {"resourceType": "RelatedPerson", "id": "rp", "text": {"div": "Sister"}}
    plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
            "contained": [contact], "careTeam": [{"reference": "#rp"}]}  # fmt: skip
    for user in (who("clinical"), who("social-care")):
        whole = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
        narrowed = decide(user, facts(typical(user)), "TREAT", asked, NOW, POLICY)
        assert narrowed.obligations.types == {"CarePlan"}, "the query stays narrowed"
        assert mask(plan, narrowed, POLICY, GP) == mask(plan, whole, POLICY, GP)
        assert mask(plan, narrowed, POLICY, GP)["contained"][0]["id"] == "rp", user.profile
    assert "text" not in mask(plan, narrowed, POLICY, GP)["contained"][0]


def test_a_care_plans_contained_contact_is_the_same_on_every_read_path(
    client: TestClient, token: Token, store: Store
) -> None:
    """A GP gets the care plan's contained contact in ``$everything``, and the same care plan
    from a read by id, a per-type search and ``$everything?_type=``: none masks it away."""
    _store_row(store, _stored_plan("cp-1"), "CarePlan", "care-plans")
    t = token("gp")

    def entry(doc: dict[str, Any]) -> dict[str, Any]:
        (found,) = [e["resource"] for e in doc["entry"] if e["resource"]["id"] == "cp-1"]
        return found

    whole = entry(get(client, t, f"Patient/{PATIENT}/$everything").json())
    assert whole["contained"][0]["resourceType"] == "RelatedPerson"
    typed = get(client, t, f"Patient/{PATIENT}/$everything", _type="CarePlan").json()
    assert entry(typed) == whole
    assert entry(get(client, t, "CarePlan", patient=PATIENT).json()) == whole
    assert get(client, t, "CarePlan/cp-1").json() == whole


def _store_row(store: Store, resource: dict[str, Any], rtype: str, section: str) -> None:
    """A row like an ingested one, copied from the person's first Observation row (same
    Patient, source organisation, run and facts), with this body."""
    with store.engine.begin() as conn:
        row = conn.execute(text(
            "SELECT * FROM resource WHERE resource_type = 'Observation' AND source_org = 'Y00001'"
            " AND labels = '' ORDER BY id LIMIT 1"
        )).mappings().one()  # fmt: skip
        values = dict(row) | {
            "id": resource["id"], "resource_type": rtype, "section": section,
            "body": orjson.dumps(resource), "source_key": row["source_key"] + "|review",
            "last_updated": datetime(2020, 1, 1, tzinfo=UTC), "relation": None,
            "relation_ref": None,
        }  # fmt: skip
        cols = ", ".join(values)
        conn.execute(text(f"INSERT INTO resource ({cols}) VALUES ("
                          + ", ".join(f":{k}" for k in values) + ")"), values)  # fmt: skip


def test_since_tells_nothing_of_a_change_to_a_contained_contact(
    client: TestClient, store: Store, token: Token
) -> None:
    """A care plan whose only change is its contained contact's (withheld) address must not
    turn up in a ``_since`` poll, telling another organisation that, and about when, the
    person moved."""
    _restricted_by_the_council(store)
    _gp_record_at(store, "1 Old Street")
    plan = _stored_plan("cp-since")
    _store_row(store, plan, "CarePlan", "care-plans")
    other = token("other-gp")
    path = f"Patient/{PATIENT}/$everything"
    between = datetime.now(UTC).isoformat()
    before = get(client, other, path, _since=between).json()
    moved = plan | {"contained": [plan["contained"][0] | {"address": [{"postalCode": "ZZ99 4VZ"}]}]}
    with store.engine.begin() as conn:  # what an ingest of the moved contact writes
        conn.execute(text("UPDATE resource SET body = :b, last_updated = :t, "
                          "version_id = version_id + 1 WHERE id = 'cp-since'"),
                     {"b": orjson.dumps(moved), "t": datetime.now(UTC)})  # fmt: skip
    whole = get(client, other, path).json()
    assert "cp-since" in str(whole) and "ZZ99" not in str(whole), "masked either way"
    after = get(client, other, path, _since=between).json()
    ids = lambda doc: sorted(e["resource"]["id"] for e in doc.get("entry", []))  # noqa: E731
    assert ids(after) == ids(before), "a change to nothing visible must not show through _since"


def test_a_resource_whose_contained_resource_was_taken_out_leaves_without_its_version(
    client: TestClient, store: Store, token: Token
) -> None:
    """Under a decision with no field rule, a care plan whose contained Device (a type no
    profile may see) was taken out kept its versionId and a Provenance naming that version:
    a change to the Device alone showed as version 2, and when."""
    plan = {
        "resourceType": "CarePlan", "id": "cp-dev", "status": "active", "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "contained": [{"resourceType": "Device", "id": "dev",
                       "deviceName": [{"name": "Pump A", "type": "user-friendly-name"}]}],
        "activity": [{"detail": {"status": "in-progress",
                                 "productReference": {"reference": "#dev"}}}],
        "meta": {"versionId": "2", "lastUpdated": "2026-12-01T10:00:00+00:00"},
    }  # fmt: skip
    _store_row(store, plan, "CarePlan", "care-plans")
    path = f"Patient/{PATIENT}/$everything"
    doc = get(client, token("other-gp"), path, _revinclude="Provenance:target").json()
    shown = {e["resource"]["id"]: e["resource"] for e in doc["entry"]}
    assert "contained" not in shown["cp-dev"] and "Pump" not in str(doc)
    assert "versionId" not in shown["cp-dev"].get("meta", {})
    assert "lastUpdated" not in shown["cp-dev"].get("meta", {})
    targets = [t["reference"] for r in shown.values() if r["resourceType"] == "Provenance"
               for t in r["target"]]  # fmt: skip
    assert "CarePlan/cp-dev" in targets and not any("cp-dev/_history" in t for t in targets)


def test_a_reference_to_a_contained_resource_taken_out_is_marked_masked() -> None:
    """A contained resource the mask takes out (a Device no profile may see, a Patient's
    contained GP under the restricted-person rule) leaves no ``#ref`` pointing at nothing
    (FHIR R4 ref-1): the reference is marked masked (data-absent-reason)."""
    user = hospital_clinician()
    d = decide(user, _restricted(user), "TREAT", EVERYTHING, NOW, POLICY)
    obs = {
        "resourceType": "Observation", "id": "o", "status": "final",
        "code": {"text": "SpO2"},
        "contained": [{"resourceType": "Device", "id": "dev", "deviceName": [
            {"name": "Pulse oximeter", "type": "user-friendly-name"}]}],
        "device": {"reference": "#dev"},
    }  # fmt: skip
    patient = {
        "resourceType": "Patient", "id": "p",
        "contained": [{"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Who"}]}],
        "generalPractitioner": [{"reference": "#gp"}],
    }  # fmt: skip
    assert d.permit and visible(meta(obs, GP), d)
    assert (
        _dangling(mask(obs, d, POLICY, GP)) == [] and _dangling(mask(patient, d, POLICY, GP)) == []
    )


def test_a_restriction_of_past_medications_leaves_current_drugs_named() -> None:
    """A restriction of past medications must not withhold the drugs of current statements
    (GP Connect names them by ``medicationReference``), or A&E sees current statements
    naming nothing."""
    user = hospital_clinician()
    restriction = directive("restrict-category", category="medications-past")
    d = decide(user, facts(typical(user), directives=(restriction,)), "TREAT", EVERYTHING,
               NOW, POLICY)  # fmt: skip
    drug = {"resourceType": "Medication", "id": "m1", "code": {"coding": [
        {"system": "http://snomed.info/sct", "code": "39113611000001102"}]}}  # fmt: skip
    current = {"resourceType": "MedicationStatement", "status": "active",
               "medicationReference": {"reference": "Medication/m1"}}  # fmt: skip
    assert d.permit and visible(meta(current, GP), d), "the current statement is shared"
    assert visible(meta(drug, GP), d), "so is the drug it names"


def test_the_gp_fast_path_is_unchanged() -> None:
    """A GP with no field rules keeps the unparsed path: masking costs only where it acts."""
    user = who("clinical")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert d.permit and not d.obligations.fields and unmasked("Observation", d)


def test_a_restricted_persons_placement_id_does_not_give_its_care_home_away(
    client: TestClient, store: Store, token: Token
) -> None:
    """A restricted person's placement leaves without its care home, but its id was made
    from person|care home|start, each of the rest in the same answer: hashing the public
    list of care-home codes against the id found where they live."""
    emis = write_extract(store.folder.parent / "emis", {
        "Admin_Organisation": [{"OrganisationGuid": ORG, "OrganisationName": "F",
                                "ODSCode": "Y90099"}],
        "Admin_Patient": [emis_patient(P_SPINE, NHS, GivenName="Renée", Surname="Smith",
                                       DateOfBirth="1950-03-01", SpineSensitive=TRUE)],
    })  # fmt: skip
    ingest(store.engine, store.settings, store.codes, EmisAdapter(), str(emis))
    place(store, CARE_HOME)
    doc = client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(token())).json()
    shown = [e["resource"] for e in doc["entry"]]
    (placement,) = [r for r in shown if "care-home-placement" in str(r.get("type"))]
    assert "managingOrganization" not in placement and CARE_HOME not in str(doc)
    council_person = "https://fhir.scr.example/Id/council-person/"
    council, person = next(
        (i["system"].removeprefix(council_person), i["value"])
        for r in shown if r["resourceType"] == "Patient"
        for i in r.get("identifier", []) if i["system"].startswith(council_person)
    )  # fmt: skip
    start = placement["period"]["start"]
    tried = {
        home: resource_id("EpisodeOfCare",
                          source_key("council", council, "placements", f"{person}|{home}|{start}"))
        for home in (CARE_HOME, *(f"VCH{n:02}" for n in range(100)))
    }  # fmt: skip
    assert placement["id"] not in tried.values()
