"""Every profile × every stored resource type × with/without relationship × every purpose.

The expected table is written from ``access-policy.md`` (the profile table and the purposes of
use), not read from the policy files, so a change to either that breaks the contract fails
here. Types that a profile sees only in part appear once per part (current and past
medications, the three kinds of EpisodeOfCare, ...).
"""

from __future__ import annotations

from typing import Any

import pytest

from consent import Request, decide, visible
from tests.consent.personas import NOW, PERSONAS, POLICY, facts, meta, typical, who

C, S, H, A = "clinical", "social-care", "care-home", "admin"
PROFILES = sorted(PERSONAS)
SCR = "https://fhir.scr.example/CodeSystem/"
SNOMED = "http://snomed.info/sct"


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _act(code: str) -> dict[str, str]:
    return {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}


#: sample name → (a representative resource, the profiles that see it with a relationship)
SAMPLES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "Patient": ({"resourceType": "Patient"}, {C, S, H, A}),
    "Organization": ({"resourceType": "Organization"}, {C, S, H, A}),
    "Practitioner": ({"resourceType": "Practitioner"}, {C, S, H, A}),
    "PractitionerRole": ({"resourceType": "PractitionerRole"}, {C, S, H, A}),
    "RelatedPerson": ({"resourceType": "RelatedPerson"}, {C, S, H, A}),
    "EpisodeOfCare gp-registration": (
        {
            "resourceType": "EpisodeOfCare",
            "type": [_coded(SCR + "scr-episode-type", "gp-registration")],
        },
        {C, S, H, A},
    ),
    "EpisodeOfCare care-home placement": (
        {
            "resourceType": "EpisodeOfCare",
            "type": [_coded(SCR + "scr-episode-type", "care-home-placement")],
        },
        {C, S, H},
    ),
    "EpisodeOfCare care package": ({"resourceType": "EpisodeOfCare"}, {C, S}),
    "Encounter admission": (
        {"resourceType": "Encounter", "status": "finished", "class": _act("IMP")},
        {C, S, H},
    ),
    "Encounter consultation": (
        {"resourceType": "Encounter", "status": "finished", "class": _act("AMB")},
        {C},
    ),
    "Observation": ({"resourceType": "Observation", "status": "final"}, {C}),
    "Observation DNACPR": (
        {"resourceType": "Observation", "code": _coded(SNOMED, "304253006")},
        {C, S, H},
    ),
    "Condition active": (
        {
            "resourceType": "Condition",
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
            ),
        },
        {C, S, H},
    ),
    "Condition resolved": (
        {
            "resourceType": "Condition",
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
            ),
        },
        {C},
    ),
    "AllergyIntolerance": ({"resourceType": "AllergyIntolerance"}, {C, S, H}),
    "MedicationStatement current": (
        {"resourceType": "MedicationStatement", "status": "active"},
        {C, S, H},
    ),
    "MedicationStatement past": ({"resourceType": "MedicationStatement", "status": "stopped"}, {C}),
    "MedicationRequest current": (
        {"resourceType": "MedicationRequest", "status": "active"},
        {C, S, H},
    ),
    "MedicationRequest past": ({"resourceType": "MedicationRequest", "status": "completed"}, {C}),
    "Flag alert": ({"resourceType": "Flag", "status": "active"}, {C, S}),
    "Flag DNACPR": ({"resourceType": "Flag", "code": _coded(SNOMED, "450476008")}, {C, S, H}),
    "Flag legal (DoLS)": (
        {"resourceType": "Flag", "category": [_coded(SNOMED, "303186005")]},
        {C, S},
    ),
    "ServiceRequest council request": (
        {"resourceType": "ServiceRequest", "category": [_coded(SCR + "cld-event-type", "Request")]},
        {C, S},
    ),
    "ServiceRequest referral": ({"resourceType": "ServiceRequest"}, {C}),
    "Task council assessment": (
        {"resourceType": "Task", "code": _coded(SCR + "cld-event-type", "Assessment")},
        {C, S},
    ),
    "Task other": ({"resourceType": "Task"}, {C}),
    "Consent lasting power of attorney": (
        {
            "resourceType": "Consent",
            "scope": _coded("http://terminology.hl7.org/CodeSystem/consentscope", "adr"),
        },
        {C, S, H},
    ),
    "Consent privacy directive": (
        {
            "resourceType": "Consent",
            "scope": _coded(
                "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"
            ),
        },
        set(),
    ),
    "CareTeam": ({"resourceType": "CareTeam", "status": "active"}, {C, S, H}),
    "List": ({"resourceType": "List"}, {C}),
    "Immunization": ({"resourceType": "Immunization"}, {C}),
    "DiagnosticReport": ({"resourceType": "DiagnosticReport"}, {C}),
    "DocumentReference": ({"resourceType": "DocumentReference"}, {C}),
    "Medication": ({"resourceType": "Medication"}, {C, S, H}),
    "Appointment": ({"resourceType": "Appointment", "status": "booked"}, {C, A}),
}
#: purpose → the profiles that may use it for the identifiable record. BTG needs a live grant
#: (none here); HOPERAT and POPHLTH are secondary uses, which never get identifiable data.
PURPOSES: dict[str | None, set[str]] = {
    "TREAT": {C, S, H, A},
    "COC": {C, S, H, A},
    "ETREAT": {C},
    "PATRQT": {C, S, H},
    "BTG": set(),
    "HOPERAT": set(),
    "POPHLTH": set(),
    None: set(),
    "NOT-A-PURPOSE": set(),
}
STORED_TYPES = set(
    [
        "Patient",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "EpisodeOfCare",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "MedicationStatement",
        "MedicationRequest",
        "Flag",
        "ServiceRequest",
        "Task",
        "Consent",
        "CareTeam",
        "List",
        "Immunization",
        "DiagnosticReport",
        "DocumentReference",
        "Medication",
        "Appointment",
    ]
)


def test_the_matrix_covers_every_stored_type() -> None:
    assert {r["resourceType"] for r, _ in SAMPLES.values()} == STORED_TYPES


@pytest.mark.parametrize("purpose", list(PURPOSES), ids=str)
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_by_type_by_relationship_by_purpose(profile: str, purpose: str | None) -> None:
    user = who(profile)
    wrong: list[str] = []
    for name, (resource, seen_by) in SAMPLES.items():
        rt = resource["resourceType"]
        for related in (True, False):
            patient = facts(typical(user)) if related else facts()
            d = decide(user, patient, purpose, Request("search", frozenset({rt})), NOW, POLICY)
            shown = visible(meta(resource), d)
            expected = related and profile in PURPOSES[purpose] and profile in seen_by
            if shown != expected:
                wrong.append(f"{name} related={related}: shown={shown}, contract={expected}")
            if not d.permit and not d.refusals:
                wrong.append(f"{name} related={related}: a denial without a refusal")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("profile", [C, S, H, A])
def test_a_type_outside_the_profile_is_refused_not_emptied(profile: str) -> None:
    """Asking only for a type the profile never sees is refused, naming the profile rule."""
    user = who(profile)
    for rt in sorted(STORED_TYPES):
        if any(r["resourceType"] == rt and profile in by for r, by in SAMPLES.values()):
            continue
        request = Request("search", frozenset({rt}))
        d = decide(user, facts(typical(user)), "TREAT", request, NOW, POLICY)
        assert not d.permit
        assert [r.rule_id for r in d.refusals] == ["profile.types"]


def test_own_organisation_data_follows_the_same_profile() -> None:
    """Even its own organisation's data reaches a receptionist only through the profile."""
    user = who("admin")
    d = decide(user, facts(typical(user)), "TREAT", Request("everything"), NOW, POLICY)
    obs, _ = SAMPLES["Observation"]
    patient, _ = SAMPLES["Patient"]
    assert not visible(meta(obs, user.org), d)
    assert visible(meta(patient, user.org), d)
