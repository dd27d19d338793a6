"""The trail answers "who looked at this person, when, and why" for every kind of access:
each entry names the person it is about, counts what it disclosed, and a refusal is one
refusal, told to the person as what it was."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from adapters.base import SourceRef
from adapters.systmone import SystmOneAdapter
from audit.entry import flat
from audit.tables import AuditRow
from engine.identity import link, people_with_nhs_number, unlink
from engine.ingest import ingest
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.test_access import everything
from tests.api.test_transfer import sent_transfer
from tests.api.transfers import home, keys
from tests.factories import nhs_numbers, s1_code, s1_patient, s1_registration, write_systmone
from tests.ig.conftest import IG_ROLE, officer
from tests.web.test_pages import acknowledged, signed_in

__all__ = ["home", "keys"]


def trail(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        bodies = conn.execute(select(AuditRow.body).order_by(AuditRow.seq)).scalars().all()
    return [flat(orjson.loads(b)) for b in bodies]


def size(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditRow)).scalar_one())


def test_an_ig_export_of_a_persons_trail_is_found_under_that_person(
    web: TestClient, store: Store, token: Token
) -> None:
    acknowledged(
        signed_in(web, token("gp", user_id="u-ig-a", name="Synthetic IG A", role_code=IG_ROLE))
    )
    assert web.get("/ig/export", params={"patient": NHS, "format": "csv"}).status_code == 200
    assert web.get("/ig", params={"patient": NHS}).status_code == 200
    about = [e["nhs_number"] for e in trail(store) if e["user_id"] == "u-ig-a"]
    assert about == [NHS, NHS]


def test_the_transfer_form_for_a_number_nobody_holds_is_audited(
    web: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    unknown = next(nhs_numbers(999_800_000))
    acknowledged(signed_in(web, home))
    before = size(store)
    assert web.get(f"/record/{unknown}/transfer").status_code == 404
    (entry,) = trail(store)[before:]
    assert entry["outcome"] == "deny" and entry["nhs_number"] == unknown


def test_one_refused_inbox_view_is_one_refusal_per_person(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token,
) -> None:  # fmt: skip
    first, second = sent_transfer(client, home, keys), sent_transfer(client, home, keys)
    lapsed = token("ae-doctor", user_id="u-lapsed", ig_training=date.today() - timedelta(days=800))
    got = client.get("/transfers", headers={**auth(lapsed), "x-request-id": "one-click"})
    assert got.status_code == 200 and got.json()["transfers"] == []
    (refused,) = [e for e in trail(store) if e["request_id"] == "one-click"]
    assert refused["outcome"] == "deny"
    assert sorted(refused["refs"]) == sorted([f"transfer/{first}", f"transfer/{second}"])


def test_a_transfer_view_counts_what_it_disclosed(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token,
) -> None:  # fmt: skip
    transfer_id = sent_transfer(client, home, keys)
    got = client.get(f"/transfers/{transfer_id}", headers=auth(token("ae-doctor")))
    assert got.status_code == 200 and got.json()["messages"]
    (entry,) = [e for e in trail(store) if e["action"] == "read"]
    assert entry["refs"] == [f"transfer/{transfer_id}"] and entry["disclosed"] == {"transfer": 1}


def _second_record(store: Store) -> str:
    """A second practice's record with the person's NHS number, unlinked from them: two
    people hold the number. Its Patient id."""
    folder = write_systmone(
        store.folder.parent / "y2", [s1_patient("1", NHS)], [s1_code("10", "1")],
        organisations=[{"ID": "5002", "Name": "Hillside Surgery", "NationalId": "Y00002"}],
        registrations=[s1_registration("90", "5002")],
    )  # fmt: skip
    ingest(store.engine, store.settings, store.codes, SystmOneAdapter(), str(folder))
    other = SourceRef("systmone", "Y00002", "SRPatient", "1").resource_id("Patient")
    unlink(store.engine, PATIENT, other, who="ig-1", reason="Two people share one number")
    return other


def test_the_access_report_keeps_accesses_across_an_identity_change(
    client: TestClient, web: TestClient, store: Store, token: Token
) -> None:
    """A relink retires one person id; the reads recorded under it stay in the report."""
    other = _second_record(store)
    for tok, patient in ((token("gp"), PATIENT), (token("other-gp"), other)):
        assert client.get(f"/fhir/Patient/{patient}/$everything", headers=auth(tok)).is_success
    reads = [e for e in trail(store) if e["action"] == "everything"]
    assert len({e["patient_id"] for e in reads}) == 2
    link(store.engine, PATIENT, other, who="ig-1", reason="One person after all: PDS checked")
    acknowledged(signed_in(web, token("gp", user_id="u-ig", role_code=IG_ROLE)))
    page = web.get("/ig/report", params={"patient": NHS})
    assert page.status_code == 200
    assert [e["seq"] for e in reads if f'data-seq="{e["seq"]}"' not in page.text] == []


def test_break_glass_on_a_number_two_people_hold_records_the_number(
    client: TestClient, store: Store, token: Token
) -> None:
    _second_record(store)
    with store.engine.connect() as conn:
        assert len(people_with_nhs_number(conn, NHS)) == 2
    body = {"patient": NHS, "reason_code": "5", "reason_text": "Unconscious, no history"}
    asked = client.post("/access/break-glass", json=body, headers=auth(token("ae-doctor")))
    assert asked.status_code == 409
    (entry,) = [e for e in trail(store) if e["action"] == "break-glass"]
    assert entry["outcome"] == "deny" and entry["nhs_number"] == NHS


def test_a_second_acknowledgement_is_not_told_to_the_person_as_a_refused_look(
    client: TestClient, web: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey],
    home: str, token: Token,
) -> None:  # fmt: skip
    transfer_id = sent_transfer(client, home, keys)
    doctor = auth(token("ae-doctor"))
    assert client.post(f"/transfers/{transfer_id}/acknowledge", headers=doctor).is_success
    assert client.post(f"/transfers/{transfer_id}/acknowledge", headers=doctor).status_code == 409
    acknowledged(signed_in(web, token("gp", user_id="u-ig", role_code=IG_ROLE)))
    page = web.get("/ig/report", params={"patient": NHS})
    assert page.status_code == 200 and "not allowed to" not in page.text
    assert "already recorded" in page.text


def _main(page: str, number: str) -> str:
    """A page's main content, without its CSRF token, with the number asked blanked."""
    found = re.search(r"<main.*?</main>", page, re.S)
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", found[0] if found else page)
    return re.sub(r"\s+", " ", text.replace(number, "N"))


def test_a_number_several_people_hold_answers_as_one_nobody_holds(
    web: TestClient, store: Store, token: Token
) -> None:
    """To a user who may see neither person, the record page for a shared number must not
    differ from the one for an unknown number (it lost its list of refusals)."""
    _second_record(store)
    unknown = next(nhs_numbers(999_800_000))
    for persona in ("receptionist", "ae-doctor"):
        acknowledged(signed_in(web, token(persona, org="R9Z")))
        nobody, several = web.get(f"/record/{unknown}"), web.get(f"/record/{NHS}")
        assert nobody.status_code == several.status_code == 404
        assert _main(several.text, NHS) == _main(nobody.text, unknown), persona


def test_the_access_report_leaves_out_a_person_who_no_longer_holds_the_number(
    client: TestClient, web: TestClient, store: Store, token: Token
) -> None:
    """B's record carried A's number by mistake; a GP read B's record; B's number was then
    corrected. The read is B's, not A's: A's report must not tell them of B's care."""
    other = _second_record(store)
    assert client.get(
        f"/fhir/Patient/{other}/$everything", headers=auth(token("other-gp"))
    ).is_success
    (read_b,) = [e for e in trail(store) if e["action"] == "everything"]
    folder = write_systmone(
        store.folder.parent / "y2b", [s1_patient("1", next(nhs_numbers(999_810_000)))],
        [s1_code("10", "1")],
        organisations=[{"ID": "5002", "Name": "Hillside Surgery", "NationalId": "Y00002"}],
        registrations=[s1_registration("90", "5002")],
    )  # fmt: skip
    ingest(store.engine, store.settings, store.codes, SystmOneAdapter(), str(folder))
    with store.engine.connect() as conn:
        assert len(people_with_nhs_number(conn, NHS)) == 1
    acknowledged(signed_in(web, token("gp", user_id="u-ig", role_code=IG_ROLE)))
    page = web.get("/ig/report", params={"patient": NHS})
    assert page.status_code == 200 and f'data-seq="{read_b["seq"]}"' not in page.text


def test_the_access_report_of_a_number_two_people_hold_mixes_neither(
    client: TestClient, web: TestClient, store: Store, token: Token
) -> None:
    other = _second_record(store)
    assert client.get(
        f"/fhir/Patient/{other}/$everything", headers=auth(token("other-gp"))
    ).is_success
    acknowledged(signed_in(web, token("gp", user_id="u-ig", role_code=IG_ROLE)))
    page = web.get("/ig/report", params={"patient": NHS})
    assert page.status_code == 409 and "More than one person" in page.text
    assert "data-seq=" not in page.text


@pytest.mark.parametrize("asked_by", ["person", "nhs"])
def test_a_search_about_a_person_is_found_by_their_id_and_by_their_number(
    web: TestClient, store: Store, token: Token, ig_token: str, asked_by: str
) -> None:
    """An officer's search of one person's trail is recorded under both the person's id and
    their NHS number: asked by id, it was recorded by id alone, and another officer asking by
    the number did not find it."""
    assert everything(web, token("gp")).status_code == 200
    person = next(e["patient_id"] for e in trail(store) if e["action"] == "everything")
    officer(web, ig_token)
    asked = person if asked_by == "person" else NHS
    assert web.get("/ig", params={"patient": asked}).status_code == 200
    [mine] = [e for e in trail(store) if e["action"] == "ig-view" and e.get("query")
              and e["query"].startswith("search?")]  # fmt: skip
    assert (mine["patient_id"], mine["nhs_number"]) == (person, NHS)
    for by in (person, NHS):
        found = web.get("/ig", params={"patient": by, "action": "ig-view"})
        assert f'data-seq="{mine["seq"]}"' in found.text
