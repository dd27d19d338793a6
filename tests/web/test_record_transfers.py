"""A red-bag transfer in the person's combined record: their other care-relationship holders see
that it happened (status history, which hospital, when) through the record's own decision and
audit entry; anyone without a way in sees nothing, and nothing else changes."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.entry import flat
from audit.tables import AuditRow
from consent import PersonLabel, Request, decide
from engine.transfer.record import released
from engine.transfer.store import Stay
from tests.api.conftest import (
    NHS,
    PATIENT,
    Store,
    Token,
    api_settings,
    auth,
    client,
    loaded,
    store,
    token,
)
from tests.api.test_transfer import acknowledgement, discharge, home, keys, send, sent_transfer
from tests.api.transfers import (
    CARE_HOME as CARE_HOME_ODS,
)
from tests.api.transfers import (
    CARE_ROLE,
    HOSPITAL,
    OTHER_HOME,
    OTHER_HOSPITAL,
    signed,
    unsigned,
)
from tests.consent.personas import CARE_HOME, GP, NOW, POLICY, facts, relation, who
from tests.web.test_pages import acknowledged, signed_in

__all__ = ["api_settings", "client", "home", "keys", "loaded", "store", "token"]
TITLE = "Hospital transfers (red bag)"


@pytest.fixture
def transfer_id(
    client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> str:
    """A transfer that went all the way: sent, received, acknowledged, discharged, returned."""
    found = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    assert client.post(f"/transfers/{found}/acknowledge", headers=auth(doctor)).status_code == 200
    back = signed(discharge(found), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, back).status_code == 200
    assert client.post(f"/transfers/{found}/acknowledge", headers=auth(home)).status_code == 200
    return found


def record(web: TestClient, tok: str) -> Any:
    acknowledged(signed_in(web, tok))
    return web.get(f"/record/{NHS}")


def last_read(store: Store, org: str) -> dict[str, Any]:
    """The latest record-page entry (``everything``) of a user at ``org``."""
    with store.engine.connect() as conn:
        body = conn.execute(
            select(AuditRow.body)
            .where(AuditRow.action == "everything", AuditRow.org == org)
            .order_by(AuditRow.seq.desc())
            .limit(1)
        ).scalar_one()
    return flat(orjson.loads(body))


def test_the_gp_sees_the_transfer_history_in_the_record_and_the_read_is_audited(
    web: TestClient, store: Store, token: Token, transfer_id: str
) -> None:
    page = record(web, token("gp"))
    assert page.status_code == 200 and TITLE in page.text
    shown = page.text.split('id="transfers"', 1)[1].split("</table>", 1)[0]
    assert "From Grey Gables Care Home to Borchester General Hospital: returned" in shown
    steps = [s.split("</td>", 1)[0] for s in shown.split("<tr><td>")[1:]]
    assert steps == ["sent", "received", "acknowledged", "discharged", "returned"]
    assert f'href="/inbox/{transfer_id}"' not in shown
    entry = last_read(store, "Y00001")
    assert entry["outcome"] == "permit" and f"transfer/{transfer_id}" in entry["refs"]
    assert entry["disclosed"]["transfer"] == 1
    assert web.get(f"/transfers/{transfer_id}", headers=auth(token("gp"))).status_code == 404


def test_the_transfer_stays_in_the_record_when_the_person_is_merged(
    web: TestClient, store: Store, token: Token, transfer_id: str
) -> None:
    store.merge()
    page = record(web, token("gp"))
    assert (
        page.status_code == 200 and f"transfer/{transfer_id}" in last_read(store, "Y00001")["refs"]
    )


def test_the_parties_see_it_in_the_record_with_a_way_to_their_inbox(
    web: TestClient, token: Token, transfer_id: str, home: str
) -> None:
    page = record(web, home)
    assert TITLE in page.text and f'href="/inbox/{transfer_id}"' in page.text


def test_no_way_in_means_no_transfer_and_the_same_answer_as_before_it(
    web: TestClient, client: TestClient, store: Store, token: Token,
    keys: dict[str, Ed25519PrivateKey], home: str,
) -> None:  # fmt: skip
    outsiders = {
        OTHER_HOSPITAL: token("ae-doctor", org=OTHER_HOSPITAL, user_id="u-other-hospital"),
        OTHER_HOME: token("gp", org=OTHER_HOME, role_code=CARE_ROLE, user_id="u-other-home"),
    }
    gp = token("gp")
    everything = f"/fhir/Patient/{PATIENT}/$everything"
    before = {org: record(web, tok).status_code for org, tok in outsiders.items()}
    total = client.get(everything, headers=auth(gp)).json()["total"]
    transfer = sent_transfer(client, home, keys)
    for org, tok in outsiders.items():
        page = record(web, tok)
        assert page.status_code == before[org] == 404
        assert TITLE not in page.text and transfer not in page.text
        entry = last_read(store, org)
        assert entry["outcome"] == "deny" and entry["refs"] == [] and entry["disclosed"] == {}
    assert client.get(everything, headers=auth(gp)).json()["total"] == total


def test_a_profile_without_admissions_is_refused_the_transfer_like_any_admission(
    web: TestClient, store: Store, token: Token, transfer_id: str
) -> None:
    page = record(web, token("receptionist"))
    assert page.status_code == 200 and TITLE not in page.text and transfer_id not in page.text
    entry = last_read(store, "Y00001")
    assert entry["outcome"] == "permit" and "transfer" not in entry["disclosed"]
    assert not any(r.startswith("transfer/") for r in entry["refs"])
    record(web, token("gp"))
    assert last_read(store, "Y00001")["disclosed"]["transfer"] == 1


def test_the_inbox_page_shows_an_acknowledgement_message_as_one(
    web: TestClient, client: TestClient, token: Token, keys: dict[str, Ed25519PrivateKey],
    home: str,
) -> None:  # fmt: skip
    found = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    ack = signed(acknowledgement(found), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, ack).status_code == 200
    acknowledged(signed_in(web, home))
    page = web.get(f"/inbox/{found}")
    assert page.status_code == 200
    headings = [h.split("</h2>", 1)[0] for h in page.text.split("<h2>")[1:]]
    assert headings == ["Status history", "Transfer form", "Acknowledgement of receipt"]
    assert 'id="status">acknowledged<' in page.text


def _summary(doc: dict[str, Any], code: str, text: str) -> None:
    """The sender's narrative of one section, written to say something else."""
    for s in doc["entry"][1]["resource"]["section"]:
        if s["code"]["coding"][0]["code"] == code:
            s["text"]["div"] = f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>'


def test_the_transfer_page_shows_what_the_rules_checked_beside_the_senders_summary(
    web: TestClient, client: TestClient, token: Token, keys: dict[str, Ed25519PrivateKey],
    home: str,
) -> None:  # fmt: skip
    """The page and its printout showed each section's narrative alone: the sender's words,
    which nothing checks. A message coding a penicillin allergy, NEWS2 8 and not for CPR, whose
    summaries said no allergies, NEWS2 0 and for CPR, read to the hospital as the summaries."""
    doc = unsigned()
    _summary(doc, "allergies-and-adverse-reaction", "No known allergies")
    _summary(doc, "observations", "Observations normal. NEWS2 0 (low risk)")
    _summary(doc, "advance-decisions-about-treatment", "For cardiopulmonary resuscitation")
    assert send(client, home, signed(doc, keys[CARE_HOME_ODS])).status_code == 200
    acknowledged(signed_in(web, token("ae-doctor")))
    page = html.unescape(web.get(f"/inbox/{doc['entry'][0]['resource']['id']}").text)
    rows = dict(re.findall(r'<tr data-section="([^"]+)">(.*?)</tr>', page, re.S))
    assert "Penicillin" in rows["allergies-and-adverse-reaction"]
    assert "NEWS2 total score · 8" in rows["observations"]
    assert "Not for cardiopulmonary resuscitation" in rows["advance-decisions-about-treatment"]
    assert "Sender's summary: No known allergies" in rows["allergies-and-adverse-reaction"]


def test_a_last_dose_sent_as_a_year_is_shown_as_sent(
    web: TestClient, client: TestClient, token: Token, keys: dict[str, Ed25519PrivateKey],
    home: str,
) -> None:  # fmt: skip
    """R4 lets a dateTime be a year alone: read as an instant it raised, and the page was a
    500."""
    doc = unsigned()
    medicine = next(e["resource"] for e in doc["entry"]
                    if e["resource"]["resourceType"] == "MedicationStatement")  # fmt: skip
    medicine["effectiveDateTime"] = "2026"
    assert send(client, home, signed(doc, keys[CARE_HOME_ODS])).status_code == 200
    acknowledged(signed_in(web, token("ae-doctor")))
    page = web.get(f"/inbox/{doc['entry'][0]['resource']['id']}")
    assert page.status_code == 200 and "last dose given 2026<" in page.text.replace("</li>", "<")


def test_the_transfer_pages_show_the_confidentiality_notice_before_any_person(
    web: TestClient, client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token,
) -> None:  # fmt: skip
    """The notice comes before the inbox, a transfer and a prefilled transfer form, as before a
    record, and acknowledging it leads back to the page asked for."""
    found = sent_transfer(client, home, keys)
    signed_in(web, token("ae-doctor"))
    for path in ("/inbox", f"/inbox/{found}"):
        page = web.get(path)
        assert page.status_code == 200 and 'id="acknowledge"' in page.text, path
        assert NHS not in page.text and "Penicillin" not in page.text, path
        assert f'name="next_page" value="{path}"' in page.text
    signed_in(web, home)
    form = web.get(f"/record/{NHS}/transfer")
    assert 'id="acknowledge"' in form.text and "Penicillin" not in form.text
    csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    back = web.post("/acknowledge", data={"csrf_token": csrf, "next_page": f"/inbox/{found}"})
    assert back.status_code == 303 and back.headers["location"] == f"/inbox/{found}"
    after = web.get(f"/inbox/{found}").text
    assert 'id="status">received<' in after and NHS in after


def test_a_restricted_persons_care_home_is_shown_by_no_one_but_the_home() -> None:
    """The care home a transfer names is where a person restricted at source lives."""
    everything = Request("everything")

    labels = frozenset({PersonLabel("restricted-person", "E06000999")})
    stay = Stay("t-1", CARE_HOME, HOSPITAL, "discharged",
                (("received", HOSPITAL, NOW - timedelta(days=3)),))  # fmt: skip
    gp = decide(who("clinical"), facts(relation(GP), labels=labels), "TREAT", everything, NOW,
                POLICY)  # fmt: skip
    assert gp.permit
    assert released(gp, [stay], POLICY, labels)[0] == ()
    assert released(gp, [stay], POLICY)[0] == (stay,), "unrestricted, the GP sees it"
    home = decide(who("care-home", org=CARE_HOME), facts(relation(CARE_HOME, "placement"),
                  labels=labels), "TREAT", everything, NOW, POLICY)  # fmt: skip
    assert released(home, [stay], POLICY, labels)[0] == (stay,)


def test_a_restricted_persons_transfer_is_shown_to_both_its_organisations_and_the_restrictor() -> (
    None
):
    """Each already knows the care home: its own transfer, or the person it restricted."""
    labels = frozenset({PersonLabel("restricted-person", "E06000999")})
    stay = Stay("t-1", CARE_HOME, HOSPITAL, "received",
                (("received", HOSPITAL, NOW - timedelta(days=1)),))  # fmt: skip
    everything = Request("everything")
    hospital = decide(who("clinical", org=HOSPITAL, org_kind="hospital"),
                      facts(relation(HOSPITAL, "transfer", days_ago=1), labels=labels),
                      "TREAT", everything, NOW, POLICY)  # fmt: skip
    council = decide(who("social-care", org="E06000999"),
                     facts(relation("E06000999", "council-case"), labels=labels),
                     "TREAT", everything, NOW, POLICY)  # fmt: skip
    for d in (hospital, council):
        assert d.permit
        assert released(d, [stay], POLICY, labels)[0] == (stay,)


def test_a_doctor_refused_for_lapsed_training_is_told_why_not_that_there_is_nothing(
    web: TestClient, client: TestClient, token: Token, keys: dict[str, Ed25519PrivateKey],
    home: str,
) -> None:  # fmt: skip
    """A doctor whose IG training had lapsed was told 'No transfers for your organisation'
    while a resident's red bag waited: the refusal is about them, and theirs to know, as the
    record page and /access/explain say it. The page says so whether or not any wait."""
    lapsed = token("ae-doctor", user_id="u-lapsed", ig_training=date.today() - timedelta(days=800))
    acknowledged(signed_in(web, lapsed))
    before = web.get("/inbox").text
    sent_transfer(client, home, keys)
    after = web.get("/inbox").text
    for page in (before, after):
        assert "No transfers for your organisation" not in page and 'id="inbox-refused"' in page
        assert "training" in page.lower()
    main = [p[p.index("<main") :] for p in (before, after)]
    assert main[0] == main[1]
