"""Reading relationships and privacy directives from stored FHIR resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consent import directive, ods_code, organisation_reference, person_labels, relationship
from consent.model import ALWAYS
from tests.consent.personas import POLICY

SCR = "https://fhir.scr.example/"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
COUNCIL_ID = {"type": "Organization", "identifier": {"system": SCR + "Id/council", "value": "E1"}}
SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}


def _episode(code: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "EpisodeOfCare", "status": "active", **extra}
    if code:
        body["type"] = [{"coding": [{"system": SCR + "CodeSystem/scr-episode-type", "code": code}]}]
    return body


def _consent(provision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": SCOPE,
        "dateTime": "2026-01-10",
        "performer": [{"display": "Synthetic Surgery"}],
        "provision": provision,
        **extra,
    }


def test_gp_registration_through_an_organization_reference() -> None:
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y1"}],
    }
    code = ods_code(org)
    assert code == "Y1"
    body = _episode(
        "gp-registration",
        managingOrganization={"reference": "Organization/o1"},
        period={"start": "2024-05-06", "end": "2026-02-01"},
    )
    r = relationship(body, {"Organization/o1": code})
    assert r is not None
    assert (r.org, r.kind) == ("Y1", "registration")
    assert r.start == datetime(2024, 5, 5, 23, tzinfo=UTC)  # UK midnight, in BST
    assert r.end == datetime(2026, 2, 2, tzinfo=UTC)  # GMT


def test_an_unresolved_organisation_gives_no_relationship() -> None:
    body = _episode("gp-registration", managingOrganization={"reference": "Organization/x"})
    assert relationship(body, {}) is None


def test_placement_and_care_package() -> None:
    placement = _episode(
        "care-home-placement",
        managingOrganization={
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "V1"}
        },
        period={"start": "2025-01-01"},
    )
    package = _episode(None, managingOrganization=COUNCIL_ID, period={"start": "2025-03-01"})
    p, c = relationship(placement), relationship(package)
    assert p is not None and (p.org, p.kind, p.end) == ("V1", "placement", None)
    assert c is not None and (c.org, c.kind) == ("E1", "council-case")


def test_council_assessment_and_allocated_team() -> None:
    task = {
        "resourceType": "Task",
        "status": "in-progress",
        "owner": COUNCIL_ID,
        "executionPeriod": {"start": "2026-10-01"},
    }
    team = {"resourceType": "CareTeam", "status": "active", "managingOrganization": [COUNCIL_ID]}
    t, c = relationship(task), relationship(team)
    assert t is not None and t.kind == "council-case"
    assert c is not None and (c.org, c.start) == ("E1", None)


def test_hospital_encounter_and_entered_in_error() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "serviceProvider": {
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "R1"}
        },
        "period": {"start": "2026-10-01T10:00:00+00:00", "end": "2026-10-03T12:00:00+00:00"},
    }
    r = relationship(encounter)
    assert r is not None and r.kind == "hospital-encounter"
    assert r.end == datetime(2026, 10, 3, 12, tzinfo=UTC)
    assert relationship({**encounter, "status": "entered-in-error"}) is None
    assert relationship({"resourceType": "Observation"}) is None


def test_directive_kinds() -> None:
    actor = {"reference": {"identifier": {"value": "R1"}}}
    sti = {"system": SCR + "CodeSystem/scr-security-label", "code": "sensitive-sti"}
    section = {
        "coding": [{"system": SCR + "CodeSystem/scr-record-section", "code": "observations"}]
    }
    cases: dict[str, dict[str, Any]] = {
        "dissent": {"type": "deny"},
        "restrict-org": {"type": "deny", "actor": [actor]},
        "restrict-category": {"type": "deny", "code": [section]},
        "consent-category": {"type": "permit", "actor": [actor], "securityLabel": [sti]},
    }
    for kind, provision in cases.items():
        d = directive(_consent(provision), POLICY.sensitive, POLICY.sections)
        assert d is not None and d.kind == kind, kind
        assert d.author == "Synthetic Surgery"
        assert d.recorded == datetime(2026, 1, 10, tzinfo=UTC)
    consent = directive(_consent(cases["consent-category"]), POLICY.sensitive, POLICY.sections)
    assert consent is not None and (consent.org, consent.category) == ("R1", "sti")


def test_directives_that_cannot_be_read_with_certainty_are_none() -> None:
    sti = {"system": SCR + "CodeSystem/scr-security-label", "code": "sensitive-sti"}
    unclear = [
        _consent({"type": "permit"}, dateTime=None),
        _consent({"type": "permit", "purpose": [{"code": "HRESCH"}]}),
        _consent({"type": "permit", "actor": [{"reference": {"identifier": {"value": "R1"}}}]}),
        _consent({"type": "permit", "securityLabel": [sti]}),
        _consent({"type": "deny"}, status="inactive"),
        _consent({"type": "deny"}, scope={"coding": [{"code": "adr"}]}),
        _consent(
            {
                "type": "permit",
                "actor": [{"reference": {"identifier": {"value": "R1"}}}],
                "securityLabel": [sti],
            },
            dateTime=None,
        ),
        _consent(
            {
                "type": "permit",
                "actor": [{"reference": {"identifier": {"value": "R1"}}}],
                "securityLabel": [sti],
                "period": {"start": "2026-01-01"},
            },
            dateTime=None,
        ),
    ]
    for body in unclear:
        assert directive(body, POLICY.sensitive, POLICY.sections) is None, body


def test_an_objection_without_a_date_is_kept_in_force_from_always() -> None:
    """Dropped, the person's objection would not be honoured for want of a date."""
    for provision in (
        {"type": "deny"},
        {"type": "deny", "actor": [{"reference": {"identifier": {"value": "R1"}}}]},
    ):
        d = directive(_consent(provision, dateTime=None), POLICY.sensitive, POLICY.sections)
        assert d is not None, provision
        assert d.kind in ("dissent", "restrict-org")
        assert (d.recorded, d.start, d.end) == (None, ALWAYS, None)


def test_a_restriction_that_cannot_be_read_exactly_is_a_dissent() -> None:
    """Dropped, it would share what the person asked to keep back: the widest objection holds."""
    actor = {"reference": {"identifier": {"value": "R1"}}}
    section = SCR + "CodeSystem/scr-record-section"
    two_sections = {
        "coding": [{"system": section, "code": "observations"},
                   {"system": section, "code": "problems-past"}]
    }  # fmt: skip
    inexact = [
        {"type": "deny", "actor": [{"reference": {"reference": "Organization/x"}}]},
        {"type": "deny", "actor": [actor, {"reference": {"identifier": {"value": "R2"}}}]},
        {"type": "deny", "code": [two_sections]},
        {"type": "deny", "actor": [actor], "code": [two_sections]},
    ]
    for provision in inexact:
        found = directive(_consent(provision), POLICY.sensitive, POLICY.sections)
        assert found is not None and found.kind == "dissent-wide", provision
        assert (found.org, found.category) == (None, None)


def test_person_labels_come_from_patient_rows() -> None:
    rows = [
        ("Patient", "Y1", "restricted-person source-confidential"),
        ("Patient", "Y2", ""),
        ("Observation", "Y3", "restricted-person"),
    ]
    labels = person_labels(rows, POLICY.restricted_person_label)
    assert {(p.code, p.org) for p in labels} == {("restricted-person", "Y1")}


def test_the_organisation_reference_is_the_one_relationship_resolves() -> None:
    literal = _episode(
        "gp-registration",
        managingOrganization={"reference": "Organization/o1"},
        contained=[{"reference": "Organization/elsewhere"}],
    )
    assert organisation_reference(literal) == "Organization/o1"
    assert relationship(literal, {"Organization/o1": "Y1"}) is not None
    named = _episode(
        "care-home-placement",
        managingOrganization={
            "reference": "Organization/o2",
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "V1"},
        },
    )
    assert organisation_reference(named) is None
    gone = _episode("gp-registration", managingOrganization={"reference": "Organization/o1"})
    assert organisation_reference(gone | {"status": "entered-in-error"}) is None
    assert organisation_reference({"resourceType": "Observation", "performer": literal}) is None
    listed = {"resourceType": "ServiceRequest", "performer": [{"reference": "Organization/o3"}]}
    assert organisation_reference(listed) == "Organization/o3"


def test_a_closed_episode_referral_or_task_with_no_end_is_no_relationship() -> None:
    """Over, but not saying when: an open-ended relationship would last for ever."""
    council = {"identifier": {"value": "E06000999"}}
    closed = [
        {"resourceType": "ServiceRequest", "status": "completed", "intent": "order",
         "authoredOn": "2019-03-01", "performer": [council]},
        {"resourceType": "EpisodeOfCare", "status": "finished", "managingOrganization": council,
         "period": {"start": "2020-01-01"}},
        {"resourceType": "Task", "status": "completed", "intent": "plan", "owner": council,
         "executionPeriod": {"start": "2020-01-01"}},
    ]  # fmt: skip
    for body in closed:
        assert relationship(body) is None, body["resourceType"]
        ended = relationship(
            {
                **body,
                "period": {"start": "2020-01-01", "end": "2020-06-01"},
                "executionPeriod": {"start": "2020-01-01", "end": "2020-06-01"},
                "occurrencePeriod": {"start": "2020-01-01", "end": "2020-06-01"},
            }
        )
        assert ended is not None and ended.end is not None, body["resourceType"]  # fmt: skip


def test_dates_are_uk_days() -> None:
    """A registration ending on 1 July ends at UK midnight (23:00 UTC in summer)."""
    registration = {
        "resourceType": "EpisodeOfCare", "status": "finished",
        "type": [{"coding": [{"system": SCR + "CodeSystem/scr-episode-type",
                              "code": "gp-registration"}]}],
        "managingOrganization": {"identifier": {"value": "Y00001"}},
        "period": {"start": "2001-01-01", "end": "2026-07-01"},
    }  # fmt: skip
    found = relationship(registration)
    assert found is not None
    assert found.start == datetime(2001, 1, 1, 0, tzinfo=UTC)  # GMT in January
    assert found.end == datetime(2026, 7, 1, 23, tzinfo=UTC)
    naive = relationship(
        {**registration, "status": "active", "period": {"start": "2026-07-01T09:00:00"}}
    )
    assert naive is not None and naive.start == datetime(2026, 7, 1, 8, tzinfo=UTC)


def test_a_restriction_the_policy_cannot_place_exactly_is_a_dissent() -> None:
    """A section the policy does not have, a 'share, except' permit, an organisation named by
    an identifier that is not an ODS code: each is read as the widest objection."""
    section = SCR + "CodeSystem/scr-record-section"
    provisions = [
        {"type": "deny", "code": [{"coding": [{"system": section, "code": "Encounters"}]}]},
        {"type": "permit", "provision": [{"type": "deny"}]},
        {"type": "deny", "actor": [{"reference": {"identifier": {
            "system": "https://council.example/Id/provider", "value": "PROV-17"}}}]},
    ]  # fmt: skip
    for provision in provisions:
        found = directive(_consent(provision), POLICY.sensitive, POLICY.sections)
        assert found is not None and found.kind == "dissent-wide", provision


def test_an_organisation_is_named_as_ods_writes_it() -> None:
    actor = {"reference": {"identifier": {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": " r9z "}}}  # fmt: skip
    found = directive(
        _consent({"type": "deny", "actor": [actor]}), POLICY.sensitive, POLICY.sections
    )
    assert found is not None and (found.kind, found.org) == ("restrict-org", "R9Z")


def test_an_end_given_to_the_month_or_year_ends_with_it() -> None:
    """A consent ending '2026-03' is over in April, not open for ever."""
    sti = {"system": SCR + "CodeSystem/scr-security-label", "code": "sensitive-sti"}
    actor = {"reference": {"identifier": {"value": "R1"}}}
    for end, after in (("2026-03", datetime(2026, 3, 31, 23, tzinfo=UTC)),
                       ("2025", datetime(2026, 1, 1, tzinfo=UTC))):  # fmt: skip
        provision = {"type": "permit", "actor": [actor], "securityLabel": [sti],
                     "period": {"start": "2025-01-10", "end": end}}  # fmt: skip
        found = directive(_consent(provision), POLICY.sensitive, POLICY.sections)
        assert found is not None and found.end == after, end
    team = {"resourceType": "CareTeam", "status": "active",
            "managingOrganization": [{"identifier": {"value": "E06000999"}}],
            "period": {"start": "2024-01-02", "end": "2025-06"}}  # fmt: skip
    r = relationship(team)
    assert r is not None and r.end == datetime(2025, 6, 30, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ({"policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTOUT"}]}}, "dissent"),
        ({"provision": {}}, "dissent"),
        ({"provision": {"period": {"start": "2026-01-10"}}}, "dissent"),
        ({"provision": {"type": "Deny"}}, "dissent"),
        (
            {"provision": {"actor": [{"reference": {"identifier": {"value": "R1"}}}]}},
            "dissent-wide",
        ),
    ],
)
def test_an_objection_with_no_provision_type_is_an_objection(
    extra: dict[str, Any], kind: str
) -> None:
    """R4 records a plain opt-out as policyRule OPTOUT with no provision, and provision.type is
    optional: each was dropped, and the record shared as if the person had not objected."""
    body = {k: v for k, v in _consent({}).items() if k != "provision"} | extra
    found = directive(body, POLICY.sensitive, POLICY.sections)
    assert found is not None and found.kind == kind, extra


def test_an_opt_in_with_no_provision_type_lifts_nothing_and_objects_to_nothing() -> None:
    body = {k: v for k, v in _consent({}).items() if k != "provision"} | {
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]}
    }
    assert directive(body, POLICY.sensitive, POLICY.sections) is None


def test_an_objection_ending_before_it_starts_stays_in_force() -> None:
    """A dissent from 2026-01-10 'until 2025-01-10' (a year mistyped) was read as expired, and
    everything shared."""
    body = _consent({"type": "deny", "period": {"start": "2026-01-10", "end": "2025-01-10"}})
    found = directive(body, POLICY.sensitive, POLICY.sections)
    assert found is not None and found.kind == "dissent" and found.end is None


def test_an_objection_recorded_after_its_period_ended_is_not_made_permanent() -> None:
    """The rule above read the date it was recorded as its start: an objection ended on
    2025-06-30 and written down on 2026-01-10 became a dissent in force for ever."""
    body = _consent({"type": "deny", "period": {"end": "2025-06-30"}})
    found = directive(body, POLICY.sensitive, POLICY.sections)
    assert found is not None and found.end is not None and found.end < found.start
