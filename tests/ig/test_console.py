"""Who may use the IG console (the ig-officer profile only, audited either way), and that it
shows the trail's identifiers and counts but never the content of a record."""

from __future__ import annotations

import base64
import re
from datetime import date

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from audit.query import stream
from engine.api.deps import SESSION_COOKIE
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.test_access import REASON, everything, post
from tests.api.test_fhir import audit_actions
from tests.ig.conftest import IG_ROLE, officer

PAGES = ("/ig", "/ig/reviews", "/ig/alerts", "/ig/report", "/ig/charts", "/ig/chain")
#: Content of the test record that must never reach an IG officer.
CLINICAL = ("Syphilis", "76272004", "130")


def _activity(client: TestClient, token: Token) -> None:
    assert everything(client, token("gp")).status_code == 200
    made = post(
        client,
        token("ae-doctor"),
        "break-glass",
        {"patient": NHS, "reason_code": "5", "reason_text": REASON},
    )
    assert made.status_code == 201
    assert everything(client, token("ae-doctor"), "ETREAT").status_code == 200


def csrf(web: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', web.get(path).text)
    assert found
    return found.group(1)


@pytest.mark.parametrize("persona", ["gp", "receptionist", "ae-doctor"])
def test_everyone_but_ig_gets_403_on_every_page_and_the_api_and_it_is_audited(
    web: TestClient, store: Store, token: Token, persona: str
) -> None:
    t = token(persona)
    api = web.get("/fhir/AuditEvent", headers=auth(t))
    assert api.status_code == 403
    assert audit_actions(store)[-1] == ("ig-view", "deny")
    web.cookies.set(SESSION_COOKIE, t)
    for path in (
        *PAGES,
        f"/ig/report?patient={NHS}",
        "/ig/export?format=csv",
        "/ig/export?format=fhir",
        "/ig/reviews/break-glass/x",
    ):
        page = web.get(path)
        assert page.status_code == 403, path
        assert "information governance officers" in page.text
        assert NHS not in page.text
    form = csrf(web, "/record")
    for path, data in (
        ("/ig/chain/verify", {}),
        ("/ig/reviews/break-glass/x", {"outcome": "appropriate", "note": "fine"}),
    ):
        assert web.post(path, data={"csrf_token": form, **data}).status_code == 403, path
    refused = [a for a in audit_actions(store) if a[0].startswith("ig-") or a[0] == "export"]
    assert refused and all(outcome == "deny" for _, outcome in refused)


@pytest.mark.parametrize("trained", [date(2020, 1, 1), None], ids=["lapsed", "missing"])
def test_an_ig_officer_without_current_ig_training_is_refused_and_audited(
    web: TestClient, store: Store, token: Token, trained: date | None
) -> None:
    """Caldicott 5: access is refused without IG training in the last 12 months, the IG
    console's included; the refusal says why and names training.current in the trail."""
    _activity(web, token)
    made = post(web, token("ae-doctor"), "break-glass",
                {"patient": NHS, "reason_code": "5", "reason_text": REASON})  # fmt: skip
    item = made.json()["review_items"][0]
    t = token("gp", user_id="u-ig", role_code=IG_ROLE, ig_training=trained)
    api = web.get("/fhir/AuditEvent", headers=auth(t))
    assert api.status_code == 403 and "training" in api.text
    web.cookies.set(SESSION_COOKIE, t)
    for path in (*PAGES, f"/ig/report?patient={NHS}", f"/ig/reviews/break-glass/{item}"):
        page = web.get(path)
        assert page.status_code == 403 and 'id="forbidden-why"' in page.text, path
        assert NHS not in page.text and REASON not in page.text
    form = csrf(web, "/record")
    for note in ("   ", "Seen in resus; justified"):
        done = web.post(
            f"/ig/reviews/break-glass/{item}",
            data={"csrf_token": form, "outcome": "appropriate", "note": note},
        )
        assert done.status_code == 403 and REASON not in done.text
    entries = [e for e in stream(store.engine) if e["user_id"] == "u-ig"]
    assert entries and all(e["outcome"] == "deny" for e in entries)
    assert all("training.current" in e["rules"] for e in entries)
    assert not any(e.get("patient_id") or e.get("nhs_number") for e in entries)
    officer(web, token("gp", user_id="u-ig", role_code=IG_ROLE))
    assert f'data-id="{item}"' in web.get("/ig/reviews").text  # still open, and a trained
    # officer (the same one, retrained) is let in


def test_the_console_waits_for_the_confidentiality_notice(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """The console names people (a person's access report, alerts, the trail): an officer
    sees the notice first, as on the record pages, and nothing of anyone until it is
    acknowledged; the notice then leads on to the page asked for."""
    _activity(web, token)
    web.cookies.set(SESSION_COOKIE, ig_token)
    before = audit_actions(store)
    for path in (*PAGES, f"/ig/report?patient={NHS}", "/ig/export?format=csv"):
        page = web.get(path)
        assert page.status_code == 200 and 'id="acknowledge"' in page.text, path
        assert "looked at your record" not in page.text and "u-gp" not in page.text, path
    assert audit_actions(store) == before  # nothing was shown
    moved = web.post(
        "/acknowledge",
        data={"csrf_token": csrf(web, "/record"), "next_page": f"/ig/report?patient={NHS}"},
    )
    assert moved.headers["location"] == f"/ig/report?patient={NHS}"
    report = web.get(moved.headers["location"])
    assert 'id="acknowledge"' not in report.text and "looked at your record" in report.text


def test_signed_out_console_sends_to_sign_in(web: TestClient) -> None:
    for path in PAGES:
        assert web.get(path).status_code == 303
    assert web.get("/ig/export", params={"since": "not-a-day"}).status_code == 303
    assert web.get("/fhir/AuditEvent").status_code == 401


def test_a_malformed_filter_from_anyone_else_is_refused_403_and_audited(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """The gate comes first: what a user who may not search sends is never parsed for them."""
    api = web.get("/fhir/AuditEvent", params={"outcome": "9"}, headers=auth(token("gp")))
    assert api.status_code == 403 and audit_actions(store)[-1] == ("ig-view", "deny")
    web.cookies.set(SESSION_COOKIE, token("gp"))
    page = web.get("/ig/export", params={"format": "csv", "since": "not-a-day"})
    assert page.status_code == 403 and audit_actions(store)[-1] == ("export", "deny")
    officer(web, ig_token)
    page = web.get("/ig/export", params={"format": "csv", "since": "not-a-day"})
    assert page.status_code == 400 and audit_actions(store)[-1] == ("export", "permit")
    api = web.get("/fhir/AuditEvent", params={"outcome": "9"}, headers=auth(ig_token))
    assert api.status_code == 400 and audit_actions(store)[-1] == ("ig-view", "permit")


#: Parameters FastAPI used to parse (and refuse, unaudited) before the gate.
BAD_PAGING = [{"_count": "0"}, {"_count": "x"}, {"_count": "501"}, {"_cursor": "c" * 201}]


@pytest.mark.parametrize("params", BAD_PAGING)
def test_bad_paging_from_a_clinician_is_the_audited_403(
    web: TestClient, store: Store, token: Token, ig_token: str, params: dict[str, str]
) -> None:
    before = len(audit_actions(store))
    api = web.get("/fhir/AuditEvent", params=params, headers=auth(token("gp")))
    assert api.status_code == 403, api.text
    assert audit_actions(store)[before:] == [("ig-view", "deny")]
    api = web.get("/fhir/AuditEvent", params=params, headers=auth(ig_token))
    assert api.status_code == 400, api.text
    assert api.json()["issue"][0]["expression"] == [next(iter(params))]
    assert audit_actions(store)[-1] == ("ig-view", "permit")


def test_console_charts_days_from_a_clinician_is_the_audited_403(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    web.cookies.set(SESSION_COOKIE, token("gp"))
    before = len(audit_actions(store))
    page = web.get("/ig/charts", params={"days": "x"})
    assert page.status_code == 403, page.text
    assert audit_actions(store)[before:] == [("ig-view", "deny")]
    officer(web, ig_token)
    page = web.get("/ig/charts", params={"days": "x"})
    assert page.status_code == 400 and audit_actions(store)[-1] == ("ig-view", "permit")
    assert web.get("/ig/charts", params={"days": "500"}).status_code == 200  # kept to 92


def test_console_charts_days_signed_out_is_sent_to_sign_in(web: TestClient) -> None:
    assert web.get("/ig/charts", params={"days": "x"}).status_code == 303


def test_ig_officer_sees_every_page_with_no_clinical_content(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    _activity(web, token)
    officer(web, ig_token)
    pages = [
        *PAGES,
        f"/ig?patient={NHS}",
        f"/ig/report?patient={NHS}",
        "/ig/reviews?show=all",
        "/ig/export?format=csv",
        "/ig/export?format=fhir",
    ]
    for path in pages:
        page = web.get(path)
        assert page.status_code == 200, path
        for text in CLINICAL:
            assert not re.search(rf"\b{text}\b", page.text), (path, text)
    assert ("ig-view", "permit") in audit_actions(store)
    assert ("export", "permit") in audit_actions(store)
    record = web.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(ig_token))
    assert record.status_code == 404


def test_console_search_filters_pages_and_shows_counts(
    web: TestClient, token: Token, ig_token: str
) -> None:
    _activity(web, token)
    officer(web, ig_token)
    page = web.get("/ig", params={"patient": NHS, "purpose": "ETREAT", "role": "R8000"})
    rows = re.findall(r'data-action="([^"]+)"', page.text)
    assert rows == ["everything"]
    assert "Observation" in page.text
    gp = web.get("/ig", params={"user": "u-gp", "outcome": "permit"})
    assert re.findall(r'data-action="([^"]+)"', gp.text) == ["everything"]
    bad = web.get("/ig", params={"patient": "1234567890"})
    assert bad.status_code == 400 and "patient: not a valid NHS number" in bad.text
    nul = web.get("/ig", params={"org": "Y0\x00"})
    assert nul.status_code == 400 and "org: at most" in nul.text
    first = web.get("/ig", params={"since": "2000-01-01"})
    assert first.status_code == 200 and "next-page" not in first.text
    assert web.get("/ig", params={"until": "9999-12-31"}).status_code == 200  # no day after it
    huge = base64.urlsafe_b64encode(b"2026-12-01T00:00:00.000000Z|" + b"9" * 30).decode()
    forged = web.get("/ig", params={"after": huge})
    assert forged.status_code == 400 and "after: not a cursor" in forged.text


def test_a_token_purpose_of_one_nbsp_still_exports_a_valid_bundle(
    web: TestClient, token: Token, ig_token: str
) -> None:
    read = web.get(f"/fhir/Patient/{PATIENT}/$everything",
                   headers=auth(token("gp", purpose="\xa0")))  # fmt: skip
    assert read.status_code == 404  # decided (unknown purpose), audited with purpose "\xa0"
    officer(web, ig_token)
    exported = web.get("/ig/export", params={"format": "fhir"})
    assert exported.status_code == 200
    Bundle.model_validate(orjson.loads(exported.content))
    assert '"purposeOfUse":[{"text":"U+00A0"}]' in exported.text
    api = web.get("/fhir/AuditEvent", params={"purpose": "\xa0"}, headers=auth(ig_token))
    Bundle.model_validate(api.json())
    assert len(api.json()["entry"]) == 1


def test_console_csv_and_fhir_exports_hold_the_matches(
    web: TestClient, token: Token, ig_token: str
) -> None:
    _activity(web, token)
    officer(web, ig_token)
    csv_text = web.get("/ig/export", params={"format": "csv", "user": "u-ae-doctor"}).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("seq,time,request_id,action")
    assert len(lines) == 1 + 2 and all("u-ae-doctor" in line for line in lines[1:])
    bundle = web.get("/ig/export", params={"format": "fhir", "user": "u-ae-doctor"}).json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["AuditEvent"] * 2
