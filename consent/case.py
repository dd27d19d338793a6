"""The question one decision answers, and the vocabulary its rules speak.

A :class:`Case` works out once what every rule needs (the profile the role in force maps to,
the purpose, the user's live break-glass grant, the types asked for), so that each rule stays
a few lines. A :class:`Rule` makes the reasons that tie an outcome to its Caldicott principle.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from consent.model import (
    DirectiveNote,
    FieldRule,
    Grant,
    PatientFacts,
    Reason,
    Refusal,
    Request,
    Who,
)
from consent.policy import Policy, Profile, Purpose


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule's id and the Caldicott principle (1–8) it serves; it makes the reasons."""

    id: str
    principle: int

    def ok(self, text: str) -> Reason:
        return Reason(self.id, self.principle, text)

    def no(self, text: str) -> Refusal:
        return Refusal(self.id, self.principle, text)


@dataclass(frozen=True, slots=True)
class Case:
    """One question with what follows from it worked out once (profile, purpose, grant)."""

    who: Who
    patient: PatientFacts
    purpose: str | None
    request: Request
    now: datetime
    policy: Policy
    #: The profile, only when the role in force maps to the one the caller claimed.
    profile: Profile | None
    purpose_def: Purpose | None
    grant: Grant | None
    #: The profile's (type, section) pairs narrowed to the types asked for.
    allowed: frozenset[tuple[str, str]]
    #: The profile's (type, section) pairs whatever was asked, for contained resources.
    profile_allowed: frozenset[tuple[str, str]]

    @classmethod
    def build(
        cls,
        who: Who,
        patient: PatientFacts,
        purpose: str | None,
        request: Request,
        now: datetime,
        policy: Policy,
    ) -> Case:
        mapped = policy.profile_for(who.job_role, who.org_kind, who.activity_codes)
        profile = policy.profiles.get(mapped) if mapped and mapped == who.profile else None
        profile_allowed = profile.allowed if profile else frozenset()
        allowed = profile_allowed
        if request.types:
            allowed = frozenset(p for p in allowed if p[0] in request.types)
        return cls(
            who=who,
            patient=patient,
            purpose=purpose,
            request=request,
            now=now,
            policy=policy,
            profile=profile,
            purpose_def=policy.purposes.get(purpose) if purpose else None,
            grant=live_grant(who, patient, now, policy),
            allowed=allowed,
            profile_allowed=profile_allowed,
        )

    @property
    def grant_in_use(self) -> bool:
        """A live grant, used under a purpose that allows it, by a profile that may."""
        return (
            self.grant is not None
            and self.purpose_def is not None
            and self.purpose_def.break_glass
            and self.profile is not None
            and self.profile.break_glass
        )


@dataclass(frozen=True, slots=True)
class Shaping:
    """What one shaper adds to the obligations of a permit."""

    reasons: tuple[Reason, ...] = ()
    own_org_only: bool = False
    own_org_sections: frozenset[str] = frozenset()
    excluded_labels: frozenset[str] = frozenset()
    withheld_labels: frozenset[str] = frozenset()
    fields: Mapping[str, FieldRule] = field(default_factory=dict)
    notes: tuple[DirectiveNote, ...] = ()


def add_months(day: date, months: int) -> date:
    """Calendar months on, the day clamped to the month's end (29 Feb + 12 is 28 Feb)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def live_grant(who: Who, patient: PatientFacts, now: datetime, policy: Policy) -> Grant | None:
    """The user's grant for this person that is complete and in force now, if any."""
    live = [
        g
        for g in patient.grants
        if g.user_id == who.user_id
        and g.org == who.org
        and g.patient == patient.person_id
        and g.start <= now < g.expiry
        and g.review != "inappropriate"
        and g.reason_code in policy.break_glass_reasons
        and policy.reason_given(g.reason_text)
    ]
    return max(
        live,
        key=lambda g: (g.expiry, g.start, g.reason_code, g.reason_text, g.review),
        default=None,
    )
