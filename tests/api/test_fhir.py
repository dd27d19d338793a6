"""The FHIR API: every read path filtered alike, nothing revealed by a refusal, a count or a
page, tokens checked, writes refused, and no data without an audit entry."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from sqlalchemy import text

from adapters.base import SourceRef
from adapters.council import CouncilAdapter
from adapters.gpconnect import GpConnectAdapter
from audit.query import stream
from engine.api import create_app
from engine.api.auth import DEV_ALGORITHM, dev_key
from engine.api.deps import SESSION_COOKIE, request_id
from engine.ingest import ingest
from tests.adapters.test_gpconnect import bundle, organization, patient
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.factories import write_csv

NHS_ID = f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"


def get(client: TestClient, token: str, path: str, **params: Any) -> Any:
    return client.get(f"/fhir/{path}", params=params, headers=auth(token))


def observations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]


def audit_actions(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, outcome FROM audit_entry ORDER BY seq"))
        return [(r.action, r.outcome) for r in rows]


def test_every_read_path_is_filtered_identically(client: TestClient, token: Token) -> None:
    for persona, expected in (("gp", 3), ("other-gp", 2)):
        t = token(persona)
        everything = get(client, t, f"Patient/{PATIENT}/$everything").json()
        searched = get(client, t, "Observation", patient=PATIENT).json()
        via_type = get(client, t, f"Patient/{PATIENT}/$everything", _type="Observation").json()
        ids = sorted(o["id"] for o in observations(everything))
        assert len(ids) == expected
        assert sorted(o["id"] for o in observations(searched)) == ids
        assert sorted(o["id"] for o in observations(via_type)) == ids
        assert searched["total"] == via_type["total"] == expected
        for rid in ids:
            assert get(client, t, f"Observation/{rid}").status_code == 200
        Bundle.model_validate(everything)


def _walked(client: TestClient, token: str, path: str, **params: Any) -> tuple[list[str], int]:
    """Every entry over every page of a searchset, following ``next``, and the pages walked."""
    doc = get(client, token, path, **params).json()
    ids, pages = [], 0
    while True:
        pages += 1
        ids += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in doc["entry"]]
        after = [link["url"] for link in doc.get("link", []) if link["relation"] == "next"]
        if not after:
            return ids, pages
        doc = client.get(after[0], headers=auth(token)).json()


def test_paging_discloses_exactly_what_one_page_does_with_hidden_items_added(
    client: TestClient, token: Token, store: Store
) -> None:
    """Walked a page at a time, with hidden items added first, $everything and a search give
    the same items as unpaged, one a page: no page (or next link) for what is hidden."""
    store.load(extra_sensitive=3)
    t = token("other-gp")
    whole, _ = _walked(client, t, f"Patient/{PATIENT}/$everything")
    paged, pages = _walked(client, t, f"Patient/{PATIENT}/$everything", _count=1)
    assert sorted(paged) == sorted(whole) and pages == len(whole)
    seen = sorted(i for i in whole if i.startswith("Observation/"))
    searched, pages = _walked(client, t, "Observation", patient=PATIENT, _count=1)
    assert sorted(searched) == seen and pages == len(seen) == 2


def test_other_organisations_never_get_confidential_or_sensitive_items(
    client: TestClient, token: Token
) -> None:
    gp_ids = {
        o["id"]
        for o in observations(get(client, token("gp"), f"Patient/{PATIENT}/$everything").json())
    }
    other = get(client, token("other-gp"), f"Patient/{PATIENT}/$everything").json()
    hidden = gp_ids - {o["id"] for o in observations(other)}
    assert len(hidden) == 1 and "76272004" not in str(other)
    for rid in hidden:
        response = get(client, token("other-gp"), f"Observation/{rid}")
        assert response.status_code == 404


def test_a_legally_restricted_item_leaves_for_no_one_not_even_its_recorder(
    client: TestClient, token: Token, store: Store
) -> None:
    """The contract: a legally restricted category is never shown unless a consent opens it
    to the organisation, the practice that recorded it included; read by id, it is not found."""
    with store.engine.connect() as conn:
        (rid,) = conn.execute(
            text("SELECT id FROM resource WHERE resource_type = 'Observation' AND labels LIKE "
                 "'%sensitive%'")
        ).scalars()  # fmt: skip
    for persona in ("gp", "other-gp"):
        whole = get(client, token(persona), f"Patient/{PATIENT}/$everything").json()
        assert "76272004" not in str(whole) and rid not in str(whole)
        assert get(client, token(persona), f"Observation/{rid}").status_code == 404


def test_a_person_outside_the_users_relationships_answers_as_if_not_found(
    client: TestClient, token: Token
) -> None:
    t = token("ae-doctor")
    refused = get(client, t, f"Patient/{PATIENT}/$everything")
    missing = get(client, t, "Patient/no-such-patient/$everything")
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()
    assert get(client, t, f"Patient/{PATIENT}").json() == get(client, t, "Patient/nope").json()
    search = get(client, t, "Patient", identifier=NHS_ID).json()
    assert search["total"] == 0 and search["entry"] == []
    assert get(client, t, "Observation", patient=PATIENT).json()["total"] == 0


def test_patient_search_by_nhs_number(client: TestClient, token: Token) -> None:
    found = get(client, token("gp"), "Patient", identifier=NHS_ID).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [PATIENT]
    assert get(client, token("gp"), "Patient", identifier="9990000000").status_code == 400
    bad = get(
        client, token("gp"), "Patient", identifier="https://fhir.nhs.uk/Id/nhs-number|9990000001"
    )
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["identifier"]


def test_receptionist_sees_no_clinical_item(client: TestClient, token: Token) -> None:
    doc = get(client, token("receptionist"), f"Patient/{PATIENT}/$everything").json()
    kinds = {e["resource"]["resourceType"] for e in doc["entry"]}
    assert "Patient" in kinds and "Observation" not in kinds
    assert get(client, token("receptionist"), "Observation", patient=PATIENT).json()["total"] == 0


def test_totals_and_pages_do_not_change_when_hidden_items_are_added(
    client: TestClient, token: Token, store: Store
) -> None:
    t = token("other-gp")
    before = get(client, t, "Observation", patient=PATIENT, _count=1).json()
    store.load(extra_sensitive=5)
    after = get(client, t, "Observation", patient=PATIENT, _count=1).json()
    assert before["total"] == after["total"] == 2
    assert [link["relation"] for link in after["link"]] == ["self", "first", "next"]
    nxt = next(link["url"] for link in after["link"] if link["relation"] == "next")
    second = client.get(nxt, headers=auth(t)).json()
    assert second["total"] == 2 and len(second["entry"]) == 1
    assert [link["relation"] for link in second["link"]] == ["self", "first", "previous"]
    assert second["entry"][0]["resource"]["id"] != after["entry"][0]["resource"]["id"]


@pytest.mark.parametrize("path", [f"/fhir/Patient/{PATIENT}", "/fhir"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_are_refused_with_405(
    client: TestClient, token: Token, method: str, path: str
) -> None:
    """The base too: ``POST /fhir`` is FHIR's transaction and batch endpoint."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    response = client.request(method.upper(), path, json=bundle, headers=auth(token()))
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/nothing/at/all",
        f"/fhir/Observation/{PATIENT}/_history/1",
        f"/fhir/Patient/{PATIENT}/$summary",
        "/fhir/",
        "/fhir",
    ],
)
def test_an_unknown_route_under_fhir_is_404_not_405(
    client: TestClient, token: Token, path: str
) -> None:
    response = client.get(path, headers=auth(token()))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("OPTIONS", "/fhir/metadata"),
        ("OPTIONS", f"/fhir/Patient/{PATIENT}/$everything"),
        ("POST", "/fhir/metadata"),
        ("DELETE", "/fhir/nothing/at/all"),
        ("PUT", "/fhir/$process-message"),
        ("GET", "/fhir/$process-message"),
    ],
)
def test_every_405_names_the_allowed_methods(
    client: TestClient, token: Token, method: str, path: str
) -> None:
    response = client.request(method, path, headers=auth(token()))
    assert response.status_code == 405
    expected = "POST" if path.endswith("$process-message") else "GET, HEAD"
    assert response.headers["Allow"] == expected
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["X-Request-Id"]


def test_head_is_answered_as_get_without_the_body_and_audited_alike(
    client: TestClient, token: Token, store: Store
) -> None:
    for path in ("/fhir/metadata", f"/fhir/Patient/{PATIENT}/$everything", "/fhir/Patient/x"):
        got = client.get(path, headers=auth(token()))
        head = client.head(path, headers=auth(token()))
        assert (head.status_code, head.content) == (got.status_code, b"")
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["X-Request-Id"]
    assert audit_actions(store)[-4:] == [("everything", "permit")] * 2 + [("read", "deny")] * 2


def _forged(token: str, **claims: Any) -> str:
    body = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(body | claims, "a shared secret nobody should accept", algorithm="HS256")


@pytest.mark.parametrize(
    "kind", ["tampered", "expired", "alg-none", "wrong-audience", "wrong-issuer", "hs256", "none"]
)
def test_untrusted_tokens_get_401_and_are_audited(
    client: TestClient, token: Token, store: Store, kind: str
) -> None:
    good = token()
    past = datetime.now(UTC) - timedelta(hours=3)
    unsigned = jwt.decode(good, options={"verify_signature": False})
    bad = {
        "tampered": lambda: good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
        "expired": lambda: token(now=past),
        "alg-none": lambda: jwt.encode(unsigned, None, algorithm="none"),
        "wrong-audience": lambda: _resign(store, good, aud="other"),
        "wrong-issuer": lambda: _resign(store, good, iss="someone-else"),
        "hs256": lambda: _forged(good),
        "none": lambda: "",
    }[kind]()
    response = client.get(f"/fhir/Patient/{PATIENT}", headers=auth(bad) if bad else {})
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Patient" not in response.text.replace("OperationOutcome", "")
    assert audit_actions(store)[-1] == ("token-refused", "deny")


def _resign(store: Store, good: str, **claims: Any) -> str:
    body = jwt.decode(good, options={"verify_signature": False})
    return jwt.encode(body | claims, dev_key(store.settings), algorithm=DEV_ALGORITHM)


def test_a_failing_audit_store_gives_503_and_no_data(
    client: TestClient, token: Token, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]

    def broken(entry: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(svc.audit, "append", broken)
    response = get(client, token(), f"Patient/{PATIENT}/$everything")
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    assert PATIENT not in response.text and NHS not in response.text


def test_each_access_is_audited_before_it_is_answered(
    client: TestClient, token: Token, store: Store
) -> None:
    get(client, token("gp"), f"Patient/{PATIENT}/$everything")
    get(client, token("ae-doctor"), f"Patient/{PATIENT}/$everything")
    get(client, token("gp"), "Patient", identifier=NHS_ID)
    assert audit_actions(store)[-3:] == [
        ("everything", "permit"),
        ("everything", "deny"),
        ("search", "permit"),
    ]


def test_a_read_of_a_type_no_profile_may_read_is_decided_and_audited(
    client: TestClient, token: Token, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provenance is an R4 type no profile reads: its read is refused by the decision
    (``profile.types``) and audited like any other, and is a 503 with the trail down. A name
    that is no R4 type is no resource's address: 404, as an unknown route is."""
    assert get(client, token(), "Provenance/abc").status_code == 404
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["outcome"]) == ("read", "deny")
    assert "profile.types" in last["rules"]
    before = audit_actions(store)
    assert get(client, token(), "Nonsense/abc").status_code == 404
    assert audit_actions(store) == before
    svc = client.app.state.services  # type: ignore[attr-defined]

    def broken(entry: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(svc.audit, "append", broken)
    assert get(client, token(), "Provenance/abc").status_code == 503


def test_request_ids_are_echoed_or_made(client: TestClient, token: Token) -> None:
    echoed = client.get("/fhir/metadata", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    made = client.get("/fhir/metadata", headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["X-Request-Id"] not in ("", "bad id with spaces")
    assert client.get("/fhir/Nothing/here/at/all").headers["X-Request-Id"]


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    assert request_id("abc\n") != "abc\n"
    assert request_id("abc") == "abc"


def test_metadata_is_a_valid_capability_statement(client: TestClient) -> None:
    doc = client.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(doc)
    assert doc["rest"][0]["resource"][0]["type"] == "Patient"


def test_metadata_declares_every_route_and_parameter_it_serves(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    types = {r["type"]: r for r in rest["resource"]}
    assert {p["name"] for p in types["AuditEvent"]["searchParam"]} >= {"patient", "date", "_cursor"}
    assert "Provenance:target" in types["Patient"]["operation"][0]["documentation"]
    assert {p["name"] for p in types["Observation"]["searchParam"]} == {
        "patient",
        "_count",
        "_offset",
        "_summary",
    }
    assert [o["name"] for o in rest["operation"]] == ["process-message"]


def test_bad_parameters_are_operation_outcomes(client: TestClient, token: Token) -> None:
    for path, params in (
        (f"Patient/{PATIENT}/$everything", {"_count": "-1"}),
        (f"Patient/{PATIENT}/$everything", {"_count": "1001"}),
        (f"Patient/{PATIENT}/$everything", {"_since": "yesterday"}),
        (f"Patient/{PATIENT}/$everything", {"_type": "Foo"}),
        (f"Patient/{PATIENT}/$everything", {"_type": "Observation,CodeableConcept"}),
        (f"Patient/{PATIENT}/$everything", {"_since": "0001-01-01T00:00:00+05:00"}),
        (f"Patient/{PATIENT}/$everything", {"_since": "9999-12-31T23:59:59-05:00"}),
        ("Observation", {}),
    ):
        response = get(client, token(), path, **params)
        assert response.status_code == 400, (path, params)
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("Observation", {"patient": PATIENT, "_count": "0"}),
        ("Observation", {"patient": PATIENT, "_summary": "count"}),
        (f"Patient/{PATIENT}/$everything", {"_count": "0"}),
        (f"Patient/{PATIENT}/$everything", {"_summary": "count", "_count": "1"}),
    ],
)
def test_a_count_only_search_has_the_total_and_no_entries(
    client: TestClient, token: Token, path: str, params: dict[str, str]
) -> None:
    full = get(client, token(), path, **{k: v for k, v in params.items() if k == "patient"})
    doc = get(client, token(), path, **params).json()
    assert (doc["total"], doc["entry"]) == (full.json()["total"], [])
    assert [link["relation"] for link in doc["link"]] == ["self"]
    assert "_summary=count" in doc["link"][0]["url"]


def test_patient_may_be_this_servers_absolute_reference(client: TestClient, token: Token) -> None:
    by_id = get(client, token(), "Observation", patient=PATIENT).json()
    full_url = f"http://127.0.0.1:8000/fhir/Patient/{PATIENT}"  # as entries' fullUrl reads
    by_url = get(client, token(), "Observation", patient=full_url).json()
    assert by_url["total"] == by_id["total"] == 3
    elsewhere = get(
        client, token(), "Observation", patient=f"https://elsewhere.example/fhir/Patient/{PATIENT}"
    )
    assert elsewhere.json()["total"] == 0


def test_type_names_r4_resource_types_not_r4b_ones(client: TestClient, token: Token) -> None:
    path = f"Patient/{PATIENT}/$everything"
    assert get(client, token(), path, _type="MedicinalProduct").status_code != 400
    r4b_only = get(client, token(), path, _type="SubscriptionTopic")
    assert r4b_only.status_code == 400
    assert r4b_only.json()["issue"][0]["expression"] == ["_type"]


@pytest.mark.parametrize(
    "since",
    [
        "2024-W01-1T00:00:00Z",  # ISO week date
        "2024-01-01T00Z",  # no minutes or seconds
        "2024-01-01T00:00Z",  # no seconds
        "20240101T000000Z",  # basic format
        "2024-01-01 00:00:00Z",  # a space for the T
        "2024-01-01T00:00:00+23:59",  # an offset beyond +14:00
        "2024-01-01T00:00:00",  # no time zone
    ],
)
def test_since_takes_only_a_fhir_instant(client: TestClient, token: Token, since: str) -> None:
    response = get(client, token(), f"Patient/{PATIENT}/$everything", _since=since)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_since"]


def test_since_takes_an_instant_with_any_offset_or_fraction(
    client: TestClient, token: Token
) -> None:
    path = f"Patient/{PATIENT}/$everything"
    everything = get(client, token(), path).json()["total"]
    for since in (
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00.123456789+14:00",
        "2016-12-31T23:59:60Z",  # a leap second
    ):
        assert get(client, token(), path, _since=since).json()["total"] == everything, since
    # a '+' typed unencoded arrives as a space
    typed = client.get(f"/fhir/{path}?_since=2000-01-01T00:00:00+01:00", headers=auth(token()))
    assert typed.status_code == 200 and typed.json()["total"] == everything


def test_everything_can_carry_each_items_provenance(client: TestClient, token: Token) -> None:
    path = f"Patient/{PATIENT}/$everything"
    plain = get(client, token(), path).json()
    doc = get(client, token(), path, _revinclude="Provenance:target").json()
    matches = [e for e in doc["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"] for e in doc["entry"] if e["search"]["mode"] == "include"]
    assert doc["total"] == plain["total"] == len(matches) == len(included)
    assert {e["fullUrl"] for e in doc["entry"] if e["search"]["mode"] == "include"} == {
        f"urn:uuid:{p['id']}" for p in included
    }, "made for the answer, not kept: no URL of the server's would answer"
    targets = {p["target"][0]["reference"].rsplit("/_history/", 1)[0] for p in included}
    assert targets == {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in matches}
    Bundle.model_validate(doc)
    bad = get(client, token(), path, _revinclude="Observation:subject")
    assert bad.status_code == 400


def _restricted_by_the_council(store: Store) -> None:
    """The council records the store's person as restricted (an S-flag-like marker)."""
    folder = store.folder.parent / "council"
    folder.mkdir(exist_ok=True)
    tables = {
        "organisation": [{"code": "E06000999", "name": "Borsetshire Council"}],
        "persons": [{
            "person_id": "1", "first_name": "Renée", "last_name": "Smith",
            "date_of_birth": "1950-03-01", "gender": "F", "nhs_number": NHS,
            "restricted": "true", "address": "1 Hidden Lane", "postcode": "BS1 1AA",
        }],
    }  # fmt: skip
    for table, rows in tables.items():
        write_csv(folder / f"{table}.csv", list(rows[0]), rows, "utf-8")
    ingest(store.engine, store.settings, store.codes, CouncilAdapter(), str(folder))


def _gp_record_at(store: Store, line: str) -> None:
    """The practice's GP Connect record of the person, living at ``line``."""
    pat = patient(NHS, name=[{"family": "Smith", "given": ["Renée"]}], birthDate="1950-03-01",
                  gender="female", address=[{"line": [line], "postalCode": "BS1 1AA"}])  # fmt: skip
    folder = store.folder.parent / "gpc"
    folder.mkdir(exist_ok=True)
    (folder / "record.json").write_bytes(orjson.dumps(bundle(pat, organization(ods="Y00001"))))
    ingest(store.engine, store.settings, store.codes, GpConnectAdapter(), str(folder))


def test_a_restricted_persons_hidden_address_change_shows_through_no_version_or_since(
    client: TestClient, store: Store, token: Token
) -> None:
    """A change to nothing but what the mask removes (a restricted person's address) must
    not show through meta's version and time, ``_since`` or the Provenance, or a user polling
    the record learns that, and when, the protected person moved house."""
    _restricted_by_the_council(store)
    _gp_record_at(store, "1 Old Street")
    other = token("other-gp")
    path = f"Patient/{PATIENT}/$everything"

    def read(**params: str) -> dict[str, dict[str, Any]]:
        doc = get(client, other, path, _revinclude="Provenance:target", **params).json()
        found = {}
        for e in doc["entry"]:
            res = e["resource"]
            if res["resourceType"] == "Provenance":
                key = f"Provenance of {res['target'][0]['reference'].split('/_history/')[0]}"
                found[key] = {k: v for k, v in res.items() if k != "recorded"}
            else:
                found[f"{res['resourceType']}/{res['id']}"] = res
        return found

    between = datetime.now(UTC).isoformat()
    before, since_before = read(), read(_since=between)
    _gp_record_at(store, "2 New Road")  # only the withheld element changes
    after, since_after = read(), read(_since=between)
    patients = [k for k in before if k.startswith("Patient/")]
    assert patients and all("address" not in before[k] for k in patients), "masked, as before"
    assert after == before and since_after == since_before
    assert all(k in since_after for k in patients), "a masked resource may have changed"
    for key in patients:
        assert not {"versionId", "lastUpdated"} & set(before[key]["meta"])
        assert f"Provenance of {key}" not in before, "a restricted person's source row is kept"
    seen = observations({"entry": [{"resource": r} for r in before.values()]})
    assert seen and not any("versionId" in o.get("meta", {}) for o in seen), (
        "a type may contain what the mask removes: under a masking decision none is versioned"
    )


def test_a_read_by_id_releases_and_audits_that_resource_only(
    client: TestClient, token: Token, store: Store
) -> None:
    doc = get(client, token(), "Observation", patient=PATIENT).json()
    first = doc["entry"][0]["resource"]["id"]
    assert get(client, token(), f"Observation/{first}").json()["id"] == first
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["refs"]) == ("read", [f"Observation/{first}"])
    assert last["disclosed"] == {"Observation": 1}
    assert get(client, token(), f"Condition/{PATIENT}").status_code == 404
    assert audit_actions(store)[-1] == ("read", "deny")


def test_a_read_by_id_answered_not_found_names_the_id_asked_for(
    client: TestClient, token: Token, store: Store
) -> None:
    """Ids are made from source rows (SystmOne's are sequential), so a user may walk them: a
    read answered 404, for an item withheld from them or for no item at all, left an entry
    naming neither the id nor, for no item, the person, and an officer could not find who
    tried to open a given confidential item."""
    withheld = SourceRef("systmone", "Y00001", "SRCode", "12").resource_id("Observation")
    absent = SourceRef("systmone", "Y00001", "SRCode", "99999").resource_id("Observation")
    for rid in (withheld, absent):
        assert get(client, token("other-gp"), f"Observation/{rid}").status_code == 404
        last = list(stream(store.engine))[-1]
        assert (last["action"], last["refs"]) == ("read", [])
        assert last["query"] == f"/fhir/Observation/{rid}"


def test_responses_are_not_cached_or_framed(client: TestClient, token: Token) -> None:
    response = get(client, token(), f"Patient/{PATIENT}/$everything")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_api_ignores_the_session_cookie(client: TestClient, token: Token, store: Store) -> None:
    client.cookies.set(SESSION_COOKIE, token())
    response = client.get(f"/fhir/Patient/{PATIENT}/$everything")
    assert response.status_code == 401
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["rules"]) == ("token-refused", ["auth.token-missing"])


def test_a_refused_token_is_audited_with_why(
    client: TestClient, token: Token, store: Store
) -> None:
    past = datetime.now(UTC) - timedelta(hours=3)
    assert client.get(f"/fhir/Patient/{PATIENT}", headers=auth(token(now=past))).status_code == 401
    last = list(stream(store.engine))[-1]
    assert last["rules"] == ["auth.token-invalid", "auth.ExpiredSignatureError"]


def test_the_audit_entry_counts_what_was_withheld(
    client: TestClient, token: Token, store: Store
) -> None:
    get(client, token("other-gp"), f"Patient/{PATIENT}/$everything")
    last = list(stream(store.engine))[-1]
    assert last["withheld"] == {"labels.excluded": 2}
    assert "76272004" not in str(last) and "Syphilis" not in str(last)


def test_an_unmasked_entry_is_the_stored_json_byte_for_byte(
    client: TestClient, token: Token, store: Store
) -> None:
    with store.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, body FROM resource")).all())
    response = get(client, token("gp"), f"Patient/{PATIENT}/$everything")
    entries = response.json()["entry"]
    assert len(entries) > 5
    for entry in entries:
        body = bytes(stored[entry["resource"]["id"]])
        assert b'"resource":' + body + b',"search"' in response.content
    one = entries[0]["resource"]
    read = get(client, token("gp"), f"{one['resourceType']}/{one['id']}")
    assert read.content == bytes(stored[one["id"]])


def test_an_unexpected_error_is_a_500_naming_only_the_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(base: str) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("engine.api.fhir.capability_statement", broken)
    response = client.get("/fhir/metadata", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    assert response.json()["issue"][0]["diagnostics"] == "Internal error (request req-500)"
    assert "secret" not in response.text
    assert response.headers["X-Request-Id"] == "req-500"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_refused_tokens_from_one_client_are_throttled_not_each_audited(
    store: Store, token: Token
) -> None:
    """Anyone can send bad tokens, and each refusal was an entry on the chained trail; past
    the limit a client gets 429 and its window one entry counting them."""
    settings = replace(store.settings, refusal_limit=5, refusal_window_seconds=3600)
    with TestClient(create_app(settings, store.engine)) as client:
        before = len(list(stream(store.engine)))
        answers = [client.get("/fhir/Patient", headers=auth("x")) for _ in range(50)]
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 45
        assert answers[-1].json()["issue"][0]["code"] == "throttled"
        assert answers[-1].headers["retry-after"] == "3600"
        assert len(list(stream(store.engine))) - before == 5
        assert get(client, token(), "Patient", identifier=NHS_ID).status_code == 200
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["rules"], last["withheld"]) == (
        "token-refused",
        ["auth.throttled"],
        {"auth.throttled": 45},
    )


def test_an_unexpected_database_error_is_logged_without_the_row_it_quotes(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A database error's own text can quote the row it failed on (PostgreSQL: 'Failing row
    contains (..., <the NHS number>)'); the log keeps the error's kind, its primary message and
    the frames, not the row."""

    def broken(*_: Any) -> Any:
        with store.engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (n int NOT NULL, nhs text)"))
            conn.execute(text("INSERT INTO probe VALUES (NULL, :nhs)"), {"nhs": NHS})

    monkeypatch.setattr("engine.api.fhir.capability_statement", broken)
    caplog.set_level(logging.ERROR, "scr.api")
    response = client.get("/fhir/metadata", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    (said,) = [r.getMessage() for r in caplog.records if "req-500" in r.getMessage()]
    assert said.startswith("request req-500 failed: ") and "null" in said.splitlines()[0].lower()
    assert "in broken" in said  # the frames are kept
    assert NHS not in caplog.text
