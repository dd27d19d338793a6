"""What every FHIR route checks first: an answer in JSON or a 406, each single-valued parameter
once, and under ``Prefer: handling=strict`` no parameter the route would ignore."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import NHS, PATIENT, Token, auth

EVERYTHING = f"/fhir/Patient/{PATIENT}/$everything"
NHS_ID = f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"
STRICT = {"Prefer": "handling=strict"}


def refused(response: Any, status: int, parameter: str) -> None:
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [parameter], issue
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Accept": "application/fhir+xml"}, {}),
        ({"Accept": "application/xml, text/html"}, {}),
        ({"Accept": "application/fhir+json;q=0, application/fhir+xml"}, {}),
        ({}, {"_format": "xml"}),
        ({"Accept": "application/fhir+json"}, {"_format": "application/fhir+xml"}),
    ],
)
def test_a_format_other_than_json_is_refused_406(
    client: TestClient, token: Token, headers: dict[str, str], params: dict[str, str]
) -> None:
    for path in (EVERYTHING, "/fhir/metadata"):
        response = client.get(path, params=params, headers=auth(token()) | headers)
        refused(response, 406, "_format")
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({}, {}),
        ({"Accept": "application/fhir+json"}, {}),
        ({"Accept": "application/json; charset=utf-8"}, {}),
        ({"Accept": "text/html, */*;q=0.8"}, {}),
        ({"Accept": "application/fhir+xml"}, {"_format": "json"}),
        ({}, {"_format": "application/fhir+json"}),
        ({}, {"_format": "application/fhir json"}),  # a + sent unencoded
    ],
)
def test_json_in_any_of_its_names_is_answered(
    client: TestClient, token: Token, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = client.get(EVERYTHING, params=params, headers=auth(token()) | headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"


def test_strict_handling_refuses_a_parameter_the_server_would_ignore(
    client: TestClient, token: Token
) -> None:
    h = auth(token())
    code = {"patient": PATIENT, "code": "http://snomed.info/sct|0000000"}
    refused(client.get("/fhir/Observation", params=code, headers=h | STRICT), 400, "code")
    refused(client.get(EVERYTHING, params={"start": "2024"}, headers=h | STRICT), 400, "start")
    strict = client.get("/fhir/Observation", params={"patient": PATIENT}, headers=h | STRICT)
    assert strict.status_code == 200


@pytest.mark.parametrize(
    ("prefer", "strict"),
    [
        ([("Prefer", "return=minimal"), ("Prefer", "handling=strict")], True),
        ([("Prefer", "return=minimal, handling = strict")], True),
        ([("Prefer", "handling=strict; lang=en")], True),
        ([("Prefer", 'handling="strict"')], True),
        ([("Prefer", "Handling=STRICT")], True),
        ([("Prefer", "handling=lenient"), ("Prefer", "handling=strict")], False),
        ([("Prefer", 'x="a, handling=strict"')], False),
    ],
)
def test_strict_handling_is_read_as_rfc_7240_writes_it(
    client: TestClient, token: Token, prefer: list[tuple[str, str]], strict: bool
) -> None:
    """Several Prefer lines, comma-separated preferences, parameters after ';', quoted values;
    a preference given twice counts as first given, and a quoted comma separates nothing."""
    headers = [("Authorization", f"Bearer {token()}"), *prefer]
    code = {"patient": PATIENT, "code": "1234"}
    response = client.get("/fhir/Observation", params=code, headers=headers)
    if strict:
        refused(response, 400, "code")
    else:
        assert response.status_code == 200


def test_lenient_handling_ignores_it_and_the_self_link_says_so(
    client: TestClient, token: Token
) -> None:
    h = auth(token())
    code = {"patient": PATIENT, "code": "http://snomed.info/sct|0000000"}
    lenient = client.get("/fhir/Observation", params=code, headers=h | {"Prefer": "return=minimal"})
    assert lenient.status_code == 200 and lenient.json()["total"] == 3
    self_link = lenient.json()["link"][0]
    assert self_link["relation"] == "self" and "code" not in self_link["url"]


def test_summary_is_refused_where_it_is_not_supported(client: TestClient, token: Token) -> None:
    h = auth(token())
    refused(
        client.get("/fhir/Patient", params={"identifier": NHS_ID, "_summary": "count"}, headers=h),
        400,
        "_summary",
    )
    refused(client.get(EVERYTHING, params={"_summary": "true"}, headers=h), 400, "_summary")
    # _count=0 asks for the total alone too: ignored, it would send every Patient
    refused(
        client.get("/fhir/Patient", params={"identifier": NHS_ID, "_count": "0"}, headers=h),
        400,
        "_count",
    )
    found = client.get("/fhir/Patient", params={"identifier": NHS_ID, "_count": "5"}, headers=h)
    assert found.status_code == 200, "any other _count is ignored, as FHIR allows"


def test_a_long_query_is_checked_name_by_name_once(client: TestClient) -> None:
    """20,000 names: counted once each (a count per name was quadratic, on the event loop,
    before any token is asked for)."""
    query = "&".join(["a", "b"] * 10_000)
    assert client.get(f"/fhir/metadata?{query}").status_code == 200
    strict = client.get(f"/fhir/metadata?{query}", headers=STRICT)
    refused(strict, 400, "a")


def test_what_a_client_sent_is_repeated_back_cut_short(client: TestClient, token: Token) -> None:
    strict = client.get(f"/fhir/metadata?{'x' * 20_000}=1", headers=STRICT)
    typed = client.get(EVERYTHING, params={"_type": "Q" * 20_000}, headers=auth(token()))
    for response in (strict, typed):
        assert response.status_code == 400
        assert len(response.json()["issue"][0]["diagnostics"]) < 200


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        (EVERYTHING, {"_type": ["Observation", "Patient"]}, "_type"),
        ("/fhir/Observation", {"patient": ["no-such-patient", PATIENT]}, "patient"),
        (
            "/fhir/Patient",
            {"identifier": ["https://fhir.nhs.uk/Id/nhs-number|9990000018", NHS_ID]},
            "identifier",
        ),
        ("/fhir/Observation", {"patient": PATIENT, "_count": ["1", "2"]}, "_count"),
    ],
)
def test_a_single_valued_parameter_given_twice_is_refused(
    client: TestClient, token: Token, path: str, params: dict[str, Any], parameter: str
) -> None:
    refused(client.get(path, params=params, headers=auth(token())), 400, parameter)


def test_a_repeatable_parameter_may_repeat(client: TestClient, token: Token) -> None:
    dates = {"date": ["ge2000-01-01", "le2100-01-01"]}
    response = client.get("/fhir/AuditEvent", params=dates, headers=auth(token()))
    assert response.status_code == 403  # the date pair passed; a GP is no IG officer


@pytest.mark.parametrize("prefer", [";", "a, ;", ";handling=strict", '"' + '\\"' * 8000])
def test_a_malformed_prefer_header_is_no_preference_and_no_500(
    client: TestClient, token: Token, prefer: str
) -> None:
    """Read before the token, on the event loop: an element with nothing before its ';' was
    a 500, and an unclosed quote full of escaped quotes took the old regex seconds."""
    code = {"patient": PATIENT, "code": "http://snomed.info/sct|0000000"}
    lenient = client.get(
        "/fhir/Observation", params=code, headers=auth(token()) | {"Prefer": prefer}
    )
    assert lenient.status_code == 200 and lenient.json()["total"] == 3
