"""The hospital's discharge back to the care home, by message and from the inbox page: it
reaches a person merged since the transfer, it is refused when the home no longer cares for
them (no one there could read it), each medicine says what the hospital did to it, and the
form says whether medicines changed at all."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from engine.api import create_app
from engine.api.deps import SESSION_COOKIE
from engine.identity import unlink
from engine.identity.workset import LINKS
from engine.transfer.tables import KEYS, MESSAGES, TRANSFERS
from engine.web import transfers as transfer_pages
from tests.api.conftest import PATIENT, Store, Token, auth
from tests.api.test_transfer import (
    acknowledgement,
    count,
    discharge,
    send,
    sent_transfer,
    trail,
)
from tests.api.transfers import (
    CARE_HOME,
    CARE_ROLE,
    HOSPITAL,
    OTHER_HOME,
    home,
    keys,
    place,
    signed,
)
from tests.ig.test_console import csrf
from tests.web.test_pages import acknowledged

__all__ = ["home", "keys"]
Keys = dict[str, Ed25519PrivateKey]
DESTINATION = "Bundle.entry[0].resource.destination[0].receiver.identifier.value"


def _acknowledged(client: TestClient, home: str, keys: Keys, doctor: str) -> str:
    """A transfer the home sent and the hospital acknowledged: its id."""
    transfer_id = sent_transfer(client, home, keys)
    answer = client.post(f"/transfers/{transfer_id}/acknowledge", headers=auth(doctor))
    assert answer.status_code == 200
    return transfer_id


@pytest.fixture
def inbox(
    store: Store, client: TestClient, home: str, keys: Keys, token: Token
) -> Iterator[tuple[TestClient, str]]:
    """The A&E doctor's pages on a transfer the home sent and the doctor acknowledged there;
    the hospital signs with the key scr keeps for it, as an organisation using the pages
    does."""
    transfer_id = sent_transfer(client, home, keys)
    with store.engine.begin() as conn:
        conn.execute(delete(KEYS).where(KEYS.c.org == HOSPITAL))
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        web.cookies.set(SESSION_COOKIE, token("ae-doctor"))
        path = f"/inbox/{transfer_id}"
        acknowledged(web)
        assert web.post(path + "/acknowledge", data={"csrf_token": csrf(web, path)}).status_code
        yield web, path


def _discharge(web: TestClient, path: str, **typed: str) -> Any:
    return web.post(path + "/discharge", data=typed | {"csrf_token": csrf(web, path)})


def _as(web: TestClient, session: str, path: str) -> str:
    web.cookies.set(SESSION_COOKIE, session)
    return acknowledged(web).get(path).text


def _section(page: str, code: str) -> str:
    """The cell of the last section coded ``code`` on a transfer page."""
    cells = re.findall(rf'data-section="{code}"><th scope="row">[^<]*</th><td>(.*?)</td>', page,
                       re.S)  # fmt: skip
    assert cells, page
    return str(cells[-1])


# -- a merged person's transfer is theirs ---------------------------------------------------


def test_a_discharge_and_an_acknowledgement_after_a_merge_are_accepted_by_message(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """Identity merged the resident into a survivor while she was in hospital: the transfer
    keeps the id of its day, and both messages were refused as naming 'no transfer of this
    person'."""
    doctor = token("ae-doctor")
    first = sent_transfer(client, home, keys)
    second = _acknowledged(client, home, keys, doctor)
    store.merge()
    acked = send(client, doctor, signed(acknowledgement(first), keys[HOSPITAL], HOSPITAL))
    assert acked.status_code == 200, acked.text
    sent = send(client, doctor, signed(discharge(second), keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 200, sent.text
    assert client.get(f"/transfers/{second}", headers=auth(home)).json()["status"] == "discharged"


def test_a_discharge_after_a_merge_is_accepted_from_the_page(
    inbox: tuple[TestClient, str], store: Store
) -> None:
    web, path = inbox
    store.merge()
    sent = _discharge(web, path, diagnoses="Urinary tract infection", no_medicine_changes="yes")
    assert sent.status_code == 303, sent.text


def test_a_transfer_of_someone_else_is_still_not_theirs(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """Through merges, not past them: a transfer recorded under another person is not the
    number holder's."""
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    with store.engine.begin() as conn:
        conn.execute(TRANSFERS.update().values(person_id="someone-else"))
    sent = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 422
    assert "no transfer of this person" in sent.json()["issue"][0]["diagnostics"]


def test_after_a_split_leaving_the_number_with_two_people_a_discharge_is_refused(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """A split moves a transfer to the group holding its NHS number; when both groups hold it,
    whose it is cannot be said, and the discharge gets the answer any number two people
    hold gets."""
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    with store.engine.connect() as conn:
        person = conn.execute(select(TRANSFERS.c.person_id)).scalar_one()
        members = conn.execute(select(LINKS.c.patient_id).where(LINKS.c.person_id == person))
        other = next(p for p in members.scalars() if p != PATIENT)
    unlink(store.engine, PATIENT, other, who="ig-officer", reason="two people after all")
    sent = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 422
    assert "no transfer of this person" in sent.json()["issue"][0]["diagnostics"]


# -- a home that no longer cares for the person ----------------------------------------------


def _moved(store: Store) -> None:
    """The resident's placement at the sending home ended yesterday, while she was in
    hospital, and another home took her today."""
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    place(store, CARE_HOME, "2024-04-01", yesterday)
    place(store, OTHER_HOME, date.today().isoformat())


def test_a_discharge_to_a_home_that_no_longer_cares_for_the_person_is_refused_by_message(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """It was answered ok and marked discharged, and no care-home user anywhere could read
    it: the summary was lost and the hospital never told."""
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    _moved(store)
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).status_code == 404
    sent = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 422
    (issue,) = sent.json()["issue"]
    assert (issue["code"], issue["expression"]) == ("business-rule", [DESTINATION])
    assert f"{CARE_HOME} no longer cares for this person" in issue["diagnostics"]
    assert client.get(f"/transfers/{transfer_id}", headers=auth(doctor)).json()["status"] == (
        "acknowledged"
    )
    assert count(store, MESSAGES) == 1
    assert trail(store, "transfer-discharge") == [("transfer-discharge", "deny", HOSPITAL)]


def test_a_discharge_to_a_home_that_no_longer_cares_for_the_person_comes_back_on_the_page(
    inbox: tuple[TestClient, str], store: Store
) -> None:
    web, path = inbox
    _moved(store)
    sent = _discharge(web, path, diagnoses="Chest infection", follow_up="GP review",
                      no_medicine_changes="yes")  # fmt: skip
    assert sent.status_code == 422
    text = html.unescape(sent.text)
    assert f"{CARE_HOME} no longer cares for this person" in text
    assert ">Chest infection</textarea>" in text and ">GP review</textarea>" in text
    assert 'id="status">acknowledged<' in sent.text


def test_a_discharge_to_the_home_the_person_lives_in_is_accepted_and_read_there(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    place(store, OTHER_HOME, date.today().isoformat())  # a second home: the first still cares
    assert (
        send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL)).status_code
        == 200
    )
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).status_code == 200
    new_home = token("gp", org=OTHER_HOME, role_code=CARE_ROLE, user_id="u-new-home")
    assert client.get(f"/transfers/{transfer_id}", headers=auth(new_home)).status_code == 404


# -- what the hospital did to each medicine ---------------------------------------------------


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in doc["entry"]
            if e["resource"]["resourceType"] == "MedicationStatement"]  # fmt: skip


def test_each_discharge_medicine_carries_its_kind_of_change(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    doc = discharge(transfer_id)
    (started,) = _statements(doc)
    (coding,) = started["category"]["coding"]
    assert coding["system"].endswith("/CodeSystem/scr-medication-change")
    assert (coding["code"], started["status"]) == ("started", "active")
    assert send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL)).status_code == 200


@pytest.mark.parametrize(
    ("code", "status", "where", "said"),
    [
        ("paused", "active", "category.coding[0].code", "one of started, stopped, changed"),
        ("stopped", "active", "status", "a medicine stopped in hospital is not sent with status"),
        ("started", "stopped", "status", "a medicine started in hospital is not sent with status"),
    ],
    ids=["unknown-kind", "stopped-but-active", "started-but-stopped"],
)
def test_a_kind_of_change_is_one_the_care_home_can_act_on(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token, code: str,
    status: str, where: str, said: str,
) -> None:  # fmt: skip
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    doc = discharge(transfer_id)
    i, statement = next((i, e["resource"]) for i, e in enumerate(doc["entry"])
                        if e["resource"]["resourceType"] == "MedicationStatement")  # fmt: skip
    statement["status"] = status
    statement["category"]["coding"][0]["code"] = code
    sent = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 422
    issues = [(x["expression"], x["diagnostics"]) for x in sent.json()["issue"]]
    assert [f"Bundle.entry[{i}].resource.{where}"] in [e for e, _ in issues], issues
    assert any(said in d for _, d in issues), issues


def test_a_kind_of_change_of_the_wrong_json_type_is_refused_not_an_error(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    doc = discharge(transfer_id)
    (statement,) = _statements(doc)
    statement["category"]["coding"][0]["code"] = ["started"]
    sent = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 422, sent.text


def test_the_care_home_page_says_started_stopped_or_changed_on_each_medicine(
    inbox: tuple[TestClient, str], home: str
) -> None:
    """Started and changed were both 'active', the kind only in a free-text note: the care
    home could not tell a new medicine from a dose change."""
    web, path = inbox
    sent = _discharge(web, path, diagnoses="Urinary tract infection",
                      started="Ramipril 10mg once daily", changed="Amlodipine 10mg once daily",
                      stopped="Aspirin 75mg once daily")  # fmt: skip
    assert sent.status_code == 303, sent.text
    cell = html.unescape(_section(_as(web, home, path), "medications-and-medical-devices"))
    lines = re.findall(r"<li>(.*?)</li>", cell)
    assert lines == ["Ramipril 10mg once daily · started · active",
                     "Aspirin 75mg once daily · stopped · stopped",
                     "Amlodipine 10mg once daily · changed · active"]  # fmt: skip


def test_a_medicine_sent_without_its_kind_is_accepted_and_shown_as_not_given(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """A discharge as the project documented it before the kind was coded is still valid."""
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    doc = discharge(transfer_id)
    for statement in _statements(doc):
        del statement["category"], statement["note"]
    assert send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL)).status_code == 200
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        page = _as(web, home, f"/inbox/{transfer_id}")
    cell = html.unescape(_section(page, "medications-and-medical-devices"))
    assert "<li>Alendronic acid · kind not given · active</li>" in cell


# -- what the discharge form must say ---------------------------------------------------------


def test_a_discharge_form_must_say_whether_medicines_changed(
    inbox: tuple[TestClient, str], home: str
) -> None:
    """Sent with no medicine lines, it read 'Started: None recorded; Stopped: None recorded;
    Changed: None recorded': the care home could not tell no change from a form left blank."""
    web, path = inbox
    silent = _discharge(web, path, diagnoses="Chest infection", follow_up="GP review")
    assert silent.status_code == 422
    assert "tick &#39;No medicine changes&#39;" in silent.text
    assert ">Chest infection</textarea>" in silent.text and ">GP review</textarea>" in silent.text
    both = _discharge(web, path, diagnoses="Chest infection", started="Amoxicillin",
                      no_medicine_changes="yes")  # fmt: skip
    assert both.status_code == 422 and "Untick &#39;No medicine changes&#39;" in both.text
    assert 'name="no_medicine_changes" value="yes" checked' in both.text
    said = _discharge(web, path, diagnoses="Chest infection", no_medicine_changes="yes")
    assert said.status_code == 303, said.text
    cell = _section(_as(web, home, path), "medications-and-medical-devices")
    assert cell.strip() == "No medicine changes"


def test_follow_up_actions_keep_their_lines_for_the_care_home(
    inbox: tuple[TestClient, str], home: str
) -> None:
    web, path = inbox
    typed = "Repeat U&Es in one week\r\nStop ramipril if creatinine rises\r\nGP review <2 weeks>"
    sent = _discharge(web, path, diagnoses="Acute kidney injury", follow_up=typed,
                      no_medicine_changes="yes")  # fmt: skip
    assert sent.status_code == 303, sent.text
    cell = _section(_as(web, home, path), "plan-and-requested-actions")
    assert cell.strip() == ("Repeat U&amp;Es in one week<br>Stop ramipril if creatinine rises<br>"
                    "GP review &lt;2 weeks&gt;")  # fmt: skip


# -- a discharge that lost a race --------------------------------------------------------------


def test_a_discharge_that_lost_a_race_shows_the_transfer_as_it_now_stands(
    inbox: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A colleague's discharge lands between this one's read of the transfer and its send: the
    page was answered from the row read before, 'acknowledged', offering the form again."""
    web, path = inbox
    transfer_id = path.rsplit("/", 1)[1]
    send_first = transfer_pages._send

    def colleague_first(request: Any, who: Any, doc: dict[str, Any]) -> str | list[str]:
        assert isinstance(send_first(request, who, discharge(transfer_id)), str)
        return send_first(request, who, doc)

    monkeypatch.setattr(transfer_pages, "_send", colleague_first)
    lost = _discharge(web, path, diagnoses="UTI", no_medicine_changes="yes")
    assert lost.status_code == 422
    assert "discharged already" in lost.text
    assert 'id="status">discharged<' in lost.text and "Send discharge" not in lost.text


def test_when_the_kind_is_known_it_never_needed_the_note(
    client: TestClient, store: Store, keys: Keys, home: str, token: Token
) -> None:
    """The note, kept for systems that read it, is not what the page shows the kind by."""
    doctor = token("ae-doctor")
    transfer_id = _acknowledged(client, home, keys, doctor)
    doc = discharge(transfer_id)
    for statement in _statements(doc):
        del statement["note"]
    assert send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL)).status_code == 200
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        page = _as(web, home, f"/inbox/{transfer_id}")
    assert "<li>Alendronic acid · started · active</li>" in html.unescape(
        _section(page, "medications-and-medical-devices")
    )
