"""What names a withheld item is withheld with it: a GP Connect consultation topic is titled with
its problem's name, a medicine cites the problem it treats.

Each item carries a marker (``[t1]``) in its text, so that the test can say which left."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

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


def test_the_practice_that_recorded_them_still_sees_them(
    client: TestClient, store: Store, token: Token
) -> None:
    gp_connect(store, *record())
    body = everything(client, token("gp"))
    assert [m for m in WITHHELD + SHOWN if m not in body] == []
