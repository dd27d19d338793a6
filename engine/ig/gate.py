"""The IG console's one decision: the ``ig-officer`` profile with current IG training, or
nothing (Caldicott 5: access is refused without IG training in the last 12 months).

Every console page and API call passes here first. The decision is audited, granted or
refused, before anything is shown, through the same ``disclose`` as every record read; a
refused user gets 403 whatever they asked for, so the answer says nothing about the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from audit import Appender, AuditEntry, RequestContext, disclose
from audit.entry import Action
from consent import Who
from consent.model import Refusal
from consent.policy import Policy
from consent.rules import training_of

IG_PROFILE = "ig-officer"
REFUSED_RULE = "ig.profile-not-ig-officer"
PERMITTED_RULE = "ig.profile-ig-officer"


class NotIgOfficer(Exception):
    """The user's profile is not ``ig-officer``, or their IG training is not current: the
    console shows them nothing. ``why`` is the training refusal's text, or ``None``."""

    def __init__(self, user_id: str, why: str | None = None) -> None:
        super().__init__(user_id)
        self.why = why


def may_use_console(who: Who, now: datetime, policy: Policy) -> bool:
    """The ``ig-officer`` profile, with IG training current on ``now``."""
    return who.profile == IG_PROFILE and not isinstance(training_of(who, now, policy), Refusal)


@dataclass(frozen=True, slots=True)
class Decided:
    """The gate's decision and the entry that records it, not yet appended."""

    entry: AuditEntry
    #: An IG officer with current training (``refuse`` aside).
    permit: bool
    #: Why a lapsed officer was refused, for the page; ``None`` otherwise.
    why: str | None


def decided(
    who: Who,
    ctx: RequestContext,
    action: Action,
    asked: str,
    *,
    policy: Policy,
    now: datetime,
    patient_id: str | None = None,
    nhs_number: str | None = None,
    rules: tuple[str, ...] = (),
    refuse: str | None = None,
) -> Decided:
    """The gate's decision and its entry (``asked`` says what was asked), for :func:`admit`
    to audit, or for a caller that appends it inside its own transaction (a review: the entry
    commits with the outcome it records, or not at all).

    ``refuse`` names a rule that refuses even an IG officer (reviewing their own break-glass
    use or self-claim): the entry is ``deny`` with that rule, the officer's view of the
    patient kept."""
    officer = who.profile == IG_PROFILE
    training = training_of(who, now, policy)
    lapsed = training if officer and isinstance(training, Refusal) else None
    permit = officer and lapsed is None
    allowed = permit and refuse is None
    extra = (lapsed.rule_id,) if lapsed else (refuse,) if permit and refuse is not None else ()
    entry = AuditEntry(
        request_id=ctx.request_id,
        action=action,
        outcome="permit" if allowed else "deny",
        user_id=who.user_id,
        user_name=who.name,
        role_code=who.role_code,
        profile=who.profile,
        org=who.org,
        purpose=who.purpose,
        rules=(PERMITTED_RULE if officer else REFUSED_RULE, *extra, *rules),
        patient_id=patient_id if permit else None,
        nhs_number=nhs_number if permit else None,
        query=asked,
        client_address=ctx.client_address,
        user_agent=ctx.user_agent,
    )
    return Decided(entry, permit, lapsed.text if lapsed else None)


def admit(appender: Appender, d: Decided) -> None:
    """Audit the gate's decision (:func:`decided`), then refuse or return.

    An officer whose IG training is not current is refused as anyone else is, the audit entry
    naming ``training.current`` and the page saying why.
    """
    disclose(appender, d.entry, None)
    if not d.permit:
        raise NotIgOfficer(d.entry.user_id, d.why)
