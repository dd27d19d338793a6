"""A relationship or directive stored at ingest (``engine.facts``) decides exactly as the body it
was derived from: for any body of the shapes the sources write, and any organisations the
references may resolve to, the stored fact gives the same relationship and the same directive
(to the instant and the offset) as parsing the body does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consent import directive, load, ods_code, organisation_reference, relationship
from consent.facts import EPISODE_TYPE, ODS, SCR_LABELS, SECTIONS
from engine.facts import row_facts, stored_directive, stored_tie

POLICY = load()
BASE = "https://fhir.scr.example"
ORG_IDS = ("o1", "o2", "o3")
CODES = ("Y1", "Y2")
TYPES = ["EpisodeOfCare", "Encounter", "Task", "ServiceRequest", "CareTeam", "Observation"]
_ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """JSON as stored has no nulls: a missing element is absent."""
    return {k: v for k, v in doc.items() if v is not None}


valid_times = st.one_of(
    st.dates(min_value=date(1900, 1, 1)).map(date.isoformat),
    st.datetimes(min_value=datetime(1900, 1, 1), timezones=st.sampled_from(_ZONES)).map(
        datetime.isoformat
    ),
    st.datetimes(min_value=datetime(1900, 1, 1)).map(datetime.isoformat),
)
times = st.one_of(
    valid_times, valid_times, st.none(), st.sampled_from(["", "not-a-date", "9999-12-31"])
)
periods = st.one_of(st.builds(lambda s, e: _clean({"start": s, "end": e}), times, times), st.none())
good_ref = st.one_of(
    st.sampled_from(ORG_IDS).map(lambda i: {"reference": f"Organization/{i}"}),
    st.sampled_from(CODES).map(lambda c: {"identifier": {"system": ODS, "value": c}}),
)
one_ref = st.one_of(
    good_ref,
    good_ref,
    st.sampled_from(
        [
            {"reference": "Organization/missing"},
            {"reference": "Patient/p1"},
            {"display": "somewhere"},
            {"identifier": {"system": ODS}, "reference": "Organization/o1"},
        ]
    ),
)
refs = st.one_of(one_ref, st.lists(one_ref, max_size=2), st.none())
statuses = st.sampled_from(
    ["active", "active", "finished", None, "inactive", "entered-in-error", "cancelled", "revoked"]
)
episode_types = st.lists(
    st.sampled_from(["gp-registration", "care-home-placement", "other"]), max_size=2
).map(lambda codes: [{"coding": [{"system": BASE + EPISODE_TYPE, "code": c} for c in codes]}])


@st.composite
def related(draw: st.DrawFn) -> dict[str, Any]:
    """A body of any type a relationship is read from (and one it is not), every place an
    organisation or a period may be given filled or not."""
    return _clean(
        {
            "resourceType": draw(st.sampled_from(TYPES)),
            "status": draw(statuses),
            "type": draw(episode_types),
            "managingOrganization": draw(refs),
            "serviceProvider": draw(refs),
            "owner": draw(refs),
            "performer": draw(refs),
            "period": draw(periods),
            "executionPeriod": draw(periods),
            "occurrencePeriod": draw(periods),
        }
    )


@st.composite
def consents(draw: st.DrawFn) -> dict[str, Any]:
    labels = st.sampled_from([*POLICY.sensitive.values(), "restricted"]).map(
        lambda c: {"system": BASE + SCR_LABELS, "code": c}
    )
    sections = st.sampled_from([*POLICY.sections, "nowhere"]).map(
        lambda c: {"coding": [{"system": BASE + SECTIONS, "code": c}]}
    )
    actor = one_ref.map(lambda r: {"reference": r})
    provision = _clean(
        {
            "type": draw(st.sampled_from(["permit", "deny", "deny", None, "other"])),
            "period": draw(periods),
            "actor": draw(st.lists(actor, max_size=2)),
            "securityLabel": draw(st.lists(labels, max_size=2)),
            "code": draw(st.lists(sections, max_size=2)),
        }
    )
    performer = st.one_of(one_ref, st.just({"display": "Dr Who", "reference": "Practitioner/1"}))
    return _clean(
        {
            "resourceType": "Consent",
            "status": draw(st.sampled_from(["active", "active", "inactive"])),
            "scope": {
                "coding": [{"code": draw(st.sampled_from(["patient-privacy"] * 3 + ["adr"]))}]
            },
            "dateTime": draw(st.one_of(valid_times, times, st.none())),
            "provision": provision,
            "performer": draw(st.lists(performer, max_size=2)),
        }
    )


orgs = st.dictionaries(
    st.sampled_from([f"Organization/{i}" for i in ORG_IDS] + ["Patient/p1"]),
    st.sampled_from(CODES),
)


def _same_instants(a: Any, b: Any) -> bool:
    """Equal, and every time with the same offset (equality of aware times ignores it)."""
    if a is None or b is None:
        return a is b
    return a == b and all(
        (x.isoformat() if x else x) == (y.isoformat() if y else y)
        for x, y in ((a.start, b.start), (a.end, b.end))
    )


@settings(max_examples=1000, deadline=None)
@given(related(), orgs)
def test_a_stored_relationship_resolves_as_its_body(body: dict[str, Any], known: dict[str, str]):
    facts = row_facts(body, "Y9", "", POLICY)
    stored = stored_tie(facts["relation"]).resolve(known) if facts["relation"] else None
    assert _same_instants(stored, relationship(body, known))
    ref = organisation_reference(body)
    assert facts["relation_ref"] == (ref.split("/", 1)[1] if ref else None)


@settings(max_examples=1000, deadline=None)
@given(consents())
def test_a_stored_directive_is_the_body_s(body: dict[str, Any]):
    facts = row_facts(body, "Y9", "", POLICY)
    expected = directive(body, POLICY.sensitive, POLICY.sections)
    stored = stored_directive(facts["relation"]) if facts["relation"] else None
    assert _same_instants(stored, expected)
    if expected is not None:
        assert stored is not None
        assert [d.recorded.isoformat() if d.recorded else None for d in (stored, expected)] == [
            expected.recorded.isoformat() if expected.recorded else None
        ] * 2
    assert facts["relation_ref"] is None


@given(st.sampled_from([*CODES, None]))
def test_an_organisation_stores_its_ods_code(code: str | None):
    identifier = [{"system": ODS, "value": code}] if code else [{"system": "other", "value": "x"}]
    body = {"resourceType": "Organization", "identifier": identifier}
    assert row_facts(body, "Y9", "", POLICY)["relation"] == ods_code(body)
