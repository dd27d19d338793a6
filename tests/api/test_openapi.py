"""``/openapi.json`` tells the truth: unique operation ids, the paging and filter parameters,
the bearer scheme on what needs a token, FHIR JSON answers and OperationOutcome errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engine.api import create_app
from engine.api.errors import FHIR_JSON
from engine.settings import Settings


def document(client: TestClient) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns, for one, of a duplicate operation id
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}


def test_operation_ids_are_unique_and_named_for_their_routes(client: TestClient) -> None:
    ops = operations(document(client))
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert ops[("GET", "/fhir/Patient/{patient_id}/$everything")]["operationId"] == "everything"
    assert ops[("DELETE", "/fhir/{path}")]["operationId"] == "write_delete"


def test_paging_and_filter_parameters_are_documented(client: TestClient) -> None:
    ops = operations(document(client))
    everything = ops[("GET", "/fhir/Patient/{patient_id}/$everything")]
    params = {p["name"]: p for p in everything["parameters"]}
    assert {"patient_id", "_type", "_since", "_count", "_offset"} <= set(params)
    assert params["_count"]["schema"]["maximum"] == 1000
    search = ops[("GET", "/fhir/{resource_type}")]
    assert {"_count", "_offset", "patient"} <= {p["name"] for p in search["parameters"]}
    # Text in the document, read after the IG gate (so anyone else gets the audited 403):
    # the description says what is accepted.
    audit = {p["name"]: p for p in ops[("GET", "/fhir/AuditEvent")]["parameters"]}
    assert "1 to 500" in audit["_count"]["description"]
    assert "next" in audit["_cursor"]["description"]


def test_answers_are_fhir_json_and_errors_operation_outcomes(client: TestClient) -> None:
    doc = document(client)
    for (method, path), op in operations(doc).items():
        responses = op["responses"]
        assert "422" not in responses, f"{method} {path} documents FastAPI's 422"
        for status, response in responses.items():
            assert list(response.get("content", {FHIR_JSON: None})) == [FHIR_JSON], (path, status)
        errors = [r for s, r in responses.items() if s.startswith(("4", "5"))]
        assert errors, f"{method} {path} documents no error"
        for response in errors:
            ref = response["content"][FHIR_JSON]["schema"]["$ref"]
            assert ref.endswith("/OperationOutcome")


def test_the_bearer_scheme_guards_what_needs_a_token(client: TestClient) -> None:
    doc = document(client)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ops = operations(doc)
    open_routes = {("GET", "/healthz"), ("GET", "/fhir/metadata")} | {
        (m, "/fhir/{path}") for m in ("POST", "PUT", "PATCH", "DELETE")
    }
    for key, op in ops.items():
        assert ("security" in op) == (key not in open_routes), key


def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'scr.db'}"
    settings = Settings(database_url=missing, data_dir=tmp_path, auth_mode="dev")
    with TestClient(create_app(settings)) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["issue"][0]["code"] == "transient"
