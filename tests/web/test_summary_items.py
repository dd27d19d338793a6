"""What the record summary lists and how it words each item: a medicine by its drug, the
CPR decision in force, current items only, and a date or the word that there is none."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from consent import Request, decide, mask, section_of
from engine.web.summary import (
    UNNAMED_MEDICINE,
    View,
    compose,
    contact_lines,
    registered_practice,
)
from engine.web.templating import templates
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.transfers import home, keys
from tests.consent.personas import (
    NOW,
    OTHER_GP,
    POLICY,
    directive,
    facts,
    hospital_clinician,
    typical,
    who,
)
from tests.web.test_pages import acknowledged, signed_in
from tests.web.test_record_sensitive import TODAY, gp_connect

__all__ = ["home", "keys"]
SCT = "http://snomed.info/sct"
COUNCIL = "https://fhir.scr.example/source/council/E06000999"
WARFARIN = {"system": SCT, "code": "39113611000001102", "display": "Warfarin 3mg tablets"}
CPR_CODES = {
    "304253006": "Not for resuscitation",
    "450476008": "Not for attempted cardiopulmonary resuscitation",
    "304252001": "For resuscitation",
    "450475007": "For attempted cardiopulmonary resuscitation",
}


def _statement(**drug: Any) -> dict[str, Any]:
    """A current GP Connect medicine, naming its drug as ``drug`` says."""
    return {
        "resourceType": "MedicationStatement", "id": "ms1", "status": "active",
        "subject": {"reference": "Patient/p1"}, "dateAsserted": "2024-04-01",
        "effectivePeriod": {"start": "2024-04-01"}, "taken": "unk",
        "dosage": [{"text": "As directed by anticoagulant clinic"}], **drug,
    }  # fmt: skip


def _summary_html(page: str) -> str:
    return page.split("<h2>Summary</h2>", 1)[1].split("<h2", 1)[0]


def _summary(resources: list[dict[str, Any]]) -> dict[str, list[str]]:
    view = compose(resources, POLICY, {}, TODAY)
    return {s.key: [i.label for i in s.items] for s in view.summary}


def _obs(rid: str, code: str, when: str = "") -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": {"coding": [{"system": SCT, "code": code, "display": CPR_CODES[code]}]},
        "meta": {"source": f"https://fhir.scr.example/source/gpconnect/Y00001/Observation/{rid}"},
    }  # fmt: skip
    return obs | ({"effectiveDateTime": when} if when else {})


def test_a_medicine_is_named_by_the_medication_it_references() -> None:
    """GP Connect names a drug only by ``medicationReference``: the summary listed the
    statement as 'MedicationStatement' though the Medication was released beside it."""
    drug = {"resourceType": "Medication", "id": "m1", "code": {"coding": [WARFARIN]}}
    statement = _statement(medicationReference={"reference": "Medication/m1"})
    assert _summary([drug, statement]) == {"medications-current": ["Warfarin 3mg tablets"]}


def test_a_contained_drug_names_its_medicine_on_the_page_and_the_transfer_form(
    web: TestClient, store: Store, token: Token, home: str, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """A drug carried inline (``#m``) was not read: the page and the care home's transfer
    form named the medicine 'MedicationStatement'."""
    drug = {"resourceType": "Medication", "id": "m", "code": {"coding": [WARFARIN]}}
    gp_connect(store, _statement(contained=[drug], medicationReference={"reference": "#m"}))
    page = acknowledged(signed_in(web, token("gp"))).get(f"/record/{NHS}").text
    assert "<td>Warfarin 3mg tablets</td>" in _summary_html(page)
    form = acknowledged(signed_in(web, home)).get(f"/record/{NHS}/transfer").text
    medicines = re.search(r'<textarea id="medicines"[^>]*>([^<]*)</textarea>', form)
    assert medicines and medicines[1] == "Warfarin 3mg tablets", form


def test_a_gp_connect_medicine_is_named_by_the_medication_its_record_sends(
    web: TestClient, store: Store, token: Token
) -> None:
    """A GP Connect Medication was stored on its own, for no patient, so no read released it:
    the page named the medicine 'MedicationStatement', and the API sent a statement naming a
    drug it never sent. The statement now carries the drug inside it."""
    gp_connect(
        store,
        {"resourceType": "Medication", "id": "m1", "code": {"coding": [WARFARIN]}},
        _statement(medicationReference={"reference": "Medication/m1"}),
    )
    page = acknowledged(signed_in(web, token("gp"))).get(f"/record/{NHS}").text
    summary = _summary_html(page)
    assert "<td>Warfarin 3mg tablets</td>" in summary and UNNAMED_MEDICINE not in summary
    doc = web.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(token("gp"))).json()
    (statement,) = [e["resource"] for e in doc["entry"]
                    if e["resource"]["resourceType"] == "MedicationStatement"]  # fmt: skip
    assert statement["medicationReference"] == {"reference": "#medication"}
    (drug,) = statement["contained"]
    assert drug["code"]["coding"][0]["code"] == WARFARIN["code"]


def test_a_medicine_whose_drug_was_not_sent_says_its_name_is_not_available() -> None:
    """A statement naming a drug nothing released holds (another pull's) was listed as
    'MedicationStatement', a type name read as a drug's."""
    statement = _statement(medicationReference={"reference": "Medication/elsewhere"})
    assert _summary([statement]) == {"medications-current": [UNNAMED_MEDICINE]}


def test_a_drug_the_viewer_may_not_see_is_not_named() -> None:
    """A restriction of the drugs the record names takes a contained Medication out of its
    statement; the statement is still listed, and must not name the drug some other way."""
    user = hospital_clinician()
    restricted = directive("restrict-category", category="medicines")
    decision = decide(user, facts(typical(user), directives=(restricted,)), "TREAT",
                      Request("everything"), NOW, POLICY)  # fmt: skip
    drug = {"resourceType": "Medication", "id": "m", "code": {"coding": [WARFARIN]}}
    statement = _statement(contained=[drug], medicationReference={"reference": "#m"})
    shown = mask(statement, decision, POLICY, OTHER_GP)
    assert "contained" not in shown, "the restriction did not reach the drug"
    view = compose([shown], POLICY, {}, TODAY)
    assert [i.label for s in view.summary for i in s.items] == [UNNAMED_MEDICINE]
    assert "Warfarin" not in repr(view)


@pytest.mark.parametrize("resource_type", ["Flag", "Observation"])
@pytest.mark.parametrize("code", ["304252001", "450475007"])
def test_a_for_cpr_decision_is_placed_with_the_dnacpr_it_replaces(
    resource_type: str, code: str
) -> None:
    """'For resuscitation' and 'For attempted CPR' were placed in observations (or alerts),
    which the care home does not see: it saw only the DNACPR they replaced."""
    decision = {"resourceType": resource_type, "code": {"coding": [{"system": SCT, "code": code}]}}
    assert section_of(decision, POLICY) == "advance-decisions"
    assert "advance-decisions" in POLICY.profiles["care-home"].sections


def test_the_latest_cpr_decision_is_current_and_earlier_ones_superseded() -> None:
    """A DNACPR of 2020 reversed by 'For CPR' in 2024 was the only CPR decision listed."""
    summary = _summary([
        _obs("o1", "304253006", "2020-01-10"),
        _obs("o2", "304252001", "2024-05-01"),
        _obs("o3", "450475007", "2024-06-01T09:30:00+01:00"),
    ])  # fmt: skip
    assert summary["advance-decisions"] == [
        "For attempted cardiopulmonary resuscitation (current decision)",
        "For resuscitation (superseded by a later decision)",
        "Not for resuscitation (superseded by a later decision)",
    ]


@pytest.mark.parametrize(
    ("dates", "said"),
    [
        (("2024-05-01", "2024-05-01", "2020"), [
            "another has the same date: which decision is current is not known",
            "another has the same date: which decision is current is not known",
            "superseded by a later decision",
        ]),
        (("2024", "2024-05-01"), [
            "another has the same date: which decision is current is not known",
            "another has the same date: which decision is current is not known",
        ]),
        (("2024-05-01", "2020-01-10", ""), [
            "another is undated: which decision is current is not known",
            "superseded by a later decision",
            "undated: which decision is current is not known",
        ]),
    ],
)  # fmt: skip
def test_a_tie_or_an_undated_cpr_decision_is_said_not_guessed(
    dates: tuple[str, ...], said: list[str]
) -> None:
    """Whichever decision sorted first would have been read as the one in force."""
    codes = ["304252001", "304253006", "450476008"]
    summary = _summary([_obs(f"o{i}", codes[i], d) for i, d in enumerate(dates)])
    assert [re.sub(r".*\((.*)\)$", r"\1", s) for s in summary["advance-decisions"]] == said


@pytest.mark.parametrize(
    ("decisions", "in_force"),
    [
        ([], None),
        ([("304253006", "2020-01-10")], False),
        ([("304253006", "2020-01-10"), ("450475007", "2024-06-01T09:30:00+01:00")], True),
        ([("450475007", "2020-01-10"), ("450476008", "2024-06-01")], False),
        # two of a day that agree say what both say; that disagree, nothing
        ([("304253006", "2024-05-01"), ("450476008", "2024-05-01")], False),
        ([("304252001", "2024-05-01"), ("450476008", "2024-05-01")], None),
        # an undated one beside a dated one the other way leaves it open
        ([("304252001", "2024-05-01"), ("450476008", "")], None),
        ([("304252001", "2024"), ("450476008", "2024-05-01")], None),
    ],
)  # fmt: skip
def test_the_transfer_form_is_prefilled_with_the_cpr_decision_in_force_or_none(
    decisions: list[tuple[str, str]], in_force: bool | None
) -> None:
    """The spec prefills the CPR decision; where the record cannot say which is in force, the
    nurse says, as the page's own words do."""
    view = compose([_obs(f"o{i}", c, d) for i, (c, d) in enumerate(decisions)], POLICY, {}, TODAY)
    assert view.for_cpr is in_force


def test_an_ended_or_doubly_coded_cpr_decision_prefills_nothing() -> None:
    ended = _obs("o1", "304253006", "2020-01-10") | {"status": "entered-in-error"}
    assert compose([ended], POLICY, {}, TODAY).for_cpr is None
    both = _obs("o1", "304253006", "2020-01-10")
    both["code"]["coding"].append({"system": SCT, "code": "450475007"})
    assert compose([both], POLICY, {}, TODAY).for_cpr is None


def test_the_record_page_shows_a_later_for_cpr_as_current_beside_the_dnacpr(
    web: TestClient, store: Store, token: Token
) -> None:
    """The page listed the 2020 DNACPR as the only CPR decision: the 2024 'For
    resuscitation' that replaced it was among the observations."""
    gp_connect(
        store,
        _obs("cpr1", "304253006", "2020-01-10") | {"subject": {"reference": "Patient/p1"}},
        _obs("cpr2", "304252001", "2024-05-01") | {"subject": {"reference": "Patient/p1"}},
    )
    page = acknowledged(signed_in(web, token("gp"))).get(f"/record/{NHS}").text
    cpr = _summary_html(page).split('id="s-advance-decisions"', 1)[1].split("</section>", 1)[0]
    assert "<td>For resuscitation (current decision)</td>" in cpr
    assert "<td>Not for resuscitation (superseded by a later decision)</td>" in cpr


def _flag(rid: str, status: str, text: str, legal: bool = False) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "resourceType": "Flag", "id": rid, "status": status, "code": {"text": text},
        "period": {"start": "2018-01-01", "end": "2019-01-01"},
        "meta": {"source": f"{COUNCIL}/warnings/{rid}"},
    }  # fmt: skip
    if legal:
        flag["category"] = [{"coding": [{"system": SCT, "code": "303186005"}]}]
    return flag


def test_ended_flags_lpas_placements_and_packages_are_not_summarised_as_current() -> None:
    """Council rows that ended are mapped to Flag 'inactive', Consent 'inactive'/'rejected',
    EpisodeOfCare 'finished' (mappings/council/*.json); the summary listed them as current."""
    ended = [
        _flag("f1", "inactive", "Risk to staff (ended 2019)"),
        _flag("f2", "entered-in-error", "Deprivation of Liberty Safeguards", legal=True),
        {"resourceType": "Consent", "id": "c1", "status": "rejected",
         "scope": {"coding": [{"code": "adr"}]},
         "category": [{"text": "Lasting power of attorney (refused)"}],
         "dateTime": "2019-02-01", "meta": {"source": f"{COUNCIL}/legal/1"}},
        {"resourceType": "EpisodeOfCare", "id": "e1", "status": "finished",
         "type": [{"coding": [{"code": "care-home-placement"}], "text": "Placement at Old Home"}],
         "period": {"start": "2015-01-01", "end": "2016-01-01"},
         "meta": {"source": f"{COUNCIL}/placements/1"}},
        {"resourceType": "EpisodeOfCare", "id": "e2", "status": "cancelled",
         "type": [{"text": "Home care package (ended)"}],
         "period": {"start": "2015-01-01", "end": "2016-01-01"},
         "meta": {"source": f"{COUNCIL}/events/1"}},
    ]  # fmt: skip
    view = compose(ended, POLICY, {}, TODAY)
    assert view.summary == ()
    assert {s.key: len(s.items) for s in view.details} == {
        "placements": 1, "care-packages": 1, "alerts": 1, "legal": 1, "advance-decisions": 1,
    }  # fmt: skip


def test_ended_workers_contacts_allergies_and_admissions_are_not_summarised() -> None:
    """A worker no longer allocated, a former contact, a resolved or refuted allergy and a
    cancelled admission were summarised beside the current ones, which still are."""
    team: dict[str, Any] = {"resourceType": "CareTeam", "name": "Older People's Team South"}
    contact: dict[str, Any] = {"resourceType": "RelatedPerson", "name": [{"text": "Paul Taylor"}]}
    allergy: dict[str, Any] = {"resourceType": "AllergyIntolerance", "code": {"text": "Penicillin"}}
    admission: dict[str, Any] = {
        "resourceType": "Encounter",
        "class": {"code": "IMP"},
        "type": [{"text": "Stay"}],
    }
    resolved = {"coding": [{"code": "resolved"}]}
    resources = [
        team | {"status": "active"}, team | {"status": "inactive", "name": "Old team"},
        contact | {"active": True}, contact | {"active": False, "name": [{"text": "Ex"}]},
        allergy, allergy | {"clinicalStatus": resolved, "code": {"text": "Latex"}},
        allergy | {"verificationStatus": "refuted", "code": {"text": "Nuts"}},
        admission | {"status": "finished"},
        admission | {"status": "cancelled", "type": [{"text": "Cancelled stay"}]},
    ]  # fmt: skip
    assert _summary(resources) == {
        "allergies": ["Penicillin"], "admissions": ["Stay"],
        "care-team": ["Older People's Team South"], "contacts": ["Paul Taylor"],
    }  # fmt: skip


def test_an_item_without_a_date_says_so() -> None:
    """Council contacts and allocated workers carry no date: the Date cell was empty,
    neither a date nor a word that the source gave none."""
    worker = {
        "resourceType": "CareTeam", "id": "t1", "status": "active",
        "name": "Older People's Team South",
        "participant": [{"member": {"display": "Jim Lloyd"}, "role": [{"text": "Social Worker"}]}],
        "meta": {"source": f"{COUNCIL}/contacts/14", "lastUpdated": "2026-12-06T04:51:43+00:00"},
    }  # fmt: skip
    carer = {
        "resourceType": "RelatedPerson", "id": "r1", "name": [{"text": "Paul Taylor"}],
        "relationship": [{"text": "Nephew"}],
        "meta": {"source": f"{COUNCIL}/contacts/15", "lastUpdated": "2026-12-06T04:51:43+00:00"},
    }  # fmt: skip
    view: View = compose([worker, carer], POLICY, {}, TODAY)
    html = templates.get_template("record.html").render(
        who=who("clinical"), view=view, nhs_number=NHS, basis="relationship", directives=(),
        transfers=(), org_names={}, notice="n", csrf="x",
    )  # fmt: skip
    assert re.findall(r'<td class="date">([^<]*)</td>', html) == ["undated", "undated"]


def test_an_item_whose_end_date_has_passed_is_not_summarised_as_current() -> None:
    """A source marks an item ended when it next sends it: a DoLS authorised until last
    spring, a placement planned to end last week, still said 'active' and were summarised as
    current until the next extract. An end today, or this year, is still current."""

    def flag(rid: str, end: str) -> dict[str, Any]:
        return _flag(rid, "active", f"Deprivation of Liberty Safeguards to {end}", legal=True) | {
            "period": {"start": "2024-01-01", "end": end}
        }

    view = compose([flag("f1", "2026-03-31"), flag("f2", "2026-12-06"), flag("f3", "2026"),
                    flag("f4", "2026-12-05T23:30:00+00:00")], POLICY, {}, TODAY)  # fmt: skip
    (legal,) = [s for s in view.summary if s.key == "legal"]
    assert sorted(i.label for i in legal.items) == [
        "Deprivation of Liberty Safeguards to 2026",
        "Deprivation of Liberty Safeguards to 2026-12-06",
    ]


def _registration(rid: str, org: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare", "id": rid, "status": "active",
        "type": [{"coding": [{"system": "https://fhir.scr.example/CodeSystem/scr-episode-type",
                              "code": "gp-registration"}]}],
        "managingOrganization": org, "period": {"start": "2001-01-01"}, **more,
    }  # fmt: skip


ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


@pytest.mark.parametrize(
    ("registrations", "named"),
    [
        ([_registration("e1", {"reference": "Organization/o1"})], "Riverside (Y00001)"),
        ([_registration("e1", {"identifier": {"system": ODS, "value": "Y00001"}})],
         "Riverside (Y00001)"),
        ([_registration("e1", {"identifier": {"system": ODS, "value": "Y00009"}})], "Y00009"),
        # the practice left is not theirs; two at once, which is, is not guessed
        ([_registration("e1", {"reference": "Organization/o1"}),
          _registration("e2", {"identifier": {"system": ODS, "value": "Y00002"}},
                        period={"start": "2001-01-01", "end": "2020-01-01"})],
         "Riverside (Y00001)"),
        ([_registration("e1", {"reference": "Organization/o1"}),
          _registration("e2", {"identifier": {"system": ODS, "value": "Y00002"}})], ""),
        ([_registration("e1", {"reference": "Organization/unknown"})], ""),
        ([], ""),
    ],
)  # fmt: skip
def test_the_gp_practice_is_the_one_current_registration_names(
    registrations: list[dict[str, Any]], named: str
) -> None:
    found = registered_practice(registrations, {"Organization/o1": "Y00001"},
                                {"Y00001": "Riverside"}, TODAY.isoformat())  # fmt: skip
    assert found == named


def _contact(name: str, relationship: list[str], phone: str = "") -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson", "name": [{"text": name}],
        "relationship": [{"text": r} for r in relationship],
        "telecom": [{"system": "phone", "value": phone}] if phone else [],
    }  # fmt: skip


def test_a_contact_two_sources_record_is_one_line_on_the_transfer_form() -> None:
    """The council's "Daughter" and the practice's "Daughter; Next-of-Kin" for the same name
    and number were two lines; a namesake with another number stays apart, never merged."""
    assert contact_lines([
        _contact("Ruth Smith", ["Daughter"], "07700 900123"),
        _contact("Ruth Smith", ["daughter", "Next-of-Kin"], "07700 900123"),
        _contact("Ruth Smith", ["Neighbour"], "07700 900999"),
        _contact("Al | Bo", []),
    ]) == [
        "Ruth Smith | Daughter; Next-of-Kin | 07700 900123",
        "Ruth Smith | Neighbour | 07700 900999",
        "Al / Bo",
    ]  # fmt: skip
