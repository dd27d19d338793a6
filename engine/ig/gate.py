"""The IG console's one decision: the ``ig-officer`` profile with current IG training, or
nothing (Caldicott 5: access is refused without IG training in the last 12 months).

Every console page and API call passes here first. The decision is audited, granted or
refused, before anything is shown, through the same ``disclose`` as every record read; a
refused user gets 403 whatever they asked for, so the answer says nothing about the trail.
"""

from __future__ import annotations

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


class RefusedOfficer(Exception):
    """An IG officer asked for something the ``refuse`` rule forbids them (their own item)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def may_use_console(who: Who, now: datetime, policy: Policy) -> bool:
    """The ``ig-officer`` profile, with IG training current on ``now``."""
    return who.profile == IG_PROFILE and not isinstance(training_of(who, now, policy), Refusal)


def admit(
    appender: Appender,
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
) -> None:
    """Decide, audit the decision (``asked`` says what was asked), then refuse or return.

    An officer whose IG training is not current on ``now`` under ``policy`` is refused as
    anyone else is, the audit entry naming ``training.current`` and the page saying why.

    ``refuse`` names a rule that refuses even an IG officer (reviewing their own break-glass
    use or self-claim): the decision is audited as ``deny`` with that rule, the officer's
    view of the patient kept, and ``RefusedOfficer`` raised.
    """
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
    disclose(appender, entry, None)
    if not permit:
        raise NotIgOfficer(who.user_id, lapsed.text if lapsed else None)
    if refuse is not None:
        raise RefusedOfficer(refuse)
