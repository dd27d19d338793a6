"""Properties of the decision point over generated users, people, records and directives.

The oracles here restate the contract (access-policy.md) independently of ``consent/rules.py``:
which relationship kinds count for which organisation kinds, how long a hospital encounter
counts, what a complete break-glass grant is.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    ConsentDirective,
    Grant,
    PatientFacts,
    PersonLabel,
    Refused,
    Relationship,
    Request,
    ResourceMeta,
    Who,
    decide,
    mask,
    visible,
)
from consent.model import RelationshipKind
from tests.consent.personas import (
    CARE_HOME,
    COUNCIL,
    GP,
    HOSPITAL,
    IG_OFFICE,
    NOW,
    OTHER_GP,
    PERSON,
    PERSONAS,
    POLICY,
)

ORGS = [GP, OTHER_GP, HOSPITAL, COUNCIL, CARE_HOME, IG_OFFICE]
OWNER_ONLY = {"source-confidential", "NOPAT", "restricted-person"}
SENSITIVE = {"sensitive-gender", "sensitive-fertility", "sensitive-termination", "sensitive-sti"}
LABELS = sorted(OWNER_ONLY | SENSITIVE | {"unrelated-label"})
CATEGORIES = ["gender", "fertility", "termination", "sti", "problems-active", "observations"]
PURPOSES = [None, "TREAT", "ETREAT", "BTG", "COC", "HOPERAT", "POPHLTH", "PATRQT", "OTHER"]
PAIRS = sorted({pair for p in POLICY.profiles.values() for pair in p.allowed})
#: Contract: which relationships give which kind of organisation need-to-know, and windows.
COUNTS_FOR: dict[str, dict[str, int | None]] = {
    "gp-practice": {"registration": None},
    "hospital": {"hospital-encounter": 90, "transfer": 90},
    "council": {"council-case": None},
    "care-home": {"placement": None},
}
BREAK_GLASS_CODES = {"1", "2", "3", "4", "5", "6", "ETREAT"}

#: Enough examples to meet each branch; no deadline, as timing varies on shared machines.
PROPERTY = settings(max_examples=200, deadline=None)

instants = st.integers(min_value=-800, max_value=200).map(lambda d: NOW + timedelta(days=d))
minutes = st.integers(min_value=-600, max_value=600).map(lambda m: NOW + timedelta(minutes=m))
recent = st.integers(min_value=-200, max_value=5).map(lambda d: NOW + timedelta(days=d))
#: The relationship each kind of organisation usually has, added to half the people.
USUAL: dict[str, RelationshipKind] = {
    "gp-practice": "registration",
    "hospital": "hospital-encounter",
    "council": "council-case",
    "care-home": "placement",
}
KINDS = ["registration", "council-case", "placement", "hospital-encounter", "transfer"]


@st.composite
def users(draw: st.DrawFn, tidy: bool) -> Who:
    """A user; ``tidy`` ones are trained and claim the profile their role maps to."""
    profile = draw(st.sampled_from(["clinical", "clinical", *sorted(PERSONAS)]))
    org, kind, role, activities = PERSONAS[profile]
    if draw(st.integers(0, 4)) == 0:
        org, kind = draw(st.sampled_from([(OTHER_GP, "gp-practice"), (HOSPITAL, "hospital")]))
    today = NOW.date()
    trained = draw(
        st.dates(today - timedelta(days=300), today)
        if tidy
        else st.none() | st.dates(today - timedelta(days=800), today + timedelta(days=30))
    )
    return Who(
        user_id=draw(st.sampled_from(["user-1", "user-2"])),
        name="Synthetic user",
        profile=profile if tidy else draw(st.sampled_from(sorted(PERSONAS))),
        role_code=role,
        org=org,
        org_kind=kind,
        ig_training=trained,
        activity_codes=activities,
    )


#: Stands for the user's organisation or id in generated facts, so that the strategies can
#: be built once and still often name the user.
ME = "@me"
orgs = st.sampled_from([ME, ME, *ORGS])
user_ids = st.sampled_from([ME, ME, "user-3"])
relationships = st.builds(
    Relationship,
    org=orgs,
    kind=st.sampled_from([*KINDS, "self-claim"]),
    start=st.none() | recent | instants,
    end=st.none() | st.none() | instants,
    reason=st.sampled_from(["", "short", "Seen in clinic today for a review"]),
    claimed_by=st.none() | user_ids,
)
grants = st.builds(
    Grant,
    user_id=user_ids,
    patient=st.sampled_from([PERSON, PERSON, "person-2"]),
    reason_code=st.sampled_from(["1", "5", "ETREAT", "9"]),
    reason_text=st.sampled_from(["", "too short", *["Collapsed in the street, unconscious"] * 2]),
    start=st.integers(-600, 10).map(lambda m: NOW + timedelta(minutes=m)),
    expiry=st.integers(-60, 600).map(lambda m: NOW + timedelta(minutes=m)),
    review=st.sampled_from(["open", "appropriate", "inappropriate"]),
)
directives = st.builds(
    ConsentDirective,
    kind=st.sampled_from(["dissent", "restrict-org", "restrict-category", "consent-category"]),
    recorded=instants,
    author=st.just("Synthetic author"),
    start=instants,
    end=st.none() | instants,
    org=st.none() | orgs,
    category=st.none() | st.sampled_from(CATEGORIES),
)
people = st.builds(
    PatientFacts,
    person_id=st.just(PERSON),
    relationships=st.lists(relationships, max_size=4).map(tuple),
    grants=st.lists(grants, max_size=3).map(tuple),
    directives=st.lists(directives, max_size=4).map(tuple),
    labels=st.frozensets(st.builds(PersonLabel, st.just("restricted-person"), orgs), max_size=2),
)


def _as(who: Who, patient: PatientFacts) -> PatientFacts:
    """``patient`` with :data:`ME` replaced by the user's organisation and id."""

    def org(value: str) -> str:
        return who.org if value == ME else value

    def uid(value: str | None) -> str | None:
        return who.user_id if value == ME else value

    return replace(
        patient,
        relationships=tuple(
            replace(r, org=org(r.org), claimed_by=uid(r.claimed_by)) for r in patient.relationships
        ),
        grants=tuple(replace(g, user_id=str(uid(g.user_id))) for g in patient.grants),
        directives=tuple(replace(d, org=org(d.org) if d.org else None) for d in patient.directives),
        labels=frozenset(replace(p, org=org(p.org)) for p in patient.labels),
    )


records = st.lists(
    st.builds(
        lambda pair, org, labels: ResourceMeta(pair[0], org, labels, pair[1]),
        st.sampled_from([*PAIRS, ("Basic", "unclassified")]),
        orgs,
        st.frozensets(st.sampled_from(LABELS), max_size=3),
    ),
    min_size=1,
    max_size=30,
)
requests = st.builds(
    Request,
    interaction=st.sampled_from(["read", "search", "everything", "explain"]),
    types=st.frozensets(st.sampled_from(sorted({t for t, _ in PAIRS})), max_size=3),
)
purposes = st.sampled_from(PURPOSES)
direct_care = st.sampled_from(["TREAT", "COC", "ETREAT", "BTG"])


Case = tuple[Who, PatientFacts, str | None, Request, list[ResourceMeta]]
T = TypeVar("T")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Half the cases tidy (a trained user, a direct-care purpose, the whole record, often the
    usual relationship or a consent), so that permits are common; the rest anything at all."""
    tidy = draw(st.booleans())
    who = draw(users(tidy))
    metas = [
        replace(m, source_org=who.org if m.source_org == ME else m.source_org)
        for m in draw(records)
    ]
    patient = _as(who, draw(people))
    if tidy:
        since = NOW - timedelta(days=draw(st.integers(0, 60)))
        usual = Relationship(who.org, USUAL.get(who.org_kind, "registration"), since)
        patient = replace(patient, relationships=(usual, *patient.relationships))
        if draw(st.booleans()):
            category = draw(st.sampled_from(["gender", "fertility", "termination", "sti"]))
            recorded = NOW - timedelta(days=draw(st.integers(0, 30)))
            consent = ConsentDirective(
                "consent-category", recorded, "Synthetic author", recorded, None, who.org, category
            )
            patient = replace(patient, directives=(*patient.directives, consent))
        if draw(st.booleans()):
            live = Grant(
                who.user_id,
                who.org,
                PERSON,
                "5",
                "Collapsed in the street, unconscious",
                NOW - timedelta(minutes=5),
                NOW + timedelta(minutes=draw(st.integers(1, 240))),
            )
            patient = replace(
                patient, relationships=patient.relationships[1:], grants=(*patient.grants, live)
            )
        return who, patient, draw(direct_care), Request("everything"), metas
    return who, patient, draw(purposes), draw(requests), metas


def _active(d: ConsentDirective) -> bool:
    return d.start <= NOW and (d.end is None or d.end > NOW)


def _has_basis(who: Who, patient: PatientFacts) -> bool:
    """The contract's three ways in: relationship, own self-claim, complete live grant."""
    windows = COUNTS_FOR.get(who.org_kind, {})
    for r in patient.relationships:
        if r.org != who.org:
            continue
        if r.kind in windows and (r.start is None or r.start <= NOW):
            window = windows[r.kind]
            if window is None and (r.end is None or r.end > NOW):
                return True
            anchor = r.end or r.start
            if window is not None and anchor and anchor + timedelta(days=window) > NOW:
                return True
        if (
            r.kind == "self-claim"
            and r.claimed_by == who.user_id
            and r.start is not None
            and r.start <= NOW < r.start + timedelta(days=7)
            and (r.end is None or r.end > NOW)
            and len(r.reason.strip()) >= 10
        ):
            return True
    return any(
        g.user_id == who.user_id
        and g.patient == PERSON
        and g.start <= NOW < g.expiry
        and g.review != "inappropriate"
        and g.reason_code in BREAK_GLASS_CODES
        and len(g.reason_text.strip()) >= 10
        for g in patient.grants
    )


@PROPERTY
@given(cases())
def test_owner_only_items_never_leave_their_owner(case: Case) -> None:
    who, patient, purpose, request, metas = case
    d = decide(who, patient, purpose, request, NOW, POLICY)
    for m in metas:
        if visible(m, d) and m.labels & OWNER_ONLY:
            assert m.source_org == who.org


@PROPERTY
@given(cases())
def test_sensitive_items_leave_their_owner_only_under_a_matching_consent(case: Case) -> None:
    who, patient, purpose, request, metas = case
    d = decide(who, patient, purpose, request, NOW, POLICY)
    consented = {
        "sensitive-" + str(c.category)
        for c in patient.directives
        if c.kind == "consent-category" and c.org == who.org and _active(c)
    }
    for m in metas:
        if visible(m, d) and m.source_org != who.org:
            assert m.labels & SENSITIVE <= consented


@PROPERTY
@given(cases())
def test_nothing_is_permitted_without_a_relationship_claim_or_grant(case: Case) -> None:
    who, patient, purpose, request, _ = case
    d = decide(who, patient, purpose, request, NOW, POLICY)
    if d.permit:
        assert _has_basis(who, patient)
    else:
        assert d.basis is None


@PROPERTY
@given(cases())
def test_an_expired_grant_permits_nothing(case: Case) -> None:
    who, patient, purpose, request, metas = case
    expired = tuple(replace(g, expiry=min(g.expiry, NOW)) for g in patient.grants)
    only_grants = replace(patient, relationships=(), grants=expired)
    d = decide(who, only_grants, purpose, request, NOW, POLICY)
    assert not d.permit
    assert not any(visible(m, d) for m in metas)


@PROPERTY
@given(cases())
def test_a_refused_decision_never_carries_content(case: Case) -> None:
    who, patient, purpose, request, metas = case
    d = decide(who, patient, purpose, request, NOW, POLICY)
    if d.permit:
        return
    assert d.refusals
    assert not d.obligations.allowed and not d.obligations.fields and d.basis is None
    assert not any(visible(m, d) for m in metas)
    for m in metas:
        with pytest.raises(Refused):
            mask({"resourceType": m.resource_type, "id": "x"}, d, POLICY, GP)


@PROPERTY
@given(cases(), st.randoms())
def test_the_same_inputs_give_the_same_decision(case: Case, rnd: random.Random) -> None:
    who, patient, purpose, request, _ = case
    first = decide(who, patient, purpose, request, NOW, POLICY)
    assert decide(who, patient, purpose, request, NOW, POLICY) == first

    def shuffled(items: tuple[T, ...]) -> tuple[T, ...]:
        out = list(items)
        rnd.shuffle(out)
        return tuple(out)

    reordered = replace(
        patient,
        relationships=shuffled(patient.relationships),
        grants=shuffled(patient.grants),
        directives=shuffled(patient.directives),
    )
    again = decide(who, reordered, purpose, request, NOW, POLICY)
    assert replace(again, directives=()) == replace(first, directives=())
    assert sorted(again.directives, key=repr) == sorted(first.directives, key=repr)


def test_instants_are_compared_aware() -> None:
    """A naive time cannot be mistaken for UTC: comparing it raises."""
    naive = datetime(2026, 11, 25, 12, 0)
    patient = PatientFacts(PERSON, relationships=(Relationship(GP, "registration", NOW),))
    who = Who("u", "n", "clinical", "S:G:R8000", GP, "gp-practice", NOW.date())
    with pytest.raises(TypeError):
        decide(who, patient, "TREAT", Request("everything"), naive, POLICY)
