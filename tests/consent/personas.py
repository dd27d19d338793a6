"""Synthetic users, people and records for the policy tests (no real organisation or person)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from consent import (
    ConsentDirective,
    Grant,
    PatientFacts,
    Relationship,
    ResourceMeta,
    Who,
)
from consent.model import DirectiveKind, RelationshipKind
from consent.policy import Policy, load
from consent.sections import section_of

POLICY: Policy = load()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TRAINED = date(2026, 6, 1)
PERSON = "person-1"

GP = "Y90011"
OTHER_GP = "Y90022"
HOSPITAL = "R9Z"
COUNCIL = "E06000999"
CARE_HOME = "VM001"
IG_OFFICE = "X26"

#: profile → (organisation, organisation kind, CIS2 role triple, activity codes)
PERSONAS: dict[str, tuple[str, str, str, frozenset[str]]] = {
    "clinical": (GP, "gp-practice", "S8000:G8000:R8000", frozenset()),
    "social-care": (COUNCIL, "council", "S8002:G8004:R8014", frozenset()),
    "care-home": (CARE_HOME, "care-home", "S8000:G8000:R8001", frozenset()),
    "admin": (GP, "gp-practice", "S8001:G8003:R8009", frozenset()),
    "ig-officer": (IG_OFFICE, "ig-office", "S8001:G8002:R8012", frozenset()),
    "analyst": (IG_OFFICE, "ig-office", "S8001:G8002:R8012", frozenset({"B1510"})),
}
#: The relationship each persona's organisation typically has (access-policy.md).
TYPICAL: dict[str, RelationshipKind] = {
    "gp-practice": "registration",
    "council": "council-case",
    "care-home": "placement",
    "hospital": "hospital-encounter",
    "ig-office": "registration",
}


def who(
    profile: str = "clinical",
    *,
    user_id: str = "user-1",
    org: str | None = None,
    org_kind: str | None = None,
    role_code: str | None = None,
    trained: date | None = TRAINED,
    purpose: str | None = "TREAT",
) -> Who:
    p_org, p_kind, p_role, activities = PERSONAS[profile]
    return Who(
        user_id=user_id,
        name=f"Synthetic {profile} user",
        profile=profile,
        role_code=role_code or p_role,
        org=org or p_org,
        org_kind=org_kind or p_kind,
        ig_training=trained,
        purpose=purpose,
        activity_codes=activities,
    )


def hospital_clinician(**kw: Any) -> Who:
    return who("clinical", org=HOSPITAL, org_kind="hospital", **kw)


def relation(
    org: str,
    kind: RelationshipKind = "registration",
    *,
    days_ago: int = 30,
    ended_days_ago: int | None = None,
) -> Relationship:
    end = NOW - timedelta(days=ended_days_ago) if ended_days_ago is not None else None
    return Relationship(org=org, kind=kind, start=NOW - timedelta(days=days_ago), end=end)


def typical(user: Who) -> Relationship:
    return relation(user.org, TYPICAL[user.org_kind])


def grant(
    user: Who,
    *,
    minutes_left: int = 120,
    code: str = "5",
    text: str = "Unconscious in A&E, no history available",
) -> Grant:
    return Grant(
        user_id=user.user_id,
        org=user.org,
        patient=PERSON,
        reason_code=code,
        reason_text=text,
        start=NOW - timedelta(minutes=240 - minutes_left),
        expiry=NOW + timedelta(minutes=minutes_left),
    )


def directive(
    kind: DirectiveKind,
    *,
    days_ago: int = 30,
    org: str | None = None,
    category: str | None = None,
    author: str = "Dr Synthetic, Ambridge Surgery",
) -> ConsentDirective:
    at = NOW - timedelta(days=days_ago)
    return ConsentDirective(
        kind=kind,
        recorded=at,
        author=author,
        start=at,
        org=org,
        category=category,
    )


def facts(*relationships: Relationship, **kw: Any) -> PatientFacts:
    return PatientFacts(person_id=PERSON, relationships=relationships, **kw)


def meta(resource: dict[str, Any], source_org: str = OTHER_GP, *labels: str) -> ResourceMeta:
    return ResourceMeta(
        resource_type=resource["resourceType"],
        source_org=source_org,
        labels=frozenset(labels),
        section=section_of(resource, POLICY),
    )
