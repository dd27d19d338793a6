"""What the faster read path must still do: links from configuration, never from the request,
every disclosed item audited (the Provenance beside the record too), and a directory load
felt at once by the process that made it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from adapters.emis import EmisAdapter
from audit.query import stream
from engine.api import create_app
from engine.directory import Entry, replace_directory
from engine.ingest import ingest
from engine.settings import Settings, SettingsError
from tests.adapters.test_emis import ORG, P_SPINE, TRUE, patient, write_extract
from tests.api.conftest import DIRECTORY, NHS, PATIENT, Store, Token, auth
from tests.api.transfers import CARE_HOME, place

EVERYTHING = f"/fhir/Patient/{PATIENT}/$everything"


def links(doc: dict[str, object]) -> list[str]:
    return [link["url"] for link in doc["link"]]  # type: ignore[index, union-attr]


def test_paging_links_ignore_the_host_header(client: TestClient, token: Token) -> None:
    headers = auth(token()) | {"Host": "evil.example"}
    doc = client.get(EVERYTHING, params={"_count": 1}, headers=headers).json()
    urls = links(doc) + [e["fullUrl"] for e in doc["entry"]]
    assert len(links(doc)) == 3 and all(u.startswith("http://127.0.0.1:8000/fhir/") for u in urls)
    assert "evil.example" not in str(doc)


def test_no_redirect_is_built_from_the_host_header(client: TestClient) -> None:
    response = client.get("/fhir", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["resourceType"] == "OperationOutcome"


def test_paging_links_use_the_configured_public_base(store: Store, token: Token) -> None:
    settings = replace(store.settings, public_base_url="https://scr.example.nhs.uk")
    with TestClient(create_app(settings, store.engine)) as client:
        doc = client.get(EVERYTHING, params={"_count": 1}, headers=auth(token())).json()
    assert all(u.startswith("https://scr.example.nhs.uk/fhir/Patient/") for u in links(doc))


def test_the_public_base_must_be_an_http_url() -> None:
    loaded = Settings.load({"SCR_PUBLIC_BASE_URL": "https://scr.example.nhs.uk/"})
    assert loaded.public_base_url == "https://scr.example.nhs.uk"
    with pytest.raises(SettingsError, match="SCR_PUBLIC_BASE_URL"):
        Settings.load({"SCR_PUBLIC_BASE_URL": "javascript:alert(1)"})


def test_the_audit_entry_counts_the_provenance_it_discloses(
    client: TestClient, token: Token, store: Store
) -> None:
    doc = client.get(
        EVERYTHING, params={"_revinclude": "Provenance:target"}, headers=auth(token())
    ).json()
    included = [e["resource"] for e in doc["entry"] if e["search"]["mode"] == "include"]
    last = list(stream(store.engine))[-1]
    assert included and last["disclosed"]["Provenance"] == len(included)
    assert {f"Provenance/{p['id']}" for p in included} <= set(last["refs"])
    assert sum(last["disclosed"].values()) == len(doc["entry"])


def test_a_directory_load_in_this_process_is_felt_by_the_next_request(
    client: TestClient, token: Token, store: Store
) -> None:
    assert client.get(EVERYTHING, headers=auth(token())).status_code == 200
    rest = [Entry(**o) for o in DIRECTORY if o["code"] != "Y00001"]
    with store.engine.begin() as conn:
        replace_directory(conn, "test.2", rest, datetime.now(UTC))
    assert client.get(EVERYTHING, headers=auth(token())).status_code == 404


def test_a_restricted_persons_care_home_is_named_nowhere_in_their_record(
    client: TestClient, token: Token, store: Store
) -> None:
    """A person restricted at one practice (EMIS SpineSensitive) and placed by the council:
    another practice's clinician sees the placement without its care home, and neither the
    placement's source row (identifier, ``meta.source``) nor its Provenance names it."""
    emis = write_extract(store.folder.parent / "emis", {
        "Admin_Organisation": [
            {"OrganisationGuid": ORG, "OrganisationName": "Felpersham Test Practice",
             "ODSCode": "Y90099"},
        ],
        "Admin_Patient": [patient(P_SPINE, NHS, GivenName="Renée", Surname="Smith",
                                  DateOfBirth="1950-03-01", SpineSensitive=TRUE)],
    })  # fmt: skip
    ingest(store.engine, store.settings, store.codes, EmisAdapter(), str(emis))
    place(store, CARE_HOME)
    response = client.get(
        EVERYTHING, params={"_revinclude": "Provenance:target"}, headers=auth(token())
    )
    shown = [e["resource"] for e in response.json()["entry"]]
    placements = [r for r in shown if "care-home-placement" in str(r.get("type"))]
    assert len(placements) == 1 and "managingOrganization" not in placements[0]
    assert any(r["resourceType"] == "Provenance" for r in shown)
    assert CARE_HOME not in response.text
