"""The care home's transfer form: nothing is sent before a review, which shows NEWS2, and a
mistake sends the form back with everything that was entered."""

from __future__ import annotations

import html
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from adapters.council import CouncilAdapter
from audit.query import stream
from engine.api import create_app
from engine.api.deps import SESSION_COOKIE
from engine.ingest import ingest
from engine.transfer import keys as transfer_keys
from engine.transfer import signature
from engine.transfer.keys import OwnKey, org_key
from engine.transfer.store import register_key, sender_key
from engine.transfer.tables import KEYS, MESSAGES, STATUS, TRANSFERS
from engine.web import transfers as transfer_pages
from engine.web.templating import uk_time
from tests.api.conftest import NHS, Store, Token, api_settings, client, loaded, store, token
from tests.api.test_transfer import count, home, keys, trail
from tests.api.transfers import CARE_HOME, HOSPITAL, at_once
from tests.factories import nhs_numbers, write_csv
from tests.ig.test_console import csrf
from tests.web.test_pages import acknowledged
from tests.web.test_record_sensitive import gp_connect

__all__ = ["api_settings", "client", "home", "keys", "loaded", "store", "token"]
PATH = f"/record/{NHS}/transfer"
FORM = {
    "hospital": HOSPITAL, "reason": "Fall this morning, hip pain & confusion", "given": "Renée",
    "family": "Smith", "born": "1950-03-01", "respiration_rate": "22", "spo2": "94",
    "systolic_bp": "105", "pulse": "98", "consciousness": "C", "temperature": "37.9",
    "observed": "2026-12-01 07:45", "for_cpr": "no", "belongings": "Glasses",
}  # fmt: skip


@pytest.fixture
def web(store: Store, home: str, keys: dict[str, Ed25519PrivateKey]) -> Iterator[TestClient]:
    """The care home's pages sign with the key scr keeps for it, so it has none of its own."""
    with store.engine.begin() as conn:
        conn.execute(delete(KEYS).where(KEYS.c.org == CARE_HOME))
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        c.cookies.set(SESSION_COOKIE, home)
        yield acknowledged(c)


def _post(web: TestClient, **changes: Any) -> Any:
    """Post the form; a send goes through its review first, as a nurse's does."""
    data = FORM | {"csrf_token": csrf(web, PATH)} | changes
    if data.get("step") == "send":
        review = web.post(PATH, data=data | {"step": "review"})
        if review.status_code != 200:
            return review
        data |= sealed(review.text)
    return web.post(PATH, data=data)


def sealed(review: str) -> dict[str, str]:
    """What a review's Send carries besides the values: the seal and the message id."""
    return {k: re.search(rf'name="{k}" value="([^"]*)"', review)[1]  # type: ignore[index]
            for k in ("reviewed", "message_id")}  # fmt: skip


def test_a_review_shows_news2_and_sends_nothing_until_send(web: TestClient, store: Store) -> None:
    review = _post(web, step="review")
    assert review.status_code == 200 and "NEWS2 8" in review.text
    assert html.escape(FORM["reason"]) in review.text and count(store, MESSAGES) == 0
    sent = _post(web, step="send")
    assert sent.status_code == 303 and sent.headers["location"].startswith("/inbox/")
    assert count(store, MESSAGES) == 1


def test_news2_is_shown_while_the_readings_are_typed_and_nothing_is_kept(
    web: TestClient, store: Store
) -> None:
    """The form asks the server as the nurse types (posted: readings in no address or log);
    the answer is the review's own words, and nothing is stored or audited for it, as
    nothing of any record is read."""
    readings = {k: FORM[k] for k in ("respiration_rate", "spo2", "systolic_bp", "pulse",
                                     "consciousness", "temperature")}  # fmt: skip
    page = web.get(PATH)
    assert 'fetch("/transfer/news2"' in page.text
    # the first words are the page's own, so nothing is asked or announced as it opens
    assert "NEWS2 still needs the respiration rate" in page.text.split('id="news2-now"', 1)[1]
    token = csrf(web, PATH)
    before = len(list(stream(store.engine)))
    now = web.post("/transfer/news2", data=readings | {"csrf_token": token})
    part = web.post("/transfer/news2", data={"pulse": "98", "csrf_token": token})
    assert len(list(stream(store.engine))) == before and count(store, MESSAGES) == 0
    assert now.status_code == 200 and now.headers["content-type"].startswith("text/plain")
    assert now.text == "NEWS2 8 (high risk) on SpO2 scale 1"
    assert part.text.startswith("NEWS2 still needs the respiration rate")
    assert now.text in _post(web, step="review").text


def test_news2_while_typing_needs_a_session_and_the_forms_token(
    web: TestClient, store: Store
) -> None:
    forged = web.post("/transfer/news2", data={"pulse": "98", "csrf_token": "forged"})
    assert forged.status_code == 403
    assert [e["action"] for e in stream(store.engine) if e["outcome"] == "deny"] == ["form-refused"]
    token = csrf(web, PATH)
    long = web.post("/transfer/news2", data={"pulse": "9" * 17, "csrf_token": token})
    assert long.status_code == 400
    web.cookies.set(SESSION_COOKIE, "expired.or.forged")
    stale = web.post("/transfer/news2", data={"pulse": "98", "csrf_token": token})
    assert (stale.status_code, stale.text) == (401, "Sign in again to see NEWS2")
    assert f'{SESSION_COOKIE}=""' in stale.headers["set-cookie"]  # dropped, as a page drops it
    web.cookies.clear()
    nobody = web.post("/transfer/news2", data={"pulse": "98", "csrf_token": token})
    assert (nobody.status_code, nobody.text) == (401, "Sign in again to see NEWS2")


def test_a_mistake_keeps_what_was_entered(web: TestClient, store: Store) -> None:
    wrong = _post(web, step="review", spo2="ninety")
    assert wrong.status_code == 422 and "Enter the SpO2 as a whole number" in wrong.text
    assert html.escape(FORM["reason"]) in wrong.text and 'value="ninety"' in wrong.text
    assert count(store, MESSAGES) == 0
    back = _post(web, step="edit")
    assert (
        back.status_code == 200 and 'value="Renée"' in back.text and 'id="review"' not in back.text
    )
    assert "NEWS2 8 (high risk)" in back.text.split('id="news2-now"', 1)[1]  # as typed


def test_the_time_taken_and_the_usual_readings_are_reviewed_sent_and_shown(
    web: TestClient, store: Store
) -> None:
    """The review shows the time with its day (as it will be sent, whenever Send is pressed),
    and the usual readings beside today's; the hospital's page shows both."""
    usual = {"usual_spo2": "96", "usual_consciousness": "A", "usual_recorded": "2026-11-02"}
    review = _post(web, step="review", observed="07:45", **usual)
    assert review.status_code == 200
    taken = re.search(r'name="observed" value="([^"]*)"', review.text)
    assert taken is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2} 07:45", taken[1])
    assert "<dt>Usual consciousness (ACVPU)</dt><dd>Alert</dd>" in review.text
    sent = _post(web, step="send", **usual)
    assert sent.status_code == 303
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    said = "Usual when well, recorded 2026-11-02: SpO2 96%; consciousness Alert"
    assert said in str(doc) and "Taken 2026-12-01 07:45." in str(doc)
    page = web.get(sent.headers["location"])
    assert said in page.text and "Taken 2026-12-01 07:45." in page.text
    # each coded reading with its time (the usual ones with their day), beside the summary
    assert "<li>Heart rate · 98 /min · final · taken 2026-12-01 07:45</li>" in page.text
    assert "<li>ACVPU scale score · A · final · taken 2026-11-02</li>" in page.text


def test_the_bag_is_ticked_and_typed_and_comes_back_as_it_was_for_a_change(web: TestClient) -> None:
    review = _post(web, step="review", bag=["Glasses", "Dentures"], belongings="Handbag")
    assert review.status_code == 200
    assert 'name="belongings" value="Glasses\nDentures\nHandbag"' in review.text
    back = _post(web, step="edit", belongings="Glasses\nDentures\nHandbag")
    for item, ticked in (("Glasses", True), ("Dentures", True), ("Hearing aids", False)):
        box = re.search(rf'<input type="checkbox"[^>]*value="{item}"[^>]*>', back.text)
        assert box is not None and (" checked" in box[0]) is ticked, item
    assert re.search(r'<textarea id="belongings"[^>]*>Handbag</textarea>', back.text)


def test_spo2_scale_2_is_chosen_on_the_form_and_travels_in_the_message(
    web: TestClient, store: Store
) -> None:
    review = _post(web, step="review", spo2_scale="2")
    assert review.status_code == 200 and "NEWS2 7" in review.text
    assert "hypercapnic respiratory failure" in review.text
    assert 'name="spo2_scale" value="2"' in review.text
    sent = _post(web, step="send", spo2_scale="2")
    assert sent.status_code == 303
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    news2 = next(
        e["resource"] for e in doc["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "1104051000000101"
    )  # fmt: skip
    assert news2["valueQuantity"]["value"] == 7
    assert news2["method"]["coding"][0]["code"] == "2"
    assert news2["method"]["coding"][0]["system"].endswith("CodeSystem/scr-news2-spo2-scale")
    printable = web.get(sent.headers["location"])
    assert "NEWS2 7 (high risk) on SpO2 scale 2" in html.unescape(printable.text)


def test_scale_1_is_the_default(web: TestClient, store: Store) -> None:
    assert _post(web, step="send").status_code == 303
    with store.engine.connect() as conn:
        raw = conn.execute(select(MESSAGES.c.raw)).scalar_one()
    assert b'"method":{"coding":[{"system"' in raw and b"SpO2 scale 1" in raw


def test_the_api_path_answers_json_to_tokens_and_the_pages_live_at_the_inbox(
    web: TestClient,
) -> None:
    api = web.get("/transfers", headers={"Accept": "text/html"})
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/fhir+json")
    page = web.get("/inbox", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_the_form_is_prefilled_with_the_name_not_the_title(web: TestClient) -> None:
    """The resident is Mrs Renée Smith: the title is no given name, nor part of the family
    name, in what goes to the hospital."""
    form = web.get(PATH).text
    assert 'name="given" value="Renée"' in form
    assert 'name="family" value="Smith"' in form


def _council(store: Store, tables: dict[str, list[dict[str, str]]]) -> None:
    """The council's extract for the resident, with ``tables`` beside their person row,
    ingested as any extract is."""
    folder = store.folder.parent / f"council-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    person = {"person_id": "1", "first_name": "Renée", "last_name": "Smith",
              "date_of_birth": "1950-03-01", "gender": "F", "nhs_number": NHS,
              "restricted": "false"}  # fmt: skip
    tables = {"organisation": [{"code": "E06000999", "name": "Borsetshire Council"}],
              "persons": [person]} | tables  # fmt: skip
    for table, rows in tables.items():
        write_csv(folder / f"{table}.csv", list(rows[0]), rows, "utf-8")
    ingest(store.engine, store.settings, store.codes, CouncilAdapter(), str(folder))


def test_the_form_is_prefilled_with_current_decisions_only(web: TestClient, store: Store) -> None:
    """The form took the advance-decisions section whole: a lasting power of attorney the
    council recorded as refused went to the hospital beside the deputy appointed since, as
    if the attorney could decide for the resident."""
    _council(store, {
        "placements": [{"person_id": "1", "care_home_ods": CARE_HOME,
                        "start_date": "2024-04-01", "end_date": ""}],
        "legal": [
            {"person_id": "1", "kind": "LPA-health-welfare", "status": "refused",
             "start_date": "2020-05-05", "end_date": ""},
            {"person_id": "1", "kind": "Court-deputy", "status": "appointed",
             "start_date": "2022-01-01", "end_date": ""},
        ],
    })  # fmt: skip
    advance = re.search(
        r'<input type="text" id="advance" name="advance" value="([^"]*)"', web.get(PATH).text
    )
    assert advance and "deputy" in advance[1].lower(), advance
    assert "attorney" not in advance[1].lower(), advance[1]


def test_each_contact_is_prefilled_with_the_number_to_call_and_sent_as_a_related_person(
    web: TestClient, store: Store
) -> None:
    """The contacts field was prefilled with names alone ("Pat Archer") and sent as text: the
    hospital learnt who to call but not how. Each current contact now comes with their
    relationship and telephone, one a line, and travels as a RelatedPerson; the council's key
    worker is care team, not a contact, and is not offered."""
    _council(store, {
        "contacts": [
            {"contact_id": "1", "person_id": "1", "name": "Pat Archer",
             "relationship": "Daughter", "is_unpaid_carer": "false", "is_key_worker": "false",
             "role": "", "team": "", "phone": "07700 900123"},
            {"contact_id": "2", "person_id": "1", "name": "Usha Franks", "relationship": "",
             "is_unpaid_carer": "false", "is_key_worker": "true", "role": "Social Worker",
             "team": "Older People North", "phone": "01632 960001"},
        ],
    })  # fmt: skip
    field = re.search(r'<textarea id="contacts" name="contacts"[^>]*>([^<]*)</textarea>',
                      web.get(PATH).text)  # fmt: skip
    assert field and html.unescape(field[1]) == "Pat Archer | Daughter | 07700 900123", field
    sent = _post(web, step="send", contacts=html.unescape(field[1]))
    assert sent.status_code == 303, sent.text
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    (contact,) = [e["resource"] for e in doc["entry"]
                  if e["resource"]["resourceType"] == "RelatedPerson"]  # fmt: skip
    assert contact["name"] == [{"text": "Pat Archer"}]
    assert contact["telecom"] == [{"system": "phone", "value": "07700 900123"}]
    page = html.unescape(web.get(sent.headers["location"]).text)
    assert "Pat Archer (Daughter) 07700 900123" in page  # the section's words
    assert "Pat Archer · Daughter · 07700 900123" in page  # the entry, as the record words it


def test_the_form_is_prefilled_with_the_cpr_decision_in_force(
    web: TestClient, store: Store
) -> None:
    """The contract prefills the CPR decision: the nurse chose it from 'Not recorded' while
    the record's DNACPR was only in the advance-decisions text beside it."""
    assert '<option value="" selected>Not recorded</option>' in web.get(PATH).text
    dnacpr = {
        "resourceType": "Observation", "id": "cpr1", "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "450476008",
                             "display": "Not for attempted cardiopulmonary resuscitation"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-05-01",
    }  # fmt: skip
    gp_connect(store, dnacpr)
    assert '<option value="no" selected>Not for CPR (DNACPR)</option>' in web.get(PATH).text


def test_the_gp_practice_is_sent_and_never_guessed(web: TestClient, store: Store) -> None:
    """The contract's demographics name the GP practice; the form never sent one. This person
    is registered at two practices at once (the store's SystmOne record says so), so which is
    theirs is left to the nurse, and what the nurse gives is sent."""
    form = web.get(PATH).text
    assert '<input type="text" id="gp_practice" name="gp_practice" value=""' in form
    sent = _post(web, step="send", gp_practice="Hillside Surgery (Y00002)")
    assert sent.status_code == 303
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    assert f"NHS number {NHS}; GP practice Hillside Surgery (Y00002)" in str(doc)


def test_a_blank_name_or_birth_date_comes_back_on_the_form(web: TestClient) -> None:
    """A record without a birth date prefills none: the nurse gets the form back, not JSON."""
    for field in ("given", "family", "born", "hospital", "consciousness"):
        answer = _post(web, step="review", **{field: ""})
        assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
        assert html.escape(FORM["reason"]) in answer.text and f'href="#{field}"' in answer.text
    assert "Enter the date of birth as YYYY-MM-DD" in _post(web, born="1 April 1932").text


@pytest.mark.parametrize(
    ("field", "typo"),
    [("spo2", "940"), ("pulse", "9800"), ("temperature", "379"), ("respiration_rate", "220"),
     ("systolic_bp", "12")],
)  # fmt: skip
def test_a_reading_no_person_can_have_is_refused_not_scored(
    web: TestClient, store: Store, field: str, typo: str
) -> None:
    for step in ("review", "send"):
        answer = _post(web, step=step, **{field: typo})
        assert answer.status_code == 422 and "check the reading" in answer.text
        assert "NEWS2" not in answer.text.split("</h1>", 1)[1].split("<form", 1)[0]
    assert count(store, MESSAGES) == 0


def test_errors_are_summarised_linked_and_tied_to_their_fields(web: TestClient) -> None:
    wrong = _post(web, step="review", spo2="ninety")
    assert "<title>Error: " in wrong.text and "There is a problem" in wrong.text
    assert '<a href="#spo2">Enter the SpO2 as a whole number</a>' in wrong.text
    field = re.search(r'<input[^>]*id="spo2"[^>]*>', wrong.text)
    assert field and 'aria-invalid="true" aria-describedby="spo2-error"' in field.group(0)
    assert 'id="spo2-error"' in wrong.text


def test_nothing_is_chosen_for_the_nurse(web: TestClient) -> None:
    """Consciousness is spelled out and, like the hospital, starts unchosen: an unrecorded
    level must not be scored as Alert, nor a transfer sent to the first hospital listed."""
    form = web.get(PATH).text
    for name in ("consciousness", "hospital"):
        select = re.search(rf'<select id="{name}"[^>]*>(.*?)</select>', form, re.S)
        assert select and " selected" in select.group(1).split("</option>", 1)[0], name
        assert select.group(1).startswith('<option value="" selected>'), name
    assert ">New confusion</option>" in form
    optional = re.search(r'<label for="about_matters">([^<]*)</label>', form)
    assert optional and optional.group(1).endswith("(optional)")


def test_the_hospital_reads_every_observation_and_the_cpr_decision(web: TestClient) -> None:
    """On screen and on paper: the readings behind NEWS2, and a DNACPR decision even when
    advance decisions are written too; typed text shown as typed."""
    sent = _post(
        web,
        step="send",
        advance="ReSPECT form in the bag",
        about_support="Doesn't like noise",
        about_eating="Soft diet; thickened fluids",
    )
    page = web.get(sent.headers["location"]).text
    text = html.unescape(page)
    assert "Respiration rate 22/min; SpO2 94% on air; systolic blood pressure 105 mmHg" in text
    assert "pulse 98/min; consciousness New confusion; temperature 37.9 °C. NEWS2 8" in text
    assert "Not for cardiopulmonary resuscitation; ReSPECT form in the bag" in text
    assert "hip pain & confusion" in text
    assert "How to support me: Doesn't like noise<br>Eating and drinking: Soft diet" in text
    assert "&amp;amp;" not in page and "&amp;#x27;" not in page
    assert "javascript:" not in page and "<noscript>" in page
    assert f"<title>Transfer – NHS number {NHS}" in page


def test_a_refused_discharge_keeps_what_the_doctor_typed(
    web: TestClient, store: Store, token: Token
) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(KEYS).where(KEYS.c.org == HOSPITAL))
    path = _post(web, step="send").headers["location"]
    web.cookies.set(SESSION_COOKIE, token("ae-doctor"))
    acknowledged(web)
    assert web.post(path + "/acknowledge", data={"csrf_token": csrf(web, path)}).status_code == 303
    inbox = web.get("/inbox").text
    assert "Borchester General Hospital (R9Z)" in inbox
    typed = {"diagnoses": "", "follow_up": "Repeat MSU in one week", "started": "Trimethoprim"}
    again = web.post(path + "/discharge", data=typed | {"csrf_token": csrf(web, path)})
    assert again.status_code == 422 and "Enter the diagnoses" in again.text
    assert ">Repeat MSU in one week</textarea>" in again.text
    assert ">Trimethoprim</textarea>" in again.text


def test_the_inbox_says_who_why_and_how_unwell(web: TestClient, token: Token) -> None:
    """A hospital triages by the person, the reason and NEWS2, not by codes."""
    path = _post(web, step="send").headers["location"]
    web.cookies.set(SESSION_COOKIE, token("ae-doctor"))
    inbox = acknowledged(web).get("/inbox").text
    row = re.search(rf'<tr><td><a href="{path}">(.*?)</tr>', inbox, re.S)
    assert row, inbox
    assert "Renée Smith</a>" in row[1]
    # the band beside the total, marked where the RCP chart asks an urgent response (all but low)
    assert '<td class="news2 urgent">8<br><span class="muted">high risk</span></td>' in row[1]
    assert "hip pain &amp; confusion" in row[1] and "Borchester General Hospital (R9Z)" in row[1]


@pytest.fixture
def doctor(web: TestClient, store: Store, token: Token) -> tuple[TestClient, str]:
    """A transfer sent from the form, and ``web`` signed in as the receiving A&E doctor."""
    with store.engine.begin() as conn:
        conn.execute(delete(KEYS).where(KEYS.c.org == HOSPITAL))
    path = str(_post(web, step="send").headers["location"])
    web.cookies.set(SESSION_COOKIE, token("ae-doctor"))
    return acknowledged(web), path


def test_the_history_and_the_inbox_show_times_as_uk_clocks_do(
    doctor: tuple[TestClient, str], store: Store
) -> None:
    """Stored in UTC, shown as the ward's and the care home's clocks showed them: in summer a
    transfer sent at 13:30 read 12:30 in its history, its inbox row and the resident's record."""
    web, path = doctor
    transfer_id = path.rsplit("/", 1)[1]
    summer = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    with store.engine.begin() as conn:
        mine = STATUS.c.transfer_id == transfer_id
        conn.execute(update(STATUS).where(mine, STATUS.c.status == "sent").values(at=summer))
        conn.execute(update(TRANSFERS).where(TRANSFERS.c.id == transfer_id)
                     .values(updated_at=summer))  # fmt: skip
    shown = [web.get(path).text, web.get("/inbox").text, web.get(f"/record/{NHS}").text]
    assert ["2026-07-01 13:30" in page for page in shown] == [True, True, True]
    assert not any("2026-07-01 12:30" in page for page in shown)


def test_the_hour_the_clocks_repeat_is_shown_with_its_clock() -> None:
    """01:30 BST and 01:30 GMT on 25 October are an hour apart: a discharge an hour after a
    receipt must not read as the same minute."""
    assert uk_time(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "2026-10-25 01:30 BST"
    assert uk_time("2026-10-25T01:30:00+00:00") == "2026-10-25 01:30 GMT"
    assert uk_time("2026-10-25T02:30:00") == "2026-10-25 02:30"


def test_a_second_acknowledgement_is_shown_refused_and_audited(
    doctor: tuple[TestClient, str], store: Store
) -> None:
    web, path = doctor
    first = web.post(path + "/acknowledge", data={"csrf_token": csrf(web, path)})
    again = web.post(path + "/acknowledge", data={"csrf_token": csrf(web, path)})
    assert first.status_code == 303 and again.status_code == 409
    assert "nothing for your organisation to acknowledge" in again.text
    assert trail(store, "transfer-acknowledge") == [
        ("transfer-acknowledge", "permit", HOSPITAL),
        ("transfer-acknowledge", "deny", HOSPITAL),
    ]


def test_the_page_discharges_only_an_acknowledged_transfer(
    doctor: tuple[TestClient, str],
) -> None:
    web, path = doctor
    early = web.post(path + "/discharge", data={"diagnoses": "UTI", "csrf_token": csrf(web, path)})
    assert early.status_code == 409 and "once acknowledged" in early.text
    assert 'id="status">received<' in early.text and "Send discharge" not in early.text


def test_a_discharge_the_page_refuses_is_audited_as_a_refused_discharge(
    doctor: tuple[TestClient, str], store: Store, home: str
) -> None:
    """Before the hospital acknowledges, or from the care home, a discharge posted is refused
    (409) and audited as a refused acknowledgement is: a deny out of turn, with the person."""
    web, path = doctor
    early = web.post(path + "/discharge", data={"diagnoses": "UTI", "csrf_token": csrf(web, path)})
    assert early.status_code == 409
    assert web.post(path + "/acknowledge", data={"csrf_token": csrf(web, path)}).status_code == 303
    web.cookies.set(SESSION_COOKIE, home)
    nurse = web.post(path + "/discharge", data={"diagnoses": "UTI", "csrf_token": csrf(web, path)})
    assert nurse.status_code == 409
    assert trail(store, "transfer-discharge") == [
        ("transfer-discharge", "deny", HOSPITAL), ("transfer-discharge", "deny", CARE_HOME)
    ]  # fmt: skip
    entries = [e for e in stream(store.engine) if e["action"] == "transfer-discharge"]
    assert all(e["rules"][0] == "transfer.out-of-turn" and e["patient_id"] and e["basis"]
               for e in entries)  # fmt: skip


def test_a_form_without_its_csrf_field_or_with_a_forged_one_is_refused_with_a_page(
    doctor: tuple[TestClient, str], store: Store
) -> None:
    """No page answers JSON: FastAPI's own 400 for a missing field, and the audited 403 for a
    forged token, are pages too; nothing is discharged."""
    web, path = doctor
    bare = web.post(path + "/discharge", data={"diagnoses": "UTI"})
    forged = web.post(path + "/discharge", data={"diagnoses": "UTI", "csrf_token": "forged"})
    assert (bare.status_code, forged.status_code) == (400, 403)
    for page in (bare, forged):
        assert page.headers["content-type"].startswith("text/html"), page.text[:300]
    assert "csrf_token" in bare.text and "reload the page" in forged.text
    refused = [e["action"] for e in stream(store.engine) if e["outcome"] == "deny"]
    assert refused == ["form-refused"] and trail(store, "transfer-discharge") == []
    api = web.get(f"/fhir/Patient/{NHS}/$everything", params={"_count": "-1"},
                  headers={"Authorization": f"Bearer {web.cookies[SESSION_COOKIE]}"})  # fmt: skip
    assert api.status_code == 400 and api.json()["resourceType"] == "OperationOutcome"


def test_a_care_home_is_not_offered_the_discharge_form_nor_may_a_gp_send(
    web: TestClient, store: Store, token: Token
) -> None:
    path = str(_post(web, step="send").headers["location"])
    refused = web.post(path + "/discharge", data={"diagnoses": "x", "csrf_token": csrf(web, path)})
    assert refused.status_code == 409 and "Send discharge" not in refused.text
    web.cookies.set(SESSION_COOKIE, token("gp"))
    gp = _post(acknowledged(web), step="send")
    assert gp.status_code == 403 and "Only care-home staff" in gp.text
    with store.engine.connect() as conn:
        assert conn.execute(select(KEYS.c.org).where(KEYS.c.org == "Y00001")).all() == []


def test_a_form_over_the_message_limit_is_refused_on_the_form(
    web: TestClient, store: Store, home: str
) -> None:
    """The page signs and takes in the message itself: the limit a posted message has holds."""
    small = replace(store.settings, transfer_max_bytes=20_000)
    with TestClient(create_app(small, store.engine), base_url="https://testserver",
                    follow_redirects=False) as page:  # fmt: skip
        page.cookies.set(SESSION_COOKIE, home)
        answer = _post(acknowledged(page), step="send", about_matters="x" * 30_000)
    assert answer.status_code == 422 and "over the limit of 20,000" in answer.text
    assert count(store, MESSAGES) == 0


def test_only_what_was_reviewed_is_sent(web: TestClient, store: Store) -> None:
    """A replayed post, or one whose values changed after the review, is shown for review
    again: nothing is sent that the nurse did not check as it is."""
    unreviewed = web.post(PATH, data=FORM | {"csrf_token": csrf(web, PATH), "step": "send"})
    assert unreviewed.status_code == 200 and "Check before sending" in unreviewed.text
    review = _post(web, step="review")
    sealed = re.search(r'name="reviewed" value="([^"]*)"', review.text)
    assert sealed
    altered = FORM | {"spo2": "99", "reviewed": sealed[1], "step": "send"}
    again = web.post(PATH, data=altered | {"csrf_token": csrf(web, PATH)})
    assert again.status_code == 200 and "Check before sending" in again.text
    assert count(store, MESSAGES) == 0
    assert _post(web, step="send").status_code == 303 and count(store, MESSAGES) == 1


class _Clock(datetime):
    """The pages' clock, set by the test."""

    at = datetime(2026, 12, 5, 7, 59, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> _Clock:  # type: ignore[override]
        return cls.at if tz is None else cls.at.astimezone(tz)  # type: ignore[return-value]


def test_the_last_dose_sent_is_the_day_the_review_showed(
    web: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reviewed at 07:59, "08:00" is yesterday's (today's is still to come); read again at
    Send, at 08:01, it was today's: the hospital was told of a dose not yet given. The review
    shows each last dose with its day, and sends that."""
    monkeypatch.setattr(transfer_pages, "datetime", _Clock)
    monkeypatch.setattr(_Clock, "at", datetime(2026, 12, 5, 7, 59, tzinfo=UTC))
    typed = FORM | {"medicines": "Paracetamol 500mg | 08:00", "csrf_token": csrf(web, PATH)}
    review = web.post(PATH, data=typed | {"step": "review"})
    assert "Paracetamol 500mg | 2026-12-04 08:00" in review.text
    carried = {
        name: html.unescape(value)
        for name, value in re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text
        )
    }
    monkeypatch.setattr(_Clock, "at", datetime(2026, 12, 5, 8, 1, tzinfo=UTC))
    assert web.post(PATH, data=carried | {"step": "send"}).status_code == 303
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    (dose,) = [e["resource"]["effectiveDateTime"] for e in doc["entry"]
               if e["resource"]["resourceType"] == "MedicationStatement"]  # fmt: skip
    assert dose == "2026-12-04T08:00:00+00:00"


def test_a_review_with_several_lines_sends_as_a_browser_posts_it(
    web: TestClient, store: Store
) -> None:
    """A browser posts every line break in a form value as CR LF, whatever the page wrote: the
    review's dated medicines (written with LF) must still match their seal, or no transfer
    with two medicines could be sent."""
    typed = FORM | {"medicines": "Paracetamol | 08:00\nSenna", "allergies": "Penicillin\nLatex",
                    "csrf_token": csrf(web, PATH)}  # fmt: skip
    review = web.post(PATH, data=typed | {"step": "review"})
    carried = {
        name: html.unescape(value).replace("\n", "\r\n")
        for name, value in re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text
        )
    }
    assert "\r\n" in carried["medicines"]
    assert web.post(PATH, data=carried | {"step": "send"}).status_code == 303
    assert count(store, MESSAGES) == 1


def test_a_reviewed_transfer_sent_twice_opens_one_transfer(web: TestClient, store: Store) -> None:
    """A double click on Send, or Back and Send: the review chose the message id, so the
    second send is the same message and goes to the transfer the first opened."""
    data: dict[str, Any] = FORM | {"csrf_token": csrf(web, PATH)}
    review = web.post(PATH, data=data | {"step": "review"})
    send = data | sealed(review.text) | {"step": "send"}
    first, again = web.post(PATH, data=send), web.post(PATH, data=send)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"] == f"/inbox/{send['message_id']}"
    assert count(store, TRANSFERS) == count(store, MESSAGES) == 1
    other = web.post(PATH, data=send | {"message_id": str(uuid.uuid4())})
    assert other.status_code == 200 and count(store, MESSAGES) == 1  # unsealed: reviewed again


def test_a_review_seal_is_for_the_person_reviewed(web: TestClient, store: Store) -> None:
    """A review made for one resident does not let the same values be sent, unreviewed, as
    another's transfer: the seal covers the NHS number in the URL too."""
    other = next(n for n in nhs_numbers(999_400_100) if n != NHS)
    review = _post(web, step="review")
    sealed = re.search(r'name="reviewed" value="([^"]*)"', review.text)
    assert sealed
    sent = web.post(
        f"/record/{other}/transfer",
        data=FORM | {"csrf_token": csrf(web, PATH), "step": "send", "reviewed": sealed[1]},
    )
    assert sent.status_code == 200 and "Check before sending" in sent.text
    assert count(store, MESSAGES) == 0
    odd = web.post(PATH, data=FORM | {"csrf_token": csrf(web, PATH), "step": "send",
                                      "reviewed": "\u00e9"})  # fmt: skip
    assert odd.status_code == 200 and "Check before sending" in odd.text, "not a 500"


def test_a_refused_start_of_a_transfer_is_audited_with_the_person(
    web: TestClient, store: Store, token: Token
) -> None:
    """Only care-home staff start a transfer: anyone else's attempt is on the trail, naming
    whom it was for, whether they opened the form or posted it."""
    web.cookies.set(SESSION_COOKIE, token("gp"))

    def refused() -> list[tuple[str, str, str, list[str]]]:
        found = [e for e in stream(store.engine) if e["action"] == "transfer-send"]
        return [(e["outcome"], e["user_id"], e["nhs_number"], e["rules"]) for e in found]

    assert acknowledged(web).get(PATH).status_code == 403
    assert refused() == [("deny", "u-gp", NHS, ["transfer.forbidden"])]
    opened = len(refused())
    assert web.post(PATH, data=FORM | {"csrf_token": csrf(web, "/record")}).status_code == 403
    assert refused()[opened:] == [("deny", "u-gp", NHS, ["transfer.forbidden"])]


def test_two_first_sends_at_once_sign_with_the_one_key_registered(store: Store) -> None:
    """A double click on a home's first transfer: both sends race to make its key, and the
    one that finds the file made signs with it, once it is registered; neither is a 500."""

    def attempt(i: int) -> Ed25519PrivateKey | Exception:
        try:
            return org_key(store.engine, store.settings.data_dir, "VCH09", f"u-{i}")
        except Exception as exc:  # the outcome is what is checked
            return exc

    outcomes = at_once(2, attempt)
    with store.engine.connect() as conn:
        registered = sender_key(conn, "VCH09")
    assert [signature.public_pem(k) for k in outcomes if isinstance(k, Ed25519PrivateKey)] == [
        registered,
        registered,
    ], outcomes


ORG = "VCH09"


def _registered(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return sender_key(conn, ORG)


def test_a_send_that_finds_the_key_file_signs_only_once_its_key_is_registered(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The double click one moment later: the second send arrives after the first wrote the
    key file but before its registration committed. It used to take the file's key at once,
    unregistered, and its message was refused 'no signing key is registered'; it registers
    the file's key itself (the same key: the first registration wins) and signs with it."""
    real = transfer_keys.store.register_first
    first = threading.get_ident()
    file_written, second_done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def slow_register(*args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == first:  # the first send is still registering
            file_written.set()
            seen["second did not wait"] = second_done.wait(10)  # a guard, not a pace
        real(*args, **kwargs)

    monkeypatch.setattr(transfer_keys.store, "register_first", slow_register)

    def second() -> None:
        file_written.wait(10)
        key = org_key(store.engine, store.settings.data_dir, ORG, "u-2")
        seen["registered when returned"] = _registered(store)
        seen["key"] = signature.public_pem(key)
        second_done.set()

    t = threading.Thread(target=second)
    t.start()
    made = org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    t.join(10)
    assert seen["second did not wait"]
    assert seen["key"] == signature.public_pem(made) == _registered(store)
    assert seen["registered when returned"] == seen["key"], "signed before it was registered"


def test_a_key_whose_registration_failed_is_registered_by_the_next_send(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written before the row; if the insert or commit fails (SQLite 'database is
    locked' under load, a PostgreSQL failover), the file stays. Every later send used to take
    it unregistered, refused 'no signing key is registered' for ever: the next registers it."""
    real = transfer_keys.store.register_first
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        real(*args, **kwargs)

    monkeypatch.setattr(transfer_keys.store, "register_first", flaky)
    with pytest.raises(OperationalError):
        org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    assert _registered(store) is None
    later = org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    assert _registered(store) == signature.public_pem(later)
    again = org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    assert signature.public_pem(again) == signature.public_pem(later)


def test_a_key_the_organisation_registered_over_scrs_is_not_signed_with(store: Store) -> None:
    """An organisation that registers a key of its own (``scr transfer register-key``) after
    sending from the pages signs for itself: scr's file no longer matches, and is not used."""
    org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    with store.engine.begin() as conn:
        own = signature.public_pem(signature.new_key())
        register_key(conn, ORG, own, "u-admin", datetime.now(UTC))
    with pytest.raises(OwnKey):
        org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    assert _registered(store) == own


def test_scrs_own_key_registered_again_in_another_pem_layout_is_still_signed_with(
    store: Store,
) -> None:
    """Registered again by hand (a file without its final newline), it is still scr's key."""
    key = org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    pem = signature.public_pem(key)
    with store.engine.begin() as conn:
        register_key(conn, ORG, pem.rstrip("\n"), "u-admin", datetime.now(UTC))
    again = org_key(store.engine, store.settings.data_dir, ORG, "u-1")
    assert signature.public_pem(again) == pem


def test_a_send_with_a_damaged_key_file_says_so_and_sends_nothing(
    web: TestClient, store: Store
) -> None:
    path = store.settings.data_dir / "transfer-keys" / f"{CARE_HOME}.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ncut short")
    sent = _post(web, step="send")
    assert sent.status_code == 422
    assert "signing key kept for your organisation cannot be read" in sent.text
    assert count(store, MESSAGES) == 0
