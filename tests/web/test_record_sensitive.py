"""Sensitive items on the record page, whichever way a sender codes them, dated items, and
what a social care item says."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.codes import CodeMaps
from adapters.gpconnect import GpConnectAdapter
from consent import Request, decide, load
from consent.facts import directive
from engine.ingest import ingest
from engine.settings import Settings
from engine.web.summary import View, compose
from engine.web.templating import templates
from tests.adapters import test_council as council
from tests.adapters.test_gpconnect import bundle, organization, patient
from tests.api.conftest import NHS, Store, Token
from tests.consent.personas import GP, NOW, POLICY, facts, relation, who
from tests.web.test_pages import acknowledged, signed_in

#: The day the summaries are read on.
TODAY = date(2026, 12, 6)

SCT = "http://snomed.info/sct"


def gp_connect(store: Store, *resources: dict[str, Any]) -> None:
    """A GP Connect record of the test person, from their practice (Y00001)."""
    pat = patient(NHS, name=[{"family": "Smith", "given": ["Renée"], "prefix": ["Mrs"]}],
                  birthDate="1950-03-01", gender="female")  # fmt: skip
    folder = store.folder.parent / "gpc"
    folder.mkdir(exist_ok=True)
    doc = bundle(pat, organization(ods="Y00001"), *resources)
    (folder / "record.json").write_bytes(orjson.dumps(doc))
    ingest(store.engine, store.settings, store.codes, GpConnectAdapter(), str(folder))


def syphilis(rid: str, system: str = SCT) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": rid, "clinicalStatus": "active",
        "verificationStatus": "confirmed", "assertedDate": "2024-02-01",
        "code": {"coding": [{"system": system, "code": "76272004",
                             "display": f"Syphilis [{rid}]"}]},
        "subject": {"reference": "Patient/p1"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "system",
    [SCT, "https://snomed.info/sct", "http://snomed.info/sct/", "urn:oid:2.16.840.1.113883.6.96"],
)
def test_a_sensitive_code_is_withheld_however_snomed_is_spelled(
    web: TestClient, store: Store, token: Token, system: str
) -> None:
    gp_connect(store, syphilis("c1", system))
    acknowledged(signed_in(web, token("other-gp")))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 200
    assert "Syphilis [c1]" not in page.text, f"shown to another practice under {system!r}"


def test_a_sensitive_code_in_a_second_coding_or_a_reason_is_withheld(
    web: TestClient, store: Store, token: Token
) -> None:
    visit = {
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "type": [{"text": "Clinic visit [e1]"}],
        "reason": [{"coding": [{"system": "https://example.org/local", "code": "X1"},
                               {"system": SCT, "code": "15628003"}], "text": "[e1]"}],
        "subject": {"reference": "Patient/p1"}, "period": {"start": "2024-01-05"},
    }  # fmt: skip
    medicine = {
        "resourceType": "MedicationStatement", "id": "m1", "status": "active",
        "medicationCodeableConcept": {"text": "Benzathine benzylpenicillin [m1]"},
        "reasonCode": [{"coding": [{"system": SCT, "code": "76272004"}]}],
        "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": "2024-01-05"},
        "taken": "y",
    }  # fmt: skip
    gp_connect(store, visit, medicine)
    acknowledged(signed_in(web, token("other-gp")))
    page = web.get(f"/record/{NHS}").text
    assert "[e1]" not in page and "[m1]" not in page


def test_a_lasting_power_of_attorney_shows_its_date() -> None:
    """Every item shows its date: a council's legal Consent carries it in dateTime."""
    lpa = {
        "resourceType": "Consent", "id": "x", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "adr"}]},
        "category": [{"text": "Lasting power of attorney for health and welfare"}],
        "dateTime": "2026-06-19",
        "meta": {"source": "https://fhir.scr.example/source/council/E06000999/legal/1"},
    }  # fmt: skip
    (section,) = compose([lpa], load(), {}, TODAY).summary
    assert [i.date for i in section.items] == ["2026-06-19"]
    undated = {k: v for k, v in lpa.items() if k != "dateTime"} | {
        "provision": {"period": {"start": "2025-01-02"}}
    }
    (section,) = compose([undated], load(), {}, TODAY).summary
    assert [i.date for i in section.items] == ["2025-01-02"]


@pytest.mark.parametrize("written", ["2019", "2019-05", "2019-05-31"])
def test_a_directive_is_dated_as_its_source_wrote_it(written: str) -> None:
    """A directive dated only to the year (or month) is read at that precision: shown as a
    day it was '2019-01-01', a date no one recorded (and, for May, read as UK midnight and
    stored in UTC, 30 April)."""
    consent = {
        "resourceType": "Consent", "status": "active", "dateTime": written,
        "scope": {"coding": [{"code": "patient-privacy"}]}, "provision": {"type": "deny"},
        "performer": [{"display": "Dr Synthetic"}],
    }  # fmt: skip
    found = directive(consent, POLICY.sensitive, POLICY.sections)
    assert found is not None
    user = who("clinical")
    decision = decide(user, facts(relation(GP), directives=(found,)), "TREAT",
                      Request("everything"), NOW, POLICY)  # fmt: skip
    html = templates.get_template("record.html").render(
        who=user, view=View(None, (), ()), nhs_number=NHS, basis=decision.basis,
        directives=decision.directives, transfers=(), org_names={}, notice="n", csrf="x",
    )  # fmt: skip
    shown = re.search(r"recorded by Dr Synthetic on (\S+) shapes this view", html)
    assert shown and shown[1] == written, html


def test_an_item_shows_the_day_it_falls_on_in_the_uk() -> None:
    """EMIS sends a date as local midnight (``2018-08-15T00:00:00+01:00``), stored in UTC as
    23:00 the day before: cut to 10 characters it showed a clinician 14 August."""
    result = {
        "resourceType": "Observation", "id": "x", "status": "final",
        "code": {"text": "Serum creatinine"},
        "meta": {"source": "https://fhir.scr.example/source/gpconnect/A12345/Observation/1"},
    }  # fmt: skip
    shown = {
        "2018-08-14T23:00:00+00:00": "2018-08-15",
        "2018-12-14T23:00:00+00:00": "2018-12-14",
        "2018-08-14T23:00:00.1234567+00:00": "2018-08-15",
        "2018-08-14": "2018-08-14",
        "2018-08": "2018-08",
    }
    for stored, day in shown.items():
        view = compose([result | {"effectiveDateTime": stored}], load(), {}, TODAY)
        (item,) = {i for s in (*view.summary, *view.details) for i in s.items}
        assert item.date == day, stored


def test_a_censored_result_shows_its_comparator() -> None:
    """'<5 mmol/L' is not '5 mmol/L'."""
    result = {
        "resourceType": "Observation", "id": "x", "status": "final",
        "code": {"text": "Serum creatinine"}, "effectiveDateTime": "2026-06-19",
        "valueQuantity": {"value": 5, "comparator": "<", "unit": "mmol/L"},
        "meta": {"source": "https://fhir.scr.example/source/emis/A12345/CareRecord_Observation/1"},
    }  # fmt: skip
    view = compose([result], load(), {}, TODAY)
    (item,) = {i for s in (*view.summary, *view.details) for i in s.items}
    assert item.detail.startswith("<5 mmol/L")


def test_social_care_items_say_who_and_how_to_reach_them(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """Issue 6 asks for the key worker and carers: the allocated worker read 'Allocated
    social care worker · active', a carer her name alone, and a placement not which home."""
    council.run(engine, settings, codes, str(council.write_extract(tmp_path, council.standard())))
    names = {"E06000999": "Borsetshire Council", "VXA01": "Grey Gables Care Home"}
    view = compose(council.stored(engine), load(), names, TODAY)
    shown = {(s.key, i.label): i.detail for s in (*view.summary, *view.details) for i in s.items}
    worker = shown["care-team", "Allocated social care worker"]
    assert worker == (
        "Usha Franks (Social Worker, Key worker) · Older People North · 01632 960001 · active"
    )
    assert shown["contacts", "Pat Archer"] == "Daughter; Informal Carer · 07700 900123"
    placement = shown["placements", "Care home placement (residential or nursing)"]
    assert placement == "Grey Gables Care Home · active"
    assert shown["care-packages", "Home Support"] == "active"  # the council is its source


def test_a_relationship_coded_and_written_alike_is_said_once_and_a_team_has_its_date() -> None:
    """SystmOne sends 'Next of kin' as written and as coded; a CareTeam dates by its period."""
    s1 = "https://fhir.scr.example/source/systmone/Y90011/SRPatientRelationship/5"
    contact = {
        "resourceType": "RelatedPerson", "id": "r", "name": [{"text": "Anthony Taylor"}],
        "relationship": [{"text": "Next of kin"}, {"coding": [{"display": "Next of Kin"}]}],
        "meta": {"source": s1},
    }  # fmt: skip
    team = {
        "resourceType": "CareTeam", "id": "t", "status": "active", "name": "District nurses",
        "participant": [{"member": {"display": "Sam Hale"}}], "period": {"start": "2021-03-04"},
        "meta": {"source": s1},
    }  # fmt: skip
    view = compose([contact, team], load(), {}, TODAY)
    shown = [(i.label, i.detail, i.date) for s in view.summary for i in s.items]
    assert shown == [
        ("District nurses", "Sam Hale · active", "2021-03-04"),
        ("Anthony Taylor", "Next of kin", ""),
    ]
