"""Named attacks and edge cases on the decision point, each with the rule that stops it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.base import MapContext
from adapters.codes import load_all
from adapters.council import CouncilAdapter
from consent import (
    NOTICE,
    ConsentDirective,
    Decision,
    PatientFacts,
    PersonLabel,
    Refused,
    Relationship,
    Request,
    decide,
    explain,
    hidden_by,
    mask,
    meta_of,
    relationship,
    source_row_shown,
    unmasked,
    visible,
)
from consent import directive as read_directive
from consent.model import ALWAYS
from engine.finish import source_uri
from tests.adapters.test_council import standard as council_rows
from tests.adapters.test_council import write_extract as write_council_extract
from tests.consent.personas import (
    CARE_HOME,
    COUNCIL,
    GP,
    HOSPITAL,
    NOW,
    OTHER_GP,
    POLICY,
    directive,
    facts,
    grant,
    hospital_clinician,
    meta,
    relation,
    typical,
    who,
)

EVERYTHING = Request("everything")
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
BASE = "https://fhir.scr.example/"
OBSERVATION = {"resourceType": "Observation", "status": "final"}
ACTIVE_PROBLEM = {
    "resourceType": "Condition",
    "clinicalStatus": {"coding": [{"code": "active"}]},
}


def refused_by(d: Decision) -> set[str]:
    return {r.rule_id for r in d.refusals}


# -- Caldicott 4: need to know -------------------------------------------------------------


def test_user_from_another_organisation() -> None:
    """A GP at another practice, with no registration there, is refused."""
    user = who("clinical", org=OTHER_GP)
    d = decide(user, facts(relation(GP)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "relationship.legitimate" in refused_by(d)
    assert not visible(meta(OBSERVATION, GP), d)


def test_relationship_that_ended() -> None:
    """Refused in the very words used when there never was one: the refusal is shown to the
    user, and "ended" would tell them the number belongs to a former patient."""
    user = who("clinical")
    ended = relation(GP, days_ago=900, ended_days_ago=1)
    d = decide(user, facts(ended), "TREAT", EVERYTHING, NOW, POLICY)
    never = decide(user, facts(), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "relationship.legitimate" in refused_by(d) and refused_by(d) == refused_by(never)
    assert [r.text for r in d.refusals] == [r.text for r in never.refusals]


def test_relationship_not_yet_started() -> None:
    user = who("clinical")
    d = decide(user, facts(relation(GP, days_ago=-5)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit


def test_care_home_after_the_placement_ended() -> None:
    user = who("care-home")
    current = facts(relation(CARE_HOME, "placement"))
    assert decide(user, current, "TREAT", EVERYTHING, NOW, POLICY).permit
    moved_out = facts(relation(CARE_HOME, "placement", days_ago=400, ended_days_ago=3))
    d = decide(user, moved_out, "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "relationship.legitimate" in refused_by(d)


def test_a_planned_or_waitlisted_placement_is_no_relationship_yet() -> None:
    """A care home sees only its current residents: a placement planned or on a waiting list
    (not moved in, maybe never) must not let it in to the record, nor a planned encounter
    the hospital."""
    ods = "https://fhir.nhs.uk/Id/ods-organization-code"
    episode_type = "https://fhir.scr.example/CodeSystem/scr-episode-type"
    for status in ("planned", "waitlist", "active"):
        placement = relationship({
            "resourceType": "EpisodeOfCare", "status": status,
            "type": [{"coding": [{"system": episode_type, "code": "care-home-placement"}]}],
            "managingOrganization": {"identifier": {"system": ods, "value": CARE_HOME}},
        })  # fmt: skip
        ties = (placement,) if placement else ()
        d = decide(who("care-home"), facts(*ties), "TREAT", EVERYTHING, NOW, POLICY)
        assert d.permit is (status == "active"), status
    for status, found in (("planned", False), ("in-progress", True)):
        encounter = {
            "resourceType": "Encounter",
            "status": status,
            "period": {"start": (NOW - timedelta(days=2)).date().isoformat()},
            "serviceProvider": {"identifier": {"system": ods, "value": HOSPITAL}},
        }
        assert (relationship(encounter) is not None) is found, status  # fmt: skip


def test_hospital_encounter_counts_for_ninety_days_after_discharge() -> None:
    user = hospital_clinician()
    recent = facts(relation(HOSPITAL, "hospital-encounter", days_ago=100, ended_days_ago=89))
    old = facts(relation(HOSPITAL, "hospital-encounter", days_ago=100, ended_days_ago=91))
    assert decide(user, recent, "TREAT", EVERYTHING, NOW, POLICY).permit
    assert not decide(user, old, "TREAT", EVERYTHING, NOW, POLICY).permit


def test_a_window_needs_a_start_and_an_end_in_reach() -> None:
    """An encounter with only an end, keyed ten years ahead, held for ten years; one started
    two years ago whose end was keyed as 2099 held until 2099 and 90 days. A window needs a
    start, and counts from an end no further ahead than the window (a long stay's planned
    discharge in three days holds now, as it will after), else from the start."""
    user = hospital_clinician()
    no_start = Relationship(org=HOSPITAL, kind="hospital-encounter", start=None,
                            end=NOW + timedelta(days=3650))  # fmt: skip
    far_end = Relationship(
        org=HOSPITAL,
        kind="hospital-encounter",
        start=NOW - timedelta(days=730),
        end=datetime(2099, 1, 1, tzinfo=UTC),
    )
    expected = Relationship(
        org=HOSPITAL,
        kind="hospital-encounter",
        start=NOW - timedelta(days=3),
        end=NOW + timedelta(days=4),
    )
    long_stay = replace(expected, start=NOW - timedelta(days=100), end=NOW + timedelta(days=3))
    for r, held in ((no_start, False), (far_end, False), (expected, True), (long_stay, True)):
        assert decide(user, facts(r), "TREAT", EVERYTHING, NOW, POLICY).permit is held, r


def test_a_relationship_kind_counts_only_for_its_organisation_kind() -> None:
    """A GP practice cannot lean on a 'hospital encounter' (a GP consultation) of its own."""
    user = who("clinical")
    d = decide(user, facts(relation(GP, "hospital-encounter")), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit


def test_self_claim_lets_a_clinician_in_with_a_reason() -> None:
    user = hospital_clinician()
    claim = Relationship(
        org=HOSPITAL,
        kind="self-claim",
        start=NOW - timedelta(hours=1),
        reason="Seen in outpatients today, referral letter pending",
        claimed_by=user.user_id,
    )
    d = decide(user, facts(claim), "TREAT", EVERYTHING, NOW, POLICY)
    assert d.permit and d.basis == "self-claim"
    short = replace(claim, reason="because")
    assert not decide(user, facts(short), "TREAT", EVERYTHING, NOW, POLICY).permit
    colleague = replace(user, user_id="user-2")
    assert not decide(colleague, facts(claim), "TREAT", EVERYTHING, NOW, POLICY).permit
    stale = replace(claim, start=NOW - timedelta(days=8))
    assert not decide(user, facts(stale), "TREAT", EVERYTHING, NOW, POLICY).permit


def test_self_claim_is_refused_to_other_profiles() -> None:
    user = who("social-care", org=COUNCIL)
    claim = Relationship(
        org=COUNCIL,
        kind="self-claim",
        start=NOW - timedelta(hours=1),
        reason="Safeguarding referral received by phone",
        claimed_by=user.user_id,
    )
    d = decide(user, facts(claim), "COC", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "relationship.self-claim" in refused_by(d)


# -- Caldicott 3: minimum necessary -------------------------------------------------------


def test_receptionist_asking_for_observations() -> None:
    user = who("admin")
    patient = facts(typical(user))
    d = decide(user, patient, "TREAT", Request("search", frozenset({"Observation"})), NOW, POLICY)
    assert not d.permit
    assert refused_by(d) == {"profile.types"}
    everything = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert everything.permit
    assert not visible(meta(OBSERVATION, GP), everything)
    assert "Observation" not in everything.obligations.types


def test_receptionist_sees_when_and_with_whom_an_appointment_is_not_why() -> None:
    """A receptionist's profile has no clinical content: an appointment's reason, description
    and comment (a depression review, a sertraline dose), or the service it is with (sexual
    health, termination of pregnancy: kept until now), must not reach them, nor the drugs a
    person takes (Medication), while a clinician sees the whole appointment."""
    user = who("admin")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    appointment = {
        "resourceType": "Appointment", "id": "a1", "status": "booked",
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007",
                                    "display": "Depressive disorder"}]}],
        "description": "Depression review", "comment": "Discuss sertraline dose",
        "serviceCategory": [{"text": "Sexual health"}],
        "serviceType": [{"text": "Termination of pregnancy service"}],
        "start": "2026-12-01T09:00:00Z", "participant": [{"status": "accepted"}],
    }  # fmt: skip
    assert visible(meta(appointment, GP), d)
    assert mask(appointment, d, POLICY, GP) == {
        "resourceType": "Appointment", "id": "a1", "status": "booked",
        "start": "2026-12-01T09:00:00Z", "participant": [{"status": "accepted"}],
    }  # fmt: skip
    assert not visible(meta({"resourceType": "Medication"}, GP), d)
    gp = who("clinical")
    d_gp = decide(gp, facts(typical(gp)), "TREAT", EVERYTHING, NOW, POLICY)
    assert mask(appointment, d_gp, POLICY, GP) == appointment


def test_social_worker_gets_admission_dates_and_reasons_not_diagnoses() -> None:
    user = who("social-care")
    d = decide(user, facts(typical(user)), "COC", EVERYTHING, NOW, POLICY)
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "period": {"start": "2026-10-01", "end": "2026-10-05"},
        "reasonCode": [{"text": "Fall at home"}],
        "diagnosis": [{"condition": {"reference": "Condition/c1"}}],
        "participant": [{"individual": {"reference": "Practitioner/p1"}}],
        "text": {"status": "generated", "div": "<div>Full discharge narrative</div>"},
    }
    assert visible(meta(encounter, HOSPITAL), d)
    assert set(mask(encounter, d, POLICY, GP)) == {
        "resourceType", "id", "status", "class", "period", "reasonCode"
    }  # fmt: skip


@pytest.mark.parametrize("profile", ["social-care", "care-home"])
def test_social_care_and_care_homes_see_admissions_not_gp_consultations(profile: str) -> None:
    """Minimum necessary (Caldicott 3): what a GP was consulted about is not theirs to see."""
    user = who(profile)
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    consultation = {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"text": "Main Surgery"}], "period": {"start": "2026-03-01T10:10:00"},
    }  # fmt: skip
    emergency = consultation | {"class": consultation["class"] | {"code": "EMER"}}
    older = consultation | {"class": {"system": "http://hl7.org/fhir/encounter-class",
                                      "code": "inpatient"}}  # fmt: skip
    assert d.permit
    assert not visible(meta(consultation, GP), d)
    assert visible(meta(emergency, HOSPITAL), d)
    assert visible(meta(older, HOSPITAL), d), "an STU3 encounter-class admission too"
    gp = decide(who("clinical"), facts(typical(who("clinical"))), "TREAT", EVERYTHING, NOW, POLICY)
    assert visible(meta(consultation, GP), gp)


def test_ig_officer_sees_no_record() -> None:
    user = who("ig-officer")
    d = decide(user, facts(relation(user.org)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert d.obligations.types == frozenset()


def test_analyst_never_gets_identifiable_data() -> None:
    user = who("analyst")
    for purpose in ("POPHLTH", "HOPERAT", "TREAT"):
        d = decide(user, facts(relation(user.org)), purpose, EVERYTHING, NOW, POLICY)
        assert not d.permit
        assert refused_by(d) & {"purpose.direct-care", "profile.identifiable"}


def test_claimed_profile_must_match_the_role_in_force() -> None:
    """A receptionist's token that claims the clinical profile gains nothing."""
    user = replace(who("admin"), profile="clinical")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "profile.known" in refused_by(d)


def test_unknown_role_is_refused() -> None:
    user = who("clinical", role_code="S9999:G9999:R9999")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "profile.known" in refused_by(d)


# -- Caldicott 1 and 5: purpose and training -----------------------------------------------


@pytest.mark.parametrize("purpose", [None, "", "treat", "NOT-A-PURPOSE"])
def test_purpose_missing_or_unknown(purpose: str | None) -> None:
    user = who("clinical")
    d = decide(user, facts(typical(user)), purpose, EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "purpose.known" in refused_by(d)


def test_btg_purpose_without_a_grant_is_refused() -> None:
    user = who("clinical")
    d = decide(user, facts(typical(user)), "BTG", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert "purpose.grant" in refused_by(d)


def test_ig_training_older_than_12_months() -> None:
    user = who("clinical", trained=date(2025, 11, 24))
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert refused_by(d) == {"training.current"}
    on_the_day = who("clinical", trained=date(2025, 11, 25))
    assert decide(on_the_day, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY).permit


def test_ig_training_expiry_is_judged_on_the_uk_date() -> None:
    """At 00:30 BST on 11 July (23:30 UTC on the 10th) training of 10 July last year has run
    out in the UK: judged on the UTC date, the user would be let in for another hour."""
    late = datetime(2026, 7, 10, 23, 30, tzinfo=UTC)
    user = who("clinical", trained=date(2025, 7, 10))
    d = decide(user, facts(relation(GP, days_ago=3000)), "TREAT", EVERYTHING, late, POLICY)
    assert refused_by(d) == {"training.current"}
    earlier = decide(
        user, facts(relation(GP, days_ago=3000)), "TREAT", EVERYTHING,
        late - timedelta(hours=1), POLICY,
    )  # fmt: skip
    assert earlier.permit


@pytest.mark.parametrize("trained", [None, date(2027, 1, 1)], ids=["missing", "future"])
def test_ig_training_missing_or_in_the_future(trained: date | None) -> None:
    user = who("clinical", trained=trained)
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert refused_by(d) == {"training.current"}


def test_stale_training_refuses_break_glass_too() -> None:
    user = hospital_clinician(trained=date(2024, 1, 1))
    d = decide(user, facts(grants=(grant(user),)), "BTG", EVERYTHING, NOW, POLICY)
    assert not d.permit


# -- Caldicott 6 and 7: consent, the law, and emergency access -------------------------------


def test_dissent_without_break_glass() -> None:
    user = hospital_clinician()
    patient = facts(typical(user), directives=(directive("dissent"),))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert d.permit
    assert not visible(meta(OBSERVATION, GP), d)
    assert visible(meta(OBSERVATION, HOSPITAL), d)
    notes = explain(d)["directives"]
    assert notes == [
        {
            "kind": "dissent",
            "author": "Dr Synthetic, Ambridge Surgery",
            "recorded": (NOW - timedelta(days=30)).isoformat(),
            "category": None,
        }
    ]


def test_dissent_with_break_glass() -> None:
    user = hospital_clinician()
    patient = facts(directives=(directive("dissent"),), grants=(grant(user),))
    d = decide(user, patient, "BTG", EVERYTHING, NOW, POLICY)
    assert d.permit and d.basis == "break-glass"
    assert visible(meta(OBSERVATION, GP), d)
    assert "break-glass.override" in {r.rule_id for r in d.reasons}
    assert explain(d)["directives"][0]["kind"] == "dissent"


def test_break_glass_never_opens_source_confidential_or_restricted() -> None:
    user = hospital_clinician()
    d = decide(user, facts(grants=(grant(user),)), "ETREAT", EVERYTHING, NOW, POLICY)
    assert d.permit
    for label in ("source-confidential", "NOPAT", "restricted-person", "sensitive-sti"):
        assert not visible(meta(OBSERVATION, GP, label), d), label
    for label in ("source-confidential", "NOPAT", "restricted-person"):
        assert visible(meta(OBSERVATION, HOSPITAL, label), d), label
    assert not visible(meta(OBSERVATION, HOSPITAL, "sensitive-sti"), d)


def test_expired_grant_permits_nothing() -> None:
    user = hospital_clinician()
    expired = grant(user, minutes_left=0)
    d = decide(user, facts(grants=(expired,)), "BTG", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert not visible(meta(OBSERVATION, GP), d)


@pytest.mark.parametrize(
    ("code", "text"),
    [("9", "Unconscious in A&E, no history"), ("5", "urgent"), ("5", "          x")],
    ids=["unknown-code", "short-text", "blank-text"],
)
def test_incomplete_grant_permits_nothing(code: str, text: str) -> None:
    user = hospital_clinician()
    bad = grant(user, code=code, text=text)
    assert not decide(user, facts(grants=(bad,)), "BTG", EVERYTHING, NOW, POLICY).permit


def test_grant_found_inappropriate_stops_at_once() -> None:
    user = hospital_clinician()
    reviewed = replace(grant(user), review="inappropriate")
    assert not decide(user, facts(grants=(reviewed,)), "BTG", EVERYTHING, NOW, POLICY).permit


def test_grant_belongs_to_one_user_one_organisation_and_one_person() -> None:
    """The same clinician signed in at another organisation declared no emergency there."""
    user = hospital_clinician()
    other_user = replace(grant(user), user_id="someone-else")
    other_org = replace(grant(user), org=OTHER_GP)
    other_person = replace(grant(user), patient="person-2")
    for g in (other_user, other_org, other_person):
        assert not decide(user, facts(grants=(g,)), "BTG", EVERYTHING, NOW, POLICY).permit


def test_break_glass_is_for_clinical_profiles_only() -> None:
    user = who("care-home")
    d = decide(user, facts(grants=(grant(user),)), "BTG", EVERYTHING, NOW, POLICY)
    assert not d.permit
    assert refused_by(d) == {"purpose.profile"}  # a care home may not ask under BTG at all


def test_a_gate_refusal_says_the_same_whether_or_not_the_person_is_known() -> None:
    """Stale training refuses before any relationship is looked at: the explanation of a known
    person (registered here) and of one nobody knows are the same, and name no relationship."""
    user = who("clinical", trained=NOW.date() - timedelta(days=800))
    known = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    unknown = decide(user, PatientFacts(""), "TREAT", EVERYTHING, NOW, POLICY)
    assert not known.permit and not unknown.permit
    assert [(r.rule_id, r.text) for r in known.reasons] == [
        (r.rule_id, r.text) for r in unknown.reasons
    ]
    assert not any(r.rule_id.startswith("relationship") for r in known.reasons)


def test_grant_is_not_used_under_plain_treatment() -> None:
    user = hospital_clinician()
    d = decide(user, facts(grants=(grant(user),)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit


def test_sensitive_code_under_non_sensitive_parent() -> None:
    """An Encounter labelled sensitive-sti (its reason was an STI code) is withheld."""
    user = hospital_clinician()
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    encounter = {"resourceType": "Encounter", "status": "finished"}
    assert visible(meta(encounter, GP), d)
    assert not visible(meta(encounter, GP, "sensitive-sti"), d)


def test_label_in_the_body_counts_even_if_the_column_missed_it() -> None:
    user = hospital_clinician()
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    label = {
        "system": "https://fhir.scr.example/CodeSystem/scr-security-label",
        "code": "sensitive-sti",
    }
    body = {"resourceType": "Encounter", "meta": {"security": [label]}}
    assert not visible(meta_of(body, GP, "", POLICY), d)


def test_consent_opens_its_category_for_its_organisation_only() -> None:
    user = hospital_clinician()
    consent = directive("consent-category", org=HOSPITAL, category="sti")
    d = decide(user, facts(typical(user), directives=(consent,)), "TREAT", EVERYTHING, NOW, POLICY)
    assert visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)
    elsewhere = who("clinical", org=OTHER_GP)
    patient = facts(typical(elsewhere), directives=(consent,))
    d2 = decide(elsewhere, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d2)


def test_the_recording_practice_sees_its_restricted_item_only_under_a_consent() -> None:
    """Source-confidential stays with its source; a legally restricted category leaves no one,
    the practice that recorded it too, unless a consent names the category and that practice."""
    gp = who("clinical", org=GP)
    d = decide(gp, facts(typical(gp)), "TREAT", EVERYTHING, NOW, POLICY)
    assert visible(meta(ACTIVE_PROBLEM, GP, "source-confidential"), d)
    assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)
    assert hidden_by(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d) == "labels.excluded"
    consent = directive("consent-category", org=GP, category="sti")
    opened = decide(gp, facts(typical(gp), directives=(consent,)), "TREAT", EVERYTHING, NOW, POLICY)
    assert visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), opened)


def test_consent_for_one_category_not_opening_another() -> None:
    user = hospital_clinician()
    consent = directive("consent-category", org=HOSPITAL, category="sti")
    d = decide(user, facts(typical(user), directives=(consent,)), "TREAT", EVERYTHING, NOW, POLICY)
    assert visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)
    for other in ("sensitive-fertility", "sensitive-gender", "sensitive-termination"):
        assert not visible(meta(ACTIVE_PROBLEM, GP, other), d), other
        assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti", other), d), other


def test_consent_does_not_open_a_source_confidential_item() -> None:
    user = hospital_clinician()
    consent = directive("consent-category", org=HOSPITAL, category="sti")
    d = decide(user, facts(typical(user), directives=(consent,)), "TREAT", EVERYTHING, NOW, POLICY)
    assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti", "source-confidential"), d)


def test_latest_active_directive_wins() -> None:
    user = hospital_clinician()
    consent = directive("consent-category", org=HOSPITAL, category="sti", days_ago=20)
    later_restriction = directive("restrict-category", category="sti", days_ago=10)
    earlier_restriction = directive("restrict-category", category="sti", days_ago=40)
    sti = meta(ACTIVE_PROBLEM, GP, "sensitive-sti")

    def shown(*ds: ConsentDirective) -> bool:
        patient = facts(typical(user), directives=ds)
        return visible(sti, decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY))

    assert shown(consent, earlier_restriction)
    assert not shown(consent, later_restriction)
    ended = replace(later_restriction, end=NOW - timedelta(days=1))
    assert shown(consent, ended)


def test_an_undated_restriction_outweighs_any_consent() -> None:
    """When the source gave no date, it cannot be known to be older than the consent: the
    objection holds."""
    user = hospital_clinician()
    consent = directive("consent-category", org=HOSPITAL, category="sti", days_ago=1)
    undated = replace(directive("restrict-category", category="sti"), recorded=None, start=ALWAYS)
    patient = facts(typical(user), directives=(consent, undated))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)
    dissent = replace(directive("dissent"), recorded=None, start=ALWAYS)
    patient = facts(typical(user), directives=(directive("dissent", days_ago=1), dissent))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert d.directives[0].recorded is None  # the latest word comes first


def _privacy(when: str, provision: dict[str, Any]) -> ConsentDirective:
    """A patient-privacy Consent as a source sends it, read as the store reads it."""
    body = {
        "resourceType": "Consent", "status": "active", "dateTime": when,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "provision": provision, "performer": [{"display": "Dr Synthetic"}],
    }  # fmt: skip
    found = read_directive(body, POLICY.sensitive, POLICY.sections)
    assert found is not None
    return found


STI = [
    {"system": "https://fhir.scr.example/CodeSystem/scr-security-label", "code": "sensitive-sti"}
]
TO_HOSPITAL = [{"reference": {"identifier": {"system": ODS, "value": HOSPITAL}}}]


def _sti_shown(*directives: ConsentDirective) -> bool:
    user = hospital_clinician()
    d = decide(user, facts(typical(user), directives=directives), "TREAT", EVERYTHING, NOW, POLICY)
    return d.permit and visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)


def test_an_objection_dated_to_the_day_outweighs_a_consent_timed_that_day() -> None:
    """An objection given as a date cannot be known to be older than a consent timed 15:00
    that day: read as midnight, it lost, and the hospital got the STI items it objected to."""
    consent = {"type": "permit", "securityLabel": STI, "actor": TO_HOSPITAL}
    objection = {"type": "deny", "securityLabel": STI}
    for day in ("2026-11-20", "2026-11"):
        assert not _sti_shown(_privacy(day, objection), _privacy("2026-11-20T15:00:00Z", consent))
        assert not _sti_shown(_privacy("2026-11-20T15:00:00Z", objection), _privacy(day, consent))
    assert _sti_shown(_privacy("2026-11-20", objection), _privacy("2026-11-21T09:00:00Z", consent))
    timed = _privacy("2026-11-20T14:00:00Z", objection)
    assert _sti_shown(timed, _privacy("2026-11-20T15:00:00Z", consent))


def test_a_later_consent_to_share_lifts_an_earlier_dissent() -> None:
    """The latest active directive wins: a person who dissented and later consented to share
    their record (a permit naming nothing) must not stay hidden from those caring for them,
    though the consent opens no legally restricted category."""
    dissent = _privacy("2025-01-10", {"type": "deny"})
    share = _privacy("2026-11-20", {"type": "permit"})
    assert share.kind == "consent-share"
    user = hospital_clinician()

    def decided(*directives: ConsentDirective) -> Decision:
        patient = facts(typical(user), directives=directives)
        return decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)

    d = decided(dissent, share)
    assert d.permit and not d.obligations.own_org_only and visible(meta(OBSERVATION, GP), d)
    assert not visible(meta(ACTIVE_PROBLEM, GP, "sensitive-sti"), d)
    assert [n["kind"] for n in explain(d)["directives"]] == ["consent-share"]
    assert decided(share, _privacy("2026-11-20", {"type": "deny"})).obligations.own_org_only
    assert decided(share, _privacy("2026-11-22", {"type": "deny"})).obligations.own_org_only


def test_a_consent_recorded_in_the_future_does_not_outrank_later_objections() -> None:
    """A consent whose date was keyed as 2062 for 2026 would outweigh every objection made
    before 2062; an objection dated in the future still counts, as failing safe."""
    consent = {"type": "permit", "securityLabel": STI, "actor": TO_HOSPITAL,
               "period": {"start": "2026-01-05"}}  # fmt: skip
    objection = {"type": "deny", "securityLabel": STI}
    assert _sti_shown(_privacy("2026-01-05", consent))
    assert not _sti_shown(_privacy("2062-01-05", consent))
    assert not _sti_shown(_privacy("2062-01-05", consent), _privacy("2026-11-18", objection))
    assert not _sti_shown(_privacy("2026-01-05", consent), _privacy("2062-01-05", objection))


def test_restriction_of_an_organisation() -> None:
    user = hospital_clinician()
    patient = facts(typical(user), directives=(directive("restrict-org", org=HOSPITAL),))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert not visible(meta(OBSERVATION, GP), d)
    gp = who("clinical", org=OTHER_GP)
    d_gp = decide(
        gp, replace(patient, relationships=(typical(gp),)), "TREAT", EVERYTHING, NOW, POLICY
    )
    assert visible(meta(OBSERVATION, GP), d_gp)


def test_restriction_of_a_section() -> None:
    user = hospital_clinician()
    restriction = directive("restrict-category", category="problems-active")
    patient = facts(typical(user), directives=(restriction,))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert not visible(meta(ACTIVE_PROBLEM, GP), d)
    assert visible(meta(ACTIVE_PROBLEM, HOSPITAL), d)
    assert visible(meta(OBSERVATION, GP), d)
    assert explain(d)["own_organisation_only"] == ["problems-active", "problems-past", "topics"]


def test_a_restricted_problem_stays_restricted_once_resolved() -> None:
    """A restriction of active problems let the same problem go to every other organisation
    once resolved, in remission or sent with no status: it was then a past problem. The
    person restricted the problem, not its status; a restriction of the past does not hold
    back what is current."""
    user = hospital_clinician()
    for restricted, status, shown in (
        ("problems-active", "resolved", False), ("problems-active", "remission", False),
        ("problems-past", "active", True),
    ):  # fmt: skip
        restriction = directive("restrict-category", category=restricted)
        d = decide(user, facts(typical(user), directives=(restriction,)), "TREAT", EVERYTHING,
                   NOW, POLICY)  # fmt: skip
        problem = {"resourceType": "Condition", "code": {"text": "Depression"},
                   "clinicalStatus": {"coding": [{"code": status}]}}  # fmt: skip
        assert visible(meta(problem, GP), d) is shown, (restricted, status)


def test_a_restriction_of_encounters_made_before_admissions_were_split_covers_both() -> None:
    user = hospital_clinician()
    restriction = directive("restrict-category", category="encounters")
    d = decide(user, facts(typical(user), directives=(restriction,)), "TREAT", EVERYTHING, NOW,
               POLICY)  # fmt: skip
    admission = {"resourceType": "Encounter", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "IMP"}}  # fmt: skip
    assert d.permit and not visible(meta(admission, GP), d)
    assert visible(meta(admission, HOSPITAL), d)


def test_restricted_person_contact_details_withheld_from_others() -> None:
    user = hospital_clinician()
    patient = facts(typical(user), labels=frozenset({PersonLabel("restricted-person", GP)}))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
    body = {
        "resourceType": "Patient",
        "id": "p",
        "name": [{"family": "Synthetic"}],
        "address": [{"postalCode": "ZZ99 3VZ"}],
        "telecom": [{"value": "0"}],
        "text": {"status": "generated", "div": "<div>Lives at ZZ99 3VZ</div>"},
    }
    assert set(mask(body, d, POLICY, GP)) == {"resourceType", "id", "name"}, (
        "the narrative may say where"
    )
    admission = {
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "contained": [{"resourceType": "Location", "id": "home", "name": "Rose Court",
                       "address": {"postalCode": "ZZ99 3VZ"}}],
        "hospitalization": {"origin": {"reference": "#home"},
                            "destination": {"display": "Rose Court, ZZ99 3VZ"}},
        "location": [{"location": {"display": "Rose Court"}}],
    }  # fmt: skip
    assert "Rose Court" not in orjson.dumps(mask(admission, d, POLICY, GP)).decode(), (
        "an admission from, or a discharge to, the place where they live names it"
    )
    relative = {"resourceType": "RelatedPerson", "id": "r", "name": [{"family": "Archer"}],
                "relationship": [{"text": "Daughter"}], "telecom": [{"value": "0"}]}  # fmt: skip
    assert set(mask(relative, d, POLICY, GP)) == {"resourceType", "id", "relationship"}, (
        "a named relative can lead to the person"
    )
    placement = {
        "resourceType": "EpisodeOfCare", "id": "e", "status": "active",
        "managingOrganization": {"identifier": {"value": "VM001"}, "display": "Rose Court"},
    }  # fmt: skip
    assert "managingOrganization" not in mask(placement, d, POLICY, GP), (
        "the care home is where they live"
    )
    assert "person.restricted" not in {r["rule"] for r in explain(d)["reasons"]}
    at_gp = who("clinical")
    at_gp_patient = replace(patient, relationships=(typical(at_gp),))
    d_gp = decide(at_gp, at_gp_patient, "TREAT", EVERYTHING, NOW, POLICY)
    assert mask(body, d_gp, POLICY, GP) == body


def test_a_masked_resource_leaves_without_its_version() -> None:
    """A version made by a change to nothing but what the mask removes (a restricted
    person's address) must not show through ``meta``, or the change and its time leak."""
    user = hospital_clinician()
    patient = facts(typical(user), labels=frozenset({PersonLabel("restricted-person", GP)}))
    d = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)

    def stored(version: str, postcode: str) -> dict[str, Any]:
        return {
            "resourceType": "Patient", "id": "p", "name": [{"family": "Synthetic"}],
            "meta": {"versionId": version, "lastUpdated": f"2026-0{version}-01T00:00:00+00:00",
                     "source": "https://fhir.scr.example/source/gpconnect/Y90011/Patient/p"},
            "address": [{"postalCode": postcode}],
        }  # fmt: skip

    moved = mask(stored("2", "ZZ99 4VZ"), d, POLICY, GP)
    assert moved == mask(stored("1", "ZZ99 3VZ"), d, POLICY, GP)
    assert "meta" not in moved  # neither the version nor, for a restricted person, the source
    bare = {"resourceType": "Patient", "id": "p", "meta": {"versionId": "3"}}
    assert mask(bare, d, POLICY, GP) == {"resourceType": "Patient", "id": "p"}, "no empty meta"
    at_gp = who("clinical")
    d_gp = decide(at_gp, replace(patient, relationships=(typical(at_gp),)), "TREAT", EVERYTHING,
                  NOW, POLICY)  # fmt: skip
    assert mask(stored("2", "ZZ99 4VZ"), d_gp, POLICY, GP) == stored("2", "ZZ99 4VZ"), (
        "nothing masked"
    )


def test_a_restricted_persons_placement_names_the_care_home_nowhere(tmp_path: Path) -> None:
    """The mask that takes away ``managingOrganization`` must leave the care home where a
    restricted person lives nowhere else: not in the source row (identifier, ``meta.source``),
    and not in the row id the resource's id is made from (person|care home|start was, and
    hashing each care-home code against the id found the home)."""
    folder = write_council_extract(tmp_path / "council", council_rows())
    adapter, ctx = CouncilAdapter(), MapContext(codes=load_all())
    rec = next(r for r in adapter.read(str(folder)) if r.ref.table == "placements")
    placement = adapter.map(rec, ctx).resources[0].resource | {
        "meta": {"source": source_uri(rec.ref, BASE)}
    }
    care_home = placement["managingOrganization"]["identifier"]["value"]
    assert care_home not in rec.ref.key and placement["id"] == rec.ref.resource_id("EpisodeOfCare")
    user = hospital_clinician()
    person = facts(typical(user), labels=frozenset({PersonLabel("restricted-person", GP)}))
    d = decide(user, person, "TREAT", EVERYTHING, NOW, POLICY)
    assert d.permit and visible(meta(placement, COUNCIL), d)
    assert care_home not in orjson.dumps(mask(placement, d, POLICY, GP)).decode()
    assert not source_row_shown("EpisodeOfCare", d) and source_row_shown("Observation", d)
    unrestricted = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    assert mask(placement, unrestricted, POLICY, GP) == placement


def test_contained_resources_lose_their_narrative_and_unseen_types() -> None:
    """A profile that loses the narrative loses it in contained resources too (a care plan's
    contained Condition narrating an HIV diagnosis), and a contained resource of a type the
    profile may not see at all is left out."""
    user = who("social-care")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    narrative = {"status": "generated", "div": "<div>HIV clinic follow-up</div>"}
    plan = {
        "resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
        "text": narrative,
        "contained": [{"resourceType": "Condition", "id": "c1", "text": narrative,
                       "clinicalStatus": {"coding": [{"code": "active"}]}},
                      {"resourceType": "Immunization", "id": "i1", "status": "completed"}],
    }  # fmt: skip
    assert visible(meta(plan, GP), d)
    shown = mask(plan, d, POLICY, GP)
    assert "HIV" not in orjson.dumps(shown).decode()
    assert shown["contained"] == [
        {
            "resourceType": "Condition",
            "id": "c1",
            "clinicalStatus": {"coding": [{"code": "active"}]},
        }
    ]


# -- what a refusal and an explanation may carry -------------------------------------------


def test_a_refused_decision_yields_no_content() -> None:
    user = who("clinical", org=OTHER_GP)
    d = decide(user, facts(), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit and not d.obligations.allowed and not d.obligations.fields
    with pytest.raises(Refused):
        mask({"resourceType": "Patient", "id": "p"}, d, POLICY, GP)
    assert explain(d)["sections"] == []


def test_mask_refuses_a_type_the_decision_does_not_allow() -> None:
    user = who("admin")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    with pytest.raises(Refused):
        mask(OBSERVATION, d, POLICY, GP)


def test_explanation_names_no_hidden_category_and_a_constant_notice() -> None:
    """The decision never sees the record, so its explanation cannot describe it."""
    user = hospital_clinician()
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    shown = explain(d)
    assert shown["notice"] == NOTICE == "Some information may be withheld"
    text = repr(shown)
    for word in ("sti", "fertility", "termination", "gender", "confidential item"):
        assert f" {word}" not in text.replace("sensitive-", "")
    refused = explain(decide(user, facts(), "TREAT", EVERYTHING, NOW, POLICY))
    assert refused["notice"] == NOTICE


def test_explanation_never_names_a_category_a_consent_opens() -> None:
    """A consent to share STI information with the practice would tell its receptionist, on
    ``/access/explain``, that the person has STI information; the audit keeps the reason."""
    for user in (who("admin"), who("clinical")):
        consented = directive("consent-category", org=user.org, category="sti")
        d = decide(user, facts(typical(user), directives=(consented,)), "TREAT", EVERYTHING, NOW,
                   POLICY)  # fmt: skip
        assert d.permit and "labels.sensitive.consented" in {r.rule_id for r in d.reasons}
        text = orjson.dumps(explain(d)).decode()
        assert " sti " not in text and "consented to share" not in text, text


def test_decision_records_purpose_basis_and_policy_for_the_audit() -> None:
    user = who("clinical")
    d = decide(user, facts(typical(user)), "COC", EVERYTHING, NOW, POLICY)
    assert (d.purpose, d.profile, d.basis) == ("COC", "clinical", "relationship")
    assert d.policy_version == POLICY.version
    assert {r.principle for r in d.reasons} >= {1, 3, 4, 5, 6}


def test_a_referral_gives_the_hospital_it_names_a_window_and_the_council_a_case() -> None:
    """'The hospital has an encounter, referral or red-bag transfer' (access-policy.md)."""

    def referral(org: str, days_ago: int, dated: str = "occurrencePeriod") -> Relationship:
        day = (NOW - timedelta(days=days_ago)).date().isoformat()
        found = relationship({
            "resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            dated: {"start": day} if dated == "occurrencePeriod" else day,
            "performer": [{"identifier": {"value": org}}],
        })  # fmt: skip
        assert found is not None
        return found

    hospital = hospital_clinician()
    for days, allowed in ((5, True), (200, False)):
        for dated in ("occurrencePeriod", "authoredOn"):  # GP Connect sends authoredOn only
            d = decide(hospital, facts(referral(HOSPITAL, days, dated)), "TREAT", EVERYTHING,
                       NOW, POLICY)  # fmt: skip
            assert d.permit is allowed, (days, dated)
    social = who("social-care")
    d = decide(social, facts(referral(COUNCIL, 200)), "TREAT", EVERYTHING, NOW, POLICY)
    assert d.permit, "an open referral to the council is an open case"
    lab_test = relationship({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "authoredOn": (NOW - timedelta(days=5)).date().isoformat(),
        "performer": [{"identifier": {"value": HOSPITAL}}],
    })  # fmt: skip
    assert lab_test is not None
    d = decide(hospital, facts(lab_test), "TREAT", EVERYTHING, NOW, POLICY)
    assert not d.permit, "a test the GP asked the hospital's lab for is no referral"
    draft = relationship({
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "performer": [{"identifier": {"value": COUNCIL}}],
    })  # fmt: skip
    assert draft is None, "a referral not yet sent gives no one a way in"


def test_a_restricted_persons_contact_is_masked_inside_a_type_with_no_rule() -> None:
    """A contact contained in a care plan (a type the restricted-person rule does not name)
    is a contact: its address and telephone, where the person can be found, are removed."""
    user = hospital_clinician()
    restricted = facts(typical(user), labels=frozenset({PersonLabel("restricted-person", GP)}))
    d = decide(user, restricted, "TREAT", EVERYTHING, NOW, POLICY)
    plan = {
        "resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
        "meta": {"versionId": "2"},
        "contained": [{"resourceType": "RelatedPerson", "id": "rp",
                       "address": [{"line": ["1 Refuge Lane"], "postalCode": "ZZ99 3VZ"}],
                       "telecom": [{"system": "phone", "value": "07700 900000"}]}],
        "careTeam": [{"reference": "#rp"}],
    }  # fmt: skip
    assert d.permit and visible(meta(plan, GP), d) and not unmasked("CarePlan", d)
    shown = mask(plan, d, POLICY, GP)
    assert "ZZ99 3VZ" not in str(shown) and "07700" not in str(shown)
    assert "meta" not in shown, "its version would show a change to the contact"


def _actor(code: str) -> dict[str, Any]:
    return {"reference": {"identifier": {"system": ODS, "value": code}}}


def test_a_general_consent_lifts_no_restriction_read_as_a_dissent() -> None:
    """A deny naming two organisations, or "share, except my active problems", is read as a
    dissent (inexact): a later general consent to share, which lifts no restriction of an
    organisation or section, must not lift it, or R9Z sees the record the person kept back."""
    user = hospital_clinician()
    two_orgs = _privacy("2025-01-10", {"type": "deny",
                                       "actor": [_actor(HOSPITAL), _actor("Y90022")]})  # fmt: skip
    except_problems = _privacy("2025-01-10", {
        "type": "permit",
        "provision": [{"type": "deny", "code": [{"coding": [
            {"system": f"{BASE}CodeSystem/scr-record-section", "code": "problems-active"}]}]}],
    })  # fmt: skip
    share = _privacy("2026-11-20", {"type": "permit"})
    for restriction, resource in ((two_orgs, OBSERVATION), (except_problems, ACTIVE_PROBLEM)):
        d = decide(user, facts(typical(user), directives=(restriction, share)), "TREAT",
                   EVERYTHING, NOW, POLICY)  # fmt: skip
        assert d.permit and not visible(meta(resource, GP), d)


def test_a_restriction_of_current_medications_withholds_the_drugs_they_name() -> None:
    """Medication has its own section: a person restricting their current medications must
    not have the drugs (methadone) named to the restricted organisation beside them; one
    restricting only past medications still has current statements' drugs named, or A&E sees
    current statements naming nothing."""
    user = hospital_clinician()
    drug = {"resourceType": "Medication", "code": {"coding": [
        {"system": "http://snomed.info/sct", "code": "39113611000001102"}]}}  # fmt: skip
    for section, shown in (("medications-current", False), ("medications-past", True)):
        restriction = directive("restrict-category", category=section)
        d = decide(user, facts(typical(user), directives=(restriction,)), "TREAT", EVERYTHING,
                   NOW, POLICY)  # fmt: skip
        assert d.permit and visible(meta(drug, GP), d) is shown, section


def test_a_contained_resource_is_judged_by_its_section_too() -> None:
    """A social worker, who may not see past problems, must not get a resolved Condition
    contained in a care plan they may see (minimum necessary)."""
    user = who("social-care")
    d = decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)
    past = {"resourceType": "Condition", "id": "c1", "code": {"text": "Alcohol dependence"},
            "clinicalStatus": {"coding": [{"code": "resolved"}]}}  # fmt: skip
    plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
            "contained": [past], "addresses": [{"reference": "#c1"}]}  # fmt: skip
    assert d.permit and visible(meta(plan, "Y90022"), d) and not visible(meta(past, "Y90022"), d)
    shown = mask(plan, d, POLICY, GP)
    assert "Alcohol dependence" not in str(shown) and "#c1" not in str(shown)


@pytest.mark.parametrize("profile", ["clinical", "social-care"])
def test_a_contained_resource_passes_the_checks_a_resource_of_its_own_does(profile: str) -> None:
    """A person restricting their active problems to the organisation that recorded them:
    the problem, withheld on its own from a viewer elsewhere, must not leave inside a care
    plan from there, whether or not the decision has any field rule."""
    user = (
        who(profile, org=HOSPITAL, org_kind="hospital") if profile == "clinical" else who(profile)
    )
    kind = "hospital-encounter" if profile == "clinical" else "council-case"
    person = facts(
        relation(user.org, kind),
        directives=(directive("restrict-category", category="problems-active"),),
    )
    d = decide(user, person, "TREAT", EVERYTHING, NOW, POLICY)
    problem = {"resourceType": "Condition", "id": "c1", "code": {"text": "Bipolar disorder"},
               "clinicalStatus": {"coding": [{"code": "active"}]}}  # fmt: skip
    assert d.permit and not visible(meta(problem, OTHER_GP), d)
    plan = {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
            "contained": [problem], "addresses": [{"reference": "#c1"}]}  # fmt: skip
    assert visible(meta(plan, OTHER_GP), d)
    assert "Bipolar" not in str(mask(plan, d, POLICY, OTHER_GP))


def test_a_contained_resource_naming_one_taken_out_names_it_no_more() -> None:
    """A kept contained care team whose reason names a contained past problem taken out must
    not keep ``#c2`` (pointing at nothing, R4 ref-1) nor its display naming the problem."""
    user = who("social-care")
    d = decide(user, facts(relation(user.org, "council-case")), "TREAT", EVERYTHING, NOW, POLICY)
    past = {"resourceType": "Condition", "id": "c2", "code": {"text": "Overdose"},
            "clinicalStatus": {"coding": [{"code": "resolved"}]}}  # fmt: skip
    team = {"resourceType": "CareTeam", "id": "t1", "status": "active",
            "reasonReference": [{"reference": "#c2", "display": "Overdose"}]}  # fmt: skip
    plan = {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
            "contained": [team, past], "careTeam": [{"reference": "#t1"}],
            "addresses": [{"reference": "#c2"}]}  # fmt: skip
    shown = mask(plan, d, POLICY, GP)
    assert [c["id"] for c in shown["contained"]] == ["t1"]
    assert "#c2" not in str(shown) and "Overdose" not in str(shown)
