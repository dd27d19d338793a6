"""The IG console's one decision: the ``ig-officer`` profile, or nothing.

Every console page and API call passes here first. The decision is audited, granted or
refused, before anything is shown, through the same ``disclose`` as every record read; a
refused user gets 403 whatever they asked for, so the answer says nothing about the trail.
"""

from __future__ import annotations

from audit import Appender, AuditEntry, RequestContext, disclose
from audit.entry import Action
from consent import Who

IG_PROFILE = "ig-officer"
REFUSED_RULE = "ig.profile-not-ig-officer"
PERMITTED_RULE = "ig.profile-ig-officer"


class NotIgOfficer(Exception):
    """The user's profile is not ``ig-officer``: the console shows them nothing."""


class RefusedOfficer(Exception):
    """An IG officer asked for something the ``refuse`` rule forbids them (their own item)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def may_use_console(who: Who) -> bool:
    return who.profile == IG_PROFILE


def admit(
    appender: Appender,
    who: Who,
    ctx: RequestContext,
    action: Action,
    asked: str,
    *,
    patient_id: str | None = None,
    nhs_number: str | None = None,
    rules: tuple[str, ...] = (),
    refuse: str | None = None,
) -> None:
    """Decide, audit the decision (``asked`` says what was asked), then refuse or return.

    ``refuse`` names a rule that refuses even an IG officer (reviewing their own break-glass
    use or self-claim): the decision is audited as ``deny`` with that rule, the officer's
    view of the patient kept, and ``RefusedOfficer`` raised.
    """
    permit = may_use_console(who)
    allowed = permit and refuse is None
    extra = (refuse,) if permit and refuse is not None else ()
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
        rules=(PERMITTED_RULE if permit else REFUSED_RULE, *extra, *rules),
        patient_id=patient_id if permit else None,
        nhs_number=nhs_number if permit else None,
        query=asked,
        client_address=ctx.client_address,
        user_agent=ctx.user_agent,
    )
    disclose(appender, entry, None)
    if not permit:
        raise NotIgOfficer(who.user_id)
    if refuse is not None:
        raise RefusedOfficer(refuse)
