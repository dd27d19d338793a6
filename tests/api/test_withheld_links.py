"""What names a withheld item is withheld with it: a GP Connect consultation topic is titled with
its problem's name, a medicine cites the problem it treats.

Each item carries a marker (``[t1]``) in its text, so that the test can say which left."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.models import Resource
from tests.api.conftest import PATIENT, Store, Token, auth
from tests.web.test_record_sensitive import SCT, gp_connect, syphilis

SUBJECT = {"reference": "Patient/p1"}


def topic(rid: str, *items: str, title: str | None = None) -> dict[str, Any]:
    """A consultation topic (or heading) List, titled as GP Connect titles it."""
    return {
        "resourceType": "List", "id": rid, "status": "current", "mode": "snapshot",
        "title": title or f"Syphilis [{rid}]", "subject": SUBJECT,
        "code": {"coding": [{"system": SCT, "code": "25851000000105", "display": "Topic (EHR)"}]},
        "entry": [{"item": {"reference": ref}} for ref in items],
    }  # fmt: skip


def observation(rid: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid, "status": "final", "subject": SUBJECT,
        "code": {"coding": [{"system": SCT, "code": code}], "text": f"Finding [{rid}]"},
        "effectiveDateTime": "2024-02-01",
    } | extra  # fmt: skip


def encounter(rid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter", "id": rid, "status": "finished", "subject": SUBJECT,
        "type": [{"text": f"Surgery consultation [{rid}]"}], "period": {"start": "2024-02-01"},
    } | extra  # fmt: skip


RELATED = (
    "http://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1"
)
NOPAT = {"security": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}]}


def record() -> list[dict[str, Any]]:
    problem = syphilis("c2") | {
        "extension": [{"url": RELATED, "valueReference": {"reference": "List/t2"}}]
    }
    medicine = {
        "resourceType": "MedicationStatement", "id": "m1", "status": "active",
        "medicationCodeableConcept": {"text": "Benzathine benzylpenicillin [m1]"},
        "reasonReference": [{"reference": "Condition/c2", "display": "Syphilis"}],
        "subject": SUBJECT, "effectivePeriod": {"start": "2024-01-05"}, "taken": "y",
    }  # fmt: skip
    return [
        encounter("e1"),
        topic("t1", "List/h1"),
        topic("h1", "Observation/o1", title="History [h1]"),
        observation("o1", "76272004", context={"reference": "Encounter/e1"}),
        problem,
        topic("t2"),
        medicine,
        topic("t3", "Observation/o3", title="Hypertension [t3]"),
        observation("o3", "75367002", context={"reference": "Encounter/e1"}),
        encounter("e2", diagnosis=[{"condition": {"reference": "Condition/c2"}}]),
        observation("o5", "75367002", context={"reference": "Encounter/e2"}),
        observation("o4", "75367002", meta=NOPAT),
        topic("t4", "Observation/o4", title="Safeguarding [t4]"),
    ]


WITHHELD = ["[t1]", "[h1]", "[o1]", "[c2]", "[t2]", "[m1]", "[e2]", "[o4]", "[t4]"]
SHOWN = ["[e1]", "[t3]", "[o3]", "[o5]"]


def everything(client: TestClient, token: str) -> str:
    response = client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(token))
    assert response.status_code == 200
    return response.text


def test_what_names_or_belongs_to_a_withheld_item_is_withheld_with_it(
    client: TestClient, store: Store, token: Token
) -> None:
    gp_connect(store, *record())
    body = everything(client, token("other-gp"))
    assert [m for m in WITHHELD if m in body] == []
    assert [m for m in SHOWN if m not in body] == [], "context links must not spread labels"


def test_the_practice_that_recorded_them_sees_its_confidential_items_not_restricted_ones(
    client: TestClient, store: Store, token: Token
) -> None:
    """Source-confidential items stay with their source; a legally restricted category, and
    what names it, leaves no one (contract: only a consent opens it)."""
    gp_connect(store, *record())
    body = everything(client, token("gp"))
    confidential = ["[o4]", "[t4]"]
    assert [m for m in confidential + SHOWN if m not in body] == []
    assert [m for m in WITHHELD if m in body and m not in confidential] == []


def medicine(rid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "active",
        "medicationCodeableConcept": {"text": f"Benzathine benzylpenicillin [{rid}]"},
        "subject": SUBJECT, "effectivePeriod": {"start": "2024-01-05"}, "taken": "y",
    } | extra  # fmt: skip


def prescription(rid: str, intent: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": intent,
        "medicationCodeableConcept": {"text": f"Benzathine benzylpenicillin [{rid}]"},
        "subject": SUBJECT, "authoredOn": "2024-01-05",
    } | extra  # fmt: skip


def seen(client: TestClient, token: Token, store: Store, *resources: dict[str, Any]) -> str:
    """What another practice's GP sees, once every marker is shown stored (taken in, not
    quarantined)."""
    gp_connect(store, *resources)
    with store.engine.connect() as conn:
        stored = b" ".join(conn.execute(select(Resource.body)).scalars())
    assert all(f"[{r['id']}]".encode() in stored for r in resources), "all taken in"
    return everything(client, token("other-gp"))


def test_a_medicine_is_withheld_with_its_authorisation_and_issues(
    client: TestClient, store: Store, token: Token
) -> None:
    """The statement cites the problem; the authorisation and its issues name the same drug."""
    body = seen(
        client, token, store, syphilis("c2"),
        medicine("m1", reasonReference=[{"reference": "Condition/c2"}],
                 basedOn=[{"reference": "MedicationRequest/r1"}]),
        prescription("r1", "plan"),
        prescription("r2", "order", basedOn=[{"reference": "MedicationRequest/r1"}]),
    )  # fmt: skip
    assert [m for m in ("[c2]", "[m1]", "[r1]", "[r2]") if m in body] == []


def test_a_reference_names_only_who_or_where(
    client: TestClient, store: Store, token: Token
) -> None:
    """A display naming a problem not sent, or named by identifier only, is free text about a
    clinical item: it is dropped, and the medicine stays."""
    body = seen(
        client, token, store,
        medicine("m3", reasonReference=[{"reference": "Condition/gone", "display": "Syphilis"}]),
        medicine("m4", reasonReference=[
            {"identifier": {"system": "https://EMISWeb/Y00001", "value": "p9"},
             "display": "Syphilis"}]),
    )  # fmt: skip
    assert "[m3]" in body and "[m4]" in body and "Syphilis" not in body


def test_a_sensitive_code_sent_only_in_ctv3_or_under_nopat_spelled_otherwise_is_withheld(
    client: TestClient, store: Store, token: Token
) -> None:
    ctv3 = syphilis("c5") | {
        "code": {"coding": [{"system": "http://read.info/ctv3", "code": "A97z.",
                             "display": "Syphilis NOS [c5]"}]},
    }  # fmt: skip
    nopat = {"security": [{"system": "https://hl7.org/fhir/v3/ActCode/", "code": "NOPAT"}]}
    body = seen(client, token, store, ctv3, observation("o6", "75367002", meta=nopat))
    assert "[c5]" not in body and "[o6]" not in body


RELATED_PROBLEM = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedProblemHeader-1"
)


def test_a_problem_linked_to_a_sensitive_one_keeps_its_own_medicines(
    client: TestClient, store: Store, token: Token
) -> None:
    """Links between problem headers are dropped on the way to R4, so they pass nothing on:
    A&E must still see the sertraline prescribed for depression."""
    depression = {
        "resourceType": "Condition", "id": "c7", "clinicalStatus": "active",
        "verificationStatus": "confirmed", "assertedDate": "2023-05-01", "subject": SUBJECT,
        "code": {"coding": [{"system": SCT, "code": "35489007",
                             "display": "Depressive disorder [c7]"}]},
        "extension": [
            {"url": RELATED_PROBLEM, "extension": [
                {"url": "type", "valueCode": "sibling"},
                {"url": "target", "valueReference": {"reference": "Condition/c2"}}]},
            {"url": RELATED, "valueReference": {"reference": "MedicationRequest/r7"}},
        ],
    }  # fmt: skip
    body = seen(
        client, token, store, syphilis("c2"), depression, prescription("r7", "plan"),
        medicine("m7", basedOn=[{"reference": "MedicationRequest/r7"}]),
    )  # fmt: skip
    assert "[c2]" not in body and all(m in body for m in ("[c7]", "[r7]", "[m7]"))


def test_a_topic_of_a_consultation_the_problem_is_linked_to_is_withheld(
    client: TestClient, store: Store, token: Token
) -> None:
    """GP Connect links a problem to every consultation it was discussed in: the consultation's
    topic Lists (titled with the problem) go with it, the visit and what was written stay."""
    problem = syphilis("c2") | {
        "extension": [{"url": RELATED, "valueReference": {"reference": "Encounter/e9"}}]
    }
    visit = {"encounter": {"reference": "Encounter/e9"}}
    consultation = topic("l9", "List/t9", title="Surgery consultation [l9]") | visit
    consultation["code"]["coding"][0]["code"] = "325851000000107"
    body = seen(
        client, token, store, problem, encounter("e9"), consultation, topic("t9") | visit,
        observation("o9", "75367002", context={"reference": "Encounter/e9"}),
    )  # fmt: skip
    assert [m for m in ("[c2]", "[t9]", "[l9]") if m in body] == []
    assert "[e9]" in body and "[o9]" in body


def test_every_item_of_everything_can_be_read_at_its_full_url(
    client: TestClient, token: Token, store: Store
) -> None:
    """An Immunization (readable, not searchable) answers at the fullUrl $everything gives."""
    gp_connect(store, {
        "resourceType": "Immunization", "id": "i1", "status": "completed", "notGiven": False,
        "primarySource": True, "date": "2024-10-01", "patient": {"reference": "Patient/p1"},
        "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "1119349007"}]},
    })  # fmt: skip
    t = token("gp")
    doc = client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(t)).json()
    urls = [e["fullUrl"] for e in doc["entry"] if e["resource"]["resourceType"] == "Immunization"]
    assert urls
    for url in urls:
        path = url.split("/fhir", 1)[1]
        assert client.get(f"/fhir{path}", headers=auth(t)).status_code == 200, path
    assert client.get(f"/fhir{path}", headers=auth(token("receptionist"))).status_code == 404
    assert client.get("/fhir/Basic/i1", headers=auth(t)).status_code == 404  # no profile sees it
    declared = client.get("/fhir/metadata").json()["rest"][0]["resource"]
    assert {"type": "Immunization", "interaction": [{"code": "read"}]} in declared
