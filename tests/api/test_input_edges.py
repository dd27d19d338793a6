"""Input schemathesis found answered 500 on PostgreSQL, which refuses a NUL byte in any text:
ids that cannot be FHIR ids are read as unknown ids (decided, audited, 404 or an empty
searchset), and stored text with a NUL is refused as invalid before anything is written."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import NHS, Store, Token, auth
from tests.api.test_fhir import audit_actions

NUL_ID = "a%00b"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/fhir/Patient/{NUL_ID}", 404),
        (f"/fhir/Patient/{NUL_ID}/$everything", 404),
        (f"/fhir/Observation/{NUL_ID}", 404),
        (f"/fhir/Observation?patient={NUL_ID}", 200),
        (f"/access/explain?patient={NUL_ID}", 200),
    ],
)
def test_an_id_with_a_nul_byte_is_an_unknown_id_and_is_audited(
    client: TestClient, token: Token, store: Store, path: str, status: int
) -> None:
    before = len(audit_actions(store))
    answer = client.get(path, headers=auth(token("gp")))
    assert answer.status_code == status, answer.text
    if status == 200 and "entry" in answer.json():
        assert answer.json()["total"] == 0 and answer.json()["entry"] == []
    if status == 404:
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert len(audit_actions(store)) == before + 1


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        (
            "break-glass",
            {"patient": NHS, "reason_code": "5", "reason_text": "a\x00b"},
            "reason_text",
        ),
        (
            "break-glass",
            {"patient": NHS, "reason_code": "5\x00", "reason_text": "x"},
            "reason_code",
        ),
        ("relationship", {"patient": NHS, "reason": "a\x00b"}, "reason"),
    ],
)
def test_stored_text_with_a_nul_byte_is_refused_as_invalid(
    client: TestClient, token: Token, store: Store, route: str, body: dict[str, str], field: str
) -> None:
    before = audit_actions(store)
    answer = client.post(f"/access/{route}", json=body, headers=auth(token("ae-doctor")))
    assert answer.status_code == 400, answer.text
    issues = answer.json()["issue"]
    assert [i["expression"] for i in issues] == [[field]]
    assert audit_actions(store) == before
