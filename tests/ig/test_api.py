"""``GET /fhir/AuditEvent``: BALP-shaped AuditEvents for IG officers, filtered and paged."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from engine.identity import link
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.test_access import REASON, everything, post
from tests.api.test_fhir import audit_actions
from tests.audit.test_export import unmet_balp
from tests.ig.conftest import officer
from tests.ig.test_completeness import _second_record
from tests.ig.test_search import BEYOND_UTC

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."


def _events(client: TestClient, token: str, **params: Any) -> Any:
    response = client.get("/fhir/AuditEvent", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def _activity(client: TestClient, token: Token) -> None:
    assert everything(client, token("gp")).status_code == 200
    assert everything(client, token("ae-doctor")).status_code == 404
    made = post(
        client,
        token("ae-doctor"),
        "break-glass",
        {"patient": NHS, "reason_code": "5", "reason_text": REASON},
    )
    assert made.status_code == 201
    assert everything(client, token("ae-doctor"), "ETREAT").status_code == 200


def test_audit_events_are_balp_shaped_and_filtered(
    client: TestClient, token: Token, ig_token: str, store: Store
) -> None:
    _activity(client, token)
    bundle = _events(client, ig_token, patient=NHS)
    assert bundle["type"] == "searchset"
    found = [e["resource"] for e in bundle["entry"]]
    # This search is about the person too, so it is found under them (another officer asking
    # who handled their data finds it); the four accesses are the rest.
    events = [e for e in found if not _by(e, "u-ig")]
    assert len(events) == 4 and len(found) == 5
    read = events[-1]
    assert read["meta"]["profile"] == [BALP + "PatientQuery"] and unmet_balp(read) == []
    user = next(a for a in read["agent"] if a.get("requestor"))
    assert user["who"]["identifier"]["value"] == "u-gp"
    refused = _events(client, ig_token, patient=NHS, outcome="4")["entry"]
    assert [e["resource"]["outcome"] for e in refused] == ["4"]
    etreat = _events(
        client, ig_token, agent="https://fhir.nhs.uk/Id/sds-user-id|u-ae-doctor", purpose="ETREAT"
    )["entry"]
    assert [e["resource"]["subtype"][0]["code"] for e in etreat] == ["operation"]
    today = events[0]["recorded"][:10]
    todays = _events(client, ig_token, patient=NHS, date=f"eq{today}")["entry"]
    assert len([e for e in todays if not _by(e["resource"], "u-ig")]) == 4
    assert _events(client, ig_token, patient=NHS, date=f"lt{today}")["entry"] == []
    assert audit_actions(store)[-1] == ("ig-view", "permit")


def _by(event: dict[str, Any], user: str) -> bool:
    return any(
        a.get("requestor") and a["who"]["identifier"]["value"] == user for a in event["agent"]
    )


def test_patient_is_searched_and_named_by_the_patient_id_the_api_serves(
    client: TestClient, token: Token, ig_token: str
) -> None:
    """The trail holds the person id, which no API route serves: a search by the Patient id
    the API serves finds the reads of it, and each event's patient reference is one the API
    answers (the person id is kept beside it, for the console and the CSV)."""
    assert everything(client, token("gp")).status_code == 200
    for asked in (NHS, f"Patient/{PATIENT}", PATIENT):
        found = [e["resource"] for e in _events(client, ig_token, patient=asked)["entry"]]
        (read,) = [e for e in found if not _by(e, "u-ig")]
        (patient,) = [e for e in read["entity"] if e.get("role", {}).get("code") == "1"]
        assert patient["what"]["reference"] == f"Patient/{PATIENT}", asked
        assert any(d["type"] == "person-id" for d in patient["detail"])
    served = client.get(f"/fhir/Patient/{PATIENT}", headers=auth(token("gp")))
    assert served.status_code == 200
    nobody = _events(client, ig_token, patient="Patient/nobody-at-all")["entry"]
    assert [e for e in nobody if not _by(e["resource"], "u-ig")] == []


def _not_ig(event: dict[str, Any]) -> bool:
    return not any(
        a.get("who", {}).get("identifier", {}).get("value") == "u-ig" for a in event["agent"]
    )


def _audit_events(client: TestClient, token: str, **params: Any) -> list[dict[str, Any]]:
    return [e["resource"] for e in _events(client, token, **params)["entry"]]


def test_a_patient_search_still_finds_the_reads_made_before_a_merge(
    client: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """The GP reads the record (the entry holds person P). Identity later merges P into P2
    (a duplicate found), recording the move in the Patient's history. IG asks
    ``patient=Patient/<id>`` about that same Patient: resolved to P2 *now* and matched
    exactly, every access made before the merge (under P) would be silently missing."""
    assert everything(client, token("gp")).status_code == 200
    before = _audit_events(client, ig_token, patient=f"Patient/{PATIENT}")
    assert [e for e in before if _not_ig(e)], "found before the merge"
    store.merge()
    after = _audit_events(client, ig_token, patient=f"Patient/{PATIENT}")
    assert [e for e in after if _not_ig(e)], "the read before the merge is no longer found"


def test_a_patient_search_finds_every_person_id_its_records_have_had_and_pages(
    client: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """Two people's records read, then linked as one (identity's own link): a search by
    either Patient finds both reads, page by page; a person id asked directly (no Patient
    has it) is still searched as it is."""
    other = _second_record(store)
    for tok, patient in ((token("gp"), PATIENT), (token("other-gp"), other)):
        assert client.get(f"/fhir/Patient/{patient}/$everything", headers=auth(tok)).is_success
    apart = [e for e in _audit_events(client, ig_token) if _read(e)]
    people = {_person(e) for e in apart}
    assert len(apart) == 2 and len(people) == 2
    link(store.engine, PATIENT, other, who="ig-1", reason="One person after all: PDS checked")
    for asked in (f"Patient/{PATIENT}", other):
        assert [e["id"] for e in _audit_events(client, ig_token, patient=asked) if _read(e)] == [
            e["id"] for e in apart
        ], asked
        paged, params = [], {"patient": asked, "_count": "1"}
        while True:
            bundle = _events(client, ig_token, **params)
            paged += [e["resource"]["id"] for e in bundle["entry"] if _read(e["resource"])]
            nxt = [x["url"] for x in bundle["link"] if x["relation"] == "next"]
            if not nxt:
                break
            params["_cursor"] = parse_qs(urlsplit(nxt[0]).query)["_cursor"][0]
        assert paged == [e["id"] for e in apart]
    for person in people:
        found = [e for e in _audit_events(client, ig_token, patient=person) if _read(e)]
        assert [_person(e) for e in found] == [person]


def _read(event: dict[str, Any]) -> bool:
    """A ``$everything`` read (not the identity changes, nor IG's own searches)."""
    return event["subtype"][0]["code"] == "operation"


def _person(event: dict[str, Any]) -> str:
    (patient,) = [e for e in event["entity"] if e.get("role", {}).get("code") == "1"]
    return next(str(d["valueString"]) for d in patient["detail"] if d["type"] == "person-id")


def test_api_reads_and_searches_export_as_the_balp_profile_they_meet(
    client: TestClient, token: Token, ig_token: str
) -> None:
    """``$everything`` and a search by type are PatientQuery events with the request as asked
    in their one query entity; a read of one resource by id is a PatientRead naming it."""
    gp = auth(token("gp"))
    assert everything(client, token("gp")).status_code == 200
    searched = client.get("/fhir/Observation", params={"patient": PATIENT}, headers=gp)
    assert searched.status_code == 200 and searched.json()["entry"]
    observation = searched.json()["entry"][0]["resource"]["id"]
    assert client.get(f"/fhir/Observation/{observation}", headers=gp).status_code == 200
    found = [e["resource"] for e in _events(client, ig_token, patient=NHS)["entry"]]
    read, search, whole = [e for e in found if not _by(e, "u-ig")]  # newest first
    for event, profile in (
        (whole, "PatientQuery"),
        (search, "PatientQuery"),
        (read, "PatientRead"),
    ):
        assert event["meta"]["profile"] == [BALP + profile] and unmet_balp(event) == []
    (asked,) = [e for e in search["entity"] if e["type"]["code"] == "2"]
    assert base64.b64decode(asked["query"]).decode() == f"/fhir/Observation?patient={PATIENT}"
    (asked,) = [e for e in whole["entity"] if e["type"]["code"] == "2"]
    assert (
        base64.b64decode(asked["query"]).decode().startswith(f"/fhir/Patient/{PATIENT}/$everything")
    )
    (data,) = [e for e in read["entity"] if e["type"]["code"] == "2"]
    assert data["what"] == {"reference": f"Observation/{observation}"}


def test_audit_events_page_by_cursor(client: TestClient, token: Token, ig_token: str) -> None:
    _activity(client, token)
    seen = []
    bundle = _events(client, ig_token, patient=NHS, _count=1)
    assert "evil.example" not in str(
        client.get(
            "/fhir/AuditEvent", params={"patient": NHS},
            headers=auth(ig_token) | {"Host": "evil.example"},
        ).json()
    )  # fmt: skip
    while True:
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        assert nxt[0].startswith("http://127.0.0.1:8000/fhir/AuditEvent?")
        response = client.get(nxt[0].removeprefix("http://127.0.0.1:8000"), headers=auth(ig_token))
        bundle = response.json()
    # The four accesses and the first page's own search; later pages' searches are newer
    # than the cursor, so paging neither repeats nor skips an entry.
    assert len(seen) == len(set(seen)) == 5


def _forged(cursor: bytes) -> str:
    return base64.urlsafe_b64encode(cursor).decode()


def test_bad_parameters_name_the_field(client: TestClient, ig_token: str) -> None:
    for params, field in (
        ({"patient": "1234567890"}, "patient"),
        ({"outcome": "2"}, "outcome"),
        ({"date": "yesterday"}, "date"),
        ({"date": "ge2026-01-01T10:00:00"}, "date"),
        ({"date": "9999-12-31"}, "date"),
        ({"date": "ge0001-01-01T00:00:00+05:00"}, "date"),
        ({"_cursor": "zz"}, "_cursor"),
        ({"_cursor": _forged(b"2026-12-01T00:00:00.000000Z|" + b"9" * 30)}, "_cursor"),
        ({"_cursor": _forged(b"2026-12-01T00:00:00|5")}, "_cursor"),
        ({"agent": "u\x00gp"}, "agent"),
        ({"purpose": "T" * 200}, "purpose"),
    ):
        response = client.get("/fhir/AuditEvent", params=params, headers=auth(ig_token))
        assert response.status_code == 400, params
        assert response.json()["issue"][0]["expression"] == [field]


@pytest.mark.parametrize("forged", BEYOND_UTC)
def test_cursor_time_outside_utc_range_is_400_in_api_and_console(
    web: TestClient, ig_token: str, forged: bytes
) -> None:
    api = web.get("/fhir/AuditEvent", params={"_cursor": _forged(forged)}, headers=auth(ig_token))
    assert api.status_code == 400, api.text
    assert api.json()["issue"][0]["expression"] == ["_cursor"]
    officer(web, ig_token)
    page = web.get("/ig", params={"after": _forged(forged)})
    assert page.status_code == 400 and "after: not a cursor" in page.text


def test_following_an_audit_events_full_url_is_no_refused_look_at_a_record(
    client: TestClient, token: Token, ig_token: str, store: Store
) -> None:
    """The search names each event by a fullUrl no route answers: following it was decided
    as a read of a person's record and refused, and five of them raised the
    repeated-refusals alert against the IG officer."""
    client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(token()))
    found = _events(client, ig_token)
    path = "/fhir/" + found["entry"][0]["fullUrl"].split("/fhir/", 1)[1]
    before = len(audit_actions(store))
    assert client.get(path, headers=auth(ig_token)).status_code == 404
    assert audit_actions(store)[before:] == []
