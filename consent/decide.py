"""The decision point: every rule asked, in a fixed order, and a permit only when they agree.

Denial is the default in the structure itself: a permit needs a basis (relationship,
self-claim or live break-glass grant) *and* no refusal from any gate. Obligations are worked
out only for a permit, so a denial has nothing in it to release. The clock is an argument:
the same question at the same instant always gets the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from consent.case import Case, Shaping
from consent.model import (
    Basis,
    Decision,
    FieldRule,
    Obligations,
    PatientFacts,
    Reason,
    Refusal,
    Request,
    Who,
)
from consent.policy import Policy
from consent.rules import BASES, GATES, SHAPERS


def _basis(c: Case) -> tuple[Basis | None, list[Reason]]:
    """How the user may be here at all, with the reasons; every refusal when there is no way.

    A grant in use names the basis even beside a relationship, so that the audit and the IG
    review see every use of break-glass.
    """
    results = [(basis, rule(c)) for basis, rule in BASES]
    passed = [(basis, r) for basis, r in results if not isinstance(r, Refusal)]
    if not passed:
        return None, [r for _, r in results]
    names = [basis for basis, _ in passed]
    return ("break-glass" if "break-glass" in names else names[0]), [r for _, r in passed]


def _merge_fields(parts: Iterable[Mapping[str, FieldRule]]) -> dict[str, FieldRule]:
    """Combine field rules so that each only ever removes more: keeps intersect, drops add up."""
    merged: dict[str, FieldRule] = {}
    for part in parts:
        for t, rule in part.items():
            prior = merged.get(t)
            if prior is None:
                merged[t] = rule
                continue
            if prior.keep is None:
                keep = rule.keep
            else:
                keep = prior.keep if rule.keep is None else prior.keep & rule.keep
            merged[t] = FieldRule(
                keep, prior.drop | rule.drop, prior.source_row and rule.source_row
            )
    return merged


def _obligations(c: Case, shapings: list[Shaping]) -> Obligations:
    """Field rules, and the pairs contained resources are judged against, are kept for every
    type of the profile, not only those asked for: a type asked for may contain one that is
    not (a contact in a care plan), and must be masked as it would be in the whole record."""
    return Obligations(
        org=c.who.org,
        allowed=c.allowed,
        contained_allowed=c.profile_allowed,
        own_org_only=any(s.own_org_only for s in shapings),
        own_org_sections=frozenset().union(*(s.own_org_sections for s in shapings)),
        excluded_labels=frozenset().union(*(s.excluded_labels for s in shapings)),
        withheld_labels=frozenset().union(*(s.withheld_labels for s in shapings)),
        fields=dict(sorted(_merge_fields(s.fields for s in shapings).items())),
    )


def decide(
    who: Who,
    patient: PatientFacts,
    purpose: str | None,
    request: Request,
    now: datetime,
    policy: Policy,
) -> Decision:
    """Permit or deny ``request`` by ``who`` about ``patient`` for ``purpose`` at ``now``."""
    c = Case.build(who, patient, purpose, request, now, policy)
    reasons = [r for r in (gate(c) for gate in GATES) if r is not None]
    basis: Basis | None = None
    if not any(isinstance(r, Refusal) for r in reasons):
        # A gate's refusal is about the user and the request, not the person: the bases are
        # not asked, so the answer (and its explanation) is the same whether or not the person
        # exists or is known to the user's organisation.
        basis, basis_reasons = _basis(c)
        reasons += basis_reasons
    profile = c.profile.name if c.profile else None
    if basis is None or any(isinstance(r, Refusal) for r in reasons):
        return Decision(
            permit=False,
            obligations=Obligations(org=who.org),
            reasons=tuple(reasons),
            purpose=purpose,
            profile=profile,
            policy_version=policy.version,
        )
    shapings = [shaper(c) for shaper in SHAPERS]
    return Decision(
        permit=True,
        obligations=_obligations(c, shapings),
        reasons=tuple(reasons) + tuple(r for s in shapings for r in s.reasons),
        purpose=purpose,
        profile=profile,
        policy_version=policy.version,
        basis=basis,
        directives=tuple(n for s in shapings for n in s.notes),
    )
