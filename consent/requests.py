"""Asking for a way in: a break-glass grant or a self-claimed relationship, judged before it exists.

The same questions ``decide`` asks first (does the role in force map to the claimed profile, is
the purpose of use known, allowed for the profile and direct care, is IG training current) plus
what the contract asks of the request itself (a clinical profile, a known reason code, a reason
a reviewer can read). Pure: the caller records what is granted and audits
the reasons either way, so a refused request leaves a trace too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from consent.case import Case, Rule
from consent.model import (
    Grant,
    Interaction,
    PatientFacts,
    Reason,
    Refusal,
    Relationship,
    Request,
    Who,
)
from consent.policy import Policy
from consent.rules import (
    BREAK_GLASS_REQUEST,
    SELF_CLAIM_REQUEST,
    profile_known,
    purpose_direct_care,
    purpose_for_profile,
    purpose_known,
    training_current,
)

T = TypeVar("T", Grant, Relationship)


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """What was granted (``None`` when refused) and every reason, for the audit trail."""

    granted: T | None
    reasons: tuple[Reason, ...]

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return tuple(r for r in self.reasons if isinstance(r, Refusal))


def _case(who: Who, person_id: str, now: datetime, policy: Policy, asked: Interaction) -> Case:
    return Case.build(who, PatientFacts(person_id), who.purpose, Request(asked), now, policy)


def _gates(c: Case) -> list[Reason]:
    """The gates every read passes that are about the user and the purpose, not the person:
    the profile, the purpose (known, allowed for the profile, direct care) and training."""
    found = (
        profile_known(c),
        purpose_known(c),
        purpose_for_profile(c),
        purpose_direct_care(c),
        training_current(c),
    )
    return [r for r in found if r is not None]


def user_refusals(
    who: Who, now: datetime, policy: Policy, asked: Interaction
) -> tuple[Refusal, ...]:
    """Why the user may see no one's record now whoever the person (lapsed IG training, a
    purpose their profile may not use): a page listing many people (an inbox) says so, rather
    than that there is nothing, and says nothing about anyone."""
    c = _case(who, "", now, policy, asked)
    return tuple(r for r in _gates(c) if isinstance(r, Refusal))


def reason_problem(text: str, policy: Policy) -> str | None:
    """What is wrong with a break-glass or self-claim reason, if anything: the refusal's words,
    which a form also shows beside the field."""
    if not policy.reason_given(text):
        return f"The reason must be at least {policy.min_reason_text} characters"
    return None


def _reason_text(text: str, policy: Policy, rule: Rule) -> Reason:
    problem = reason_problem(text, policy)
    return rule.no(problem) if problem else rule.ok("A reason was given")


def ask_break_glass(
    who: Who,
    person_id: str,
    reason_code: str,
    reason_text: str,
    now: datetime,
    policy: Policy,
    minutes: int,
) -> Answer[Grant]:
    """A grant to this one person for ``minutes``, if the user may break the glass at all."""
    c = _case(who, person_id, now, policy, "break-glass")
    reasons = _gates(c)
    if c.profile is not None and not c.profile.break_glass:
        reasons.append(BREAK_GLASS_REQUEST.no("Break-glass is for clinical profiles only"))
    if reason_code not in policy.break_glass_reasons:
        reasons.append(BREAK_GLASS_REQUEST.no(f"Reason code {reason_code!r} is not recognised"))
    reasons.append(_reason_text(reason_text, policy, BREAK_GLASS_REQUEST))
    if any(isinstance(r, Refusal) for r in reasons):
        return Answer(None, tuple(reasons))
    grant = Grant(
        user_id=who.user_id,
        org=who.org,
        patient=person_id,
        reason_code=reason_code,
        reason_text=reason_text.strip(),
        start=now,
        expiry=now + timedelta(minutes=minutes),
    )
    label = policy.break_glass_reasons[reason_code]
    reasons.append(BREAK_GLASS_REQUEST.ok(f"Granted ({label}) until {grant.expiry.isoformat()}"))
    return Answer(grant, tuple(reasons))


def ask_self_claim(
    who: Who,
    person_id: str,
    reason: str,
    now: datetime,
    policy: Policy,
    found_inappropriate: bool = False,
) -> Answer[Relationship]:
    """A relationship of the user's own, for the policy's maximum number of days.

    ``found_inappropriate``: an IG officer found one of this user's self-claims for this
    person inappropriate, which ends it at once; a new claim would open the record again
    with the next form, so none is made (break-glass stays, for an emergency, and is
    reviewed as any other)."""
    c = _case(who, person_id, now, policy, "self-claim")
    reasons = _gates(c)
    if c.profile is not None and not c.profile.self_claim:
        reasons.append(
            SELF_CLAIM_REQUEST.no("Self-claimed relationships are for clinical profiles only")
        )
    if found_inappropriate:
        reasons.append(SELF_CLAIM_REQUEST.no(
            "An IG officer found your earlier self-claim for this person inappropriate: "
            "ask your IG team, or break the glass in an emergency"
        ))  # fmt: skip
    reasons.append(_reason_text(reason, policy, SELF_CLAIM_REQUEST))
    if any(isinstance(r, Refusal) for r in reasons):
        return Answer(None, tuple(reasons))
    end = now + timedelta(days=policy.self_claim_max_days)
    claim = Relationship(
        org=who.org,
        kind="self-claim",
        start=now,
        end=end,
        reason=reason.strip(),
        claimed_by=who.user_id,
    )
    reasons.append(SELF_CLAIM_REQUEST.ok(f"Claimed until {end.isoformat()}"))
    return Answer(claim, tuple(reasons))
