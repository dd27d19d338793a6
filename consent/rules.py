"""The rules, one small pure function each, every one tied to the Caldicott principle it serves.

Three kinds, so that ``decide`` can deny by default:

* gates return a :class:`Reason`, a :class:`Refusal`, or ``None`` when they do not apply; one
  refusal denies;
* bases (relationship, self-claim, break-glass) say how the user may be here at all; with
  none of them passing, nothing is permitted;
* shapers run only on a permit and narrow what leaves (a :class:`Shaping`).

Reasons depend on the facts about the person and the user, never on the record's contents, so
explaining a decision cannot reveal what it hides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from consent.case import Case, Rule, Shaping, add_months
from consent.facts import UK
from consent.model import (
    ALWAYS,
    Basis,
    ConsentDirective,
    DirectiveNote,
    FieldRule,
    Precision,
    Reason,
    Relationship,
    Who,
)
from consent.policy import Policy

_CONSENTS = frozenset({"consent-category", "consent-share"})
#: A dissent, and a restriction read as one (``consent.facts.directive``).
_DISSENTS = frozenset({"dissent", "dissent-wide"})
#: Coarsest first.
_PRECISIONS: tuple[Precision, ...] = ("year", "month", "day", "time")

# -- helpers ------------------------------------------------------------------------------


def _holds(r: Relationship, now: datetime, window_days: int | None) -> bool:
    """Open-ended kinds hold from start to end; windowed ones for a while after the end (or
    after the start, while open: an end further ahead than the window, one keyed as 2099, is
    no end yet). A source that gave no start still counts for an open-ended kind, as
    an allocated worker does, but a window needs a start to count from (an end alone, keyed
    ten years ahead, held for ten years)."""
    if r.start is not None and r.start > now:
        return False
    if window_days is None:
        return r.end is None or now < r.end
    if r.start is None:
        return False
    window = timedelta(days=window_days)
    # An end within a window of now is a real one (an admission's planned discharge in three
    # days: counting from the start would refuse the hospital now and let it in again after);
    # one further ahead (2099) is no end yet.
    anchor = r.end if r.end is not None and r.end <= now + window else r.start
    return now < anchor + window


def _active(d: ConsentDirective, now: datetime) -> bool:
    """In force at ``now``. A directive dated after now cannot be right (2062 keyed for 2026):
    a consent so dated does not count, or it would outrank every objection made until then;
    an objection so dated counts from now, failing safe."""
    future = d.recorded is not None and d.recorded > now
    if d.kind in _CONSENTS and (future or d.recorded is None):
        return False
    return (future or d.start <= now) and (d.end is None or now < d.end)


def _latest(d: ConsentDirective) -> tuple[bool, datetime]:
    """Later first when sorted in reverse: an undated objection is the latest word."""
    return d.recorded is None, d.recorded or ALWAYS


def _floor(at: datetime, precision: Precision) -> datetime:
    """The start of the UK year, month or day ``at`` falls in; a time is kept as it is."""
    if precision == "time":
        return at
    day = at.astimezone(UK).date()
    if precision != "day":
        day = day.replace(month=1 if precision == "year" else day.month, day=1)
    return datetime.combine(day, time.min, UK)


def _later(a: ConsentDirective, b: ConsentDirective) -> bool:
    """Whether ``a`` was recorded after ``b``, at the coarser of their precisions: an objection
    dated 20 November and a consent timed at 15:00 that day are a tie, since the objection
    cannot be known to be the older. An undated directive is the latest word."""
    if a.recorded is None or b.recorded is None:
        return b.recorded is not None
    coarser = min(a.precision, b.precision, key=_PRECISIONS.index)
    return _floor(a.recorded, coarser) > _floor(b.recorded, coarser)


def _outweighs(consent: ConsentDirective, objections: list[ConsentDirective]) -> bool:
    """A consent decides only when recorded after every objection it answers: ties go to the
    objection."""
    return all(_later(consent, o) for o in objections)


def _notes(directives: list[ConsentDirective]) -> tuple[DirectiveNote, ...]:
    ordered = sorted(directives, key=lambda d: (_latest(d), d.kind, d.author), reverse=True)
    return tuple(
        DirectiveNote(d.kind, d.author, d.recorded, d.category, d.precision) for d in ordered
    )


def _set_aside(c: Case, rule: Rule, what: str, effect: str) -> Reason:
    """A dissent or restriction's reason, or break-glass's when the grant sets it aside."""
    if c.grant_in_use:
        return BREAK_GLASS_OVERRIDE.ok(f"Break-glass sets aside a directive: {what}")
    return rule.ok(f"{what}: {effect}")


# -- gates --------------------------------------------------------------------------------

PROFILE_KNOWN = Rule("profile.known", 3)
PURPOSE_KNOWN = Rule("purpose.known", 1)
PURPOSE_PROFILE = Rule("purpose.profile", 1)
PURPOSE_DIRECT_CARE = Rule("purpose.direct-care", 2)
PROFILE_IDENTIFIABLE = Rule("profile.identifiable", 2)
PURPOSE_GRANT = Rule("purpose.grant", 1)
TRAINING = Rule("training.current", 5)
PROFILE_TYPES = Rule("profile.types", 3)


def profile_known(c: Case) -> Reason:
    mapped = c.policy.profile_for(c.who.job_role, c.who.org_kind, c.who.activity_codes)
    if mapped is None:
        return PROFILE_KNOWN.no(
            f"Role {c.who.job_role} at a {c.who.org_kind} has no access profile"
        )
    if c.profile is None:
        return PROFILE_KNOWN.no(f"The role in force maps to {mapped}, not {c.who.profile}")
    return PROFILE_KNOWN.ok(f"Role {c.who.job_role} at a {c.who.org_kind}: {c.profile.name}")


def purpose_known(c: Case) -> Reason:
    if not c.purpose:
        return PURPOSE_KNOWN.no("No purpose of use was given")
    if c.purpose_def is None:
        return PURPOSE_KNOWN.no("The purpose of use given is not one scr recognises")
    return PURPOSE_KNOWN.ok(f"Purpose of use {c.purpose_def.code} ({c.purpose_def.display})")


def purpose_for_profile(c: Case) -> Reason | None:
    if c.purpose_def is None or c.profile is None:
        return None
    if c.profile.name not in c.purpose_def.profiles:
        return PURPOSE_PROFILE.no(
            f"The {c.profile.name} profile may not use purpose {c.purpose_def.code}"
        )
    return PURPOSE_PROFILE.ok(f"The {c.profile.name} profile may use {c.purpose_def.code}")


def purpose_direct_care(c: Case) -> Reason | None:
    if c.purpose_def is None or c.purpose_def.direct_care:
        return None
    return PURPOSE_DIRECT_CARE.no(
        f"{c.purpose_def.code} is not direct care: only pseudonymised or aggregated data, "
        "which this service does not provide"
    )


def profile_identifiable(c: Case) -> Reason | None:
    if c.profile is None or c.profile.identifiable:
        return None
    return PROFILE_IDENTIFIABLE.no(f"The {c.profile.name} profile never sees identifiable records")


def purpose_needs_grant(c: Case) -> Reason | None:
    if c.purpose_def is None or not c.purpose_def.needs_grant:
        return None
    if c.grant is None:
        return PURPOSE_GRANT.no(f"{c.purpose_def.code} needs a live break-glass grant")
    return PURPOSE_GRANT.ok(f"{c.purpose_def.code} with a live break-glass grant")


def training_current(c: Case) -> Reason:
    return training_of(c.who, c.now, c.policy)


def training_of(who: Who, now: datetime, policy: Policy) -> Reason:
    """Judged on the UK day, as the training date is one: at 00:30 BST the day has turned.
    Every access asks it: the record's gates, break-glass and self-claim, the IG console."""
    trained = who.ig_training
    today = now.astimezone(UK).date()
    months = policy.ig_training_max_months
    if trained is None:
        return TRAINING.no("No information governance training date is recorded")
    if trained > today:
        return TRAINING.no("The information governance training date is in the future")
    if add_months(trained, months) < today:
        return TRAINING.no(
            f"Information governance training on {trained.isoformat()} is older than "
            f"{months} months"
        )
    return TRAINING.ok(f"Information governance training on {trained.isoformat()}")


def profile_types(c: Case) -> Reason | None:
    if c.profile is None:
        return None
    if not c.allowed:
        asked = ", ".join(sorted(c.request.types)) or "the record"
        return PROFILE_TYPES.no(f"The {c.profile.name} profile does not include {asked}")
    sections = sorted({c.policy.sections[s] for _, s in c.allowed})
    return PROFILE_TYPES.ok(f"The {c.profile.name} profile sees: " + "; ".join(sections))


# -- bases --------------------------------------------------------------------------------

RELATIONSHIP = Rule("relationship.legitimate", 4)
SELF_CLAIM = Rule("relationship.self-claim", 4)
BREAK_GLASS = Rule("break-glass.grant", 7)
#: Judge the request for a claim or a grant before it exists (``consent.requests``).
SELF_CLAIM_REQUEST = Rule("relationship.self-claim.request", 4)
BREAK_GLASS_REQUEST = Rule("break-glass.request", 7)


def _open_stay(r: Relationship, c: Case) -> bool:
    """A hospital acting on a transfer (seeing it in its inbox, acknowledging it, sending the
    discharge back) holds its stay until the discharge: the window bounds reads of the record
    after receipt, not the hospital finishing what it received. Past it, a long stay vanished
    from the inbox and could never be discharged."""
    open_stay = r.kind == "transfer" and r.end is None
    started = r.start is None or r.start <= c.now
    return c.request.interaction == "transfer" and open_stay and started


def legitimate_relationship(c: Case) -> Reason:
    windows = c.policy.relationships.get(c.who.org_kind, {})
    own = [r for r in c.patient.relationships if r.org == c.who.org and r.kind in windows]
    live = sorted(
        (r for r in own if _holds(r, c.now, windows[r.kind]) or _open_stay(r, c)),
        key=lambda r: (r.kind, r.start or c.now),
    )
    if live:
        return RELATIONSHIP.ok(f"Your organisation has a current {live[0].kind}")
    # One answer whether a relationship ended or there never was one: the refusal is shown
    # (/access/explain, the no-access page), and "ended" would tell a user that a number
    # belongs to someone, though they may not see them.
    return RELATIONSHIP.no("Your organisation has no current relationship with this person")


def self_claim(c: Case) -> Reason:
    if c.profile is None or not c.profile.self_claim:
        return SELF_CLAIM.no("Self-claimed relationships are for clinical profiles only")
    limit = timedelta(days=c.policy.self_claim_max_days)
    for r in c.patient.relationships:
        if (
            r.kind == "self-claim"
            and r.org == c.who.org
            and r.claimed_by == c.who.user_id
            and r.review != "inappropriate"
            and c.policy.reason_given(r.reason)
            and r.start is not None
            and r.start <= c.now < min(r.end or r.start + limit, r.start + limit)
        ):
            return SELF_CLAIM.ok("You self-claimed a relationship with this person")
    return SELF_CLAIM.no("You have no current self-claimed relationship with this person")


def break_glass(c: Case) -> Reason:
    if c.profile is None or not c.profile.break_glass:
        return BREAK_GLASS.no("Break-glass is for clinical profiles only")
    if c.grant is None:
        return BREAK_GLASS.no("You have no live break-glass grant for this person")
    if not c.grant_in_use:
        return BREAK_GLASS.no("A break-glass grant is used with purpose BTG or ETREAT")
    reason = c.policy.break_glass_reasons[c.grant.reason_code]
    return BREAK_GLASS.ok(
        f"Break-glass ({reason}) until {c.grant.expiry.isoformat()}; IG review {c.grant.review}"
    )


# -- shapers ------------------------------------------------------------------------------

PROFILE_FIELDS = Rule("profile.fields", 3)
OWNER_ONLY = Rule("labels.owner-only", 6)
SENSITIVE = Rule("labels.sensitive", 6)
#: A sensitive category a consent opens to the viewer: audit only (see ``UNSHOWN``).
SENSITIVE_CONSENTED = Rule("labels.sensitive.consented", 6)
DISSENT = Rule("consent.dissent", 6)
RESTRICT_ORG = Rule("consent.restrict-org", 6)
RESTRICT_CATEGORY = Rule("consent.restrict-category", 6)
PERSON_RESTRICTED = Rule("person.restricted", 6)
BREAK_GLASS_OVERRIDE = Rule("break-glass.override", 7)


def profile_fields(c: Case) -> Shaping:
    """Every type's rule, not only the asked types': what is asked may contain the others."""
    fields = dict(c.profile.fields) if c.profile else {}
    if not fields:
        return Shaping()
    return Shaping(
        reasons=(PROFILE_FIELDS.ok("Some elements are removed for your profile"),),
        fields=fields,
    )


def owner_only(c: Case) -> Shaping:
    return Shaping(
        reasons=(OWNER_ONLY.ok("Items marked confidential at source stay with their source"),),
        excluded_labels=c.policy.owner_only_labels,
    )


def _opens(c: Case, category: str) -> bool:
    """Whether a consent to share ``category`` with this viewer outweighs every objection that
    covers it. A dissent counts even when a consent to share the record lifted it: that
    consent names no category, and only one that does opens it."""
    org = c.who.org
    active = [d for d in c.patient.directives if _active(d, c.now)]
    objections = [
        d
        for d in active
        if d.kind in _DISSENTS
        or (d.kind == "restrict-org" and d.org == org)
        or (d.kind == "restrict-category" and d.category == category and d.org in (None, org))
    ]
    return any(
        d.kind == "consent-category"
        and d.category == category
        and d.org == org
        and _outweighs(d, objections)
        for d in active
    )


def sensitive(c: Case) -> Shaping:
    opened = sorted(cat for cat in c.policy.sensitive if _opens(c, cat))
    reasons = [SENSITIVE.ok("Legally restricted categories are withheld unless consented")]
    reasons += [
        SENSITIVE_CONSENTED.ok(
            f"The person consented to share {cat} information with your organisation"
        )
        for cat in opened
    ]
    closed = frozenset(lbl for cat, lbl in c.policy.sensitive.items() if cat not in opened)
    return Shaping(reasons=tuple(reasons), withheld_labels=closed)


def dissent(c: Case) -> Shaping:
    found = [d for d in c.patient.directives if d.kind in _DISSENTS and _active(d, c.now)]
    if not found:
        return Shaping()
    liftable = all(d.kind == "dissent" for d in found)
    lifted = [
        d
        for d in c.patient.directives
        if liftable and d.kind == "consent-share" and _active(d, c.now) and _outweighs(d, found)
    ]
    if lifted:
        reason = DISSENT.ok("The person consented to sharing after dissenting from it")
        return Shaping((reason,), notes=_notes(lifted))
    reason = _set_aside(
        c, DISSENT, "The person dissented from sharing", "only your organisation's data is shown"
    )
    return Shaping((reason,), own_org_only=not c.grant_in_use, notes=_notes(found))


def restrict_org(c: Case) -> Shaping:
    found = [
        d
        for d in c.patient.directives
        if d.kind == "restrict-org" and d.org == c.who.org and _active(d, c.now)
    ]
    if not found:
        return Shaping()
    reason = _set_aside(
        c,
        RESTRICT_ORG,
        "The person restricted sharing with your organisation",
        "only its own data is shown",
    )
    return Shaping((reason,), own_org_only=not c.grant_in_use, notes=_notes(found))


def restrict_category(c: Case) -> Shaping:
    found = [
        d
        for d in c.patient.directives
        if d.kind == "restrict-category"
        and d.category in c.policy.sections
        and d.org in (None, c.who.org)
        and _active(d, c.now)
    ]
    if not found:
        return Shaping()
    names = "; ".join(sorted(c.policy.sections[str(d.category)] for d in found))
    sections = frozenset().union(*(c.policy.covers[str(d.category)] for d in found))
    reason = _set_aside(
        c,
        RESTRICT_CATEGORY,
        f"The person restricted sharing of {names}",
        "only your organisation's entries are shown",
    )
    return Shaping(
        (reason,),
        own_org_sections=frozenset() if c.grant_in_use else sections,
        notes=_notes(found),
    )


def person_restricted(c: Case) -> Shaping:
    label = c.policy.restricted_person_label
    if not any(p.code == label and p.org != c.who.org for p in c.patient.labels):
        return Shaping()
    return Shaping(
        reasons=(PERSON_RESTRICTED.ok("Contact details are withheld"),),
        fields={
            t: FieldRule(drop=f, source_row=False)
            for t, f in c.policy.restricted_person_drop.items()
        },
    )


GATES = (
    profile_known,
    purpose_known,
    purpose_for_profile,
    purpose_direct_care,
    profile_identifiable,
    purpose_needs_grant,
    training_current,
    profile_types,
)
BASES: tuple[tuple[Basis, Callable[[Case], Reason]], ...] = (
    ("relationship", legitimate_relationship),
    ("self-claim", self_claim),
    ("break-glass", break_glass),
)
SHAPERS = (
    profile_fields,
    owner_only,
    sensitive,
    dissent,
    restrict_org,
    restrict_category,
    person_restricted,
)
#: Every rule, for the Caldicott table and its test.
RULES = (
    PROFILE_KNOWN,
    PURPOSE_KNOWN,
    PURPOSE_PROFILE,
    PURPOSE_DIRECT_CARE,
    PROFILE_IDENTIFIABLE,
    PURPOSE_GRANT,
    TRAINING,
    PROFILE_TYPES,
    RELATIONSHIP,
    SELF_CLAIM,
    BREAK_GLASS,
    SELF_CLAIM_REQUEST,
    BREAK_GLASS_REQUEST,
    PROFILE_FIELDS,
    OWNER_ONLY,
    SENSITIVE,
    SENSITIVE_CONSENTED,
    DISSENT,
    RESTRICT_ORG,
    RESTRICT_CATEGORY,
    PERSON_RESTRICTED,
    BREAK_GLASS_OVERRIDE,
)
#: Rules whose reasons stay in the audit but are not shown to the viewer: saying that a
#: person is restricted, or consented to share a legally restricted category, would itself
#: disclose something about them (a consent to share STI information says there is some),
#: to a receptionist as much as to anyone whose view holds no item of it.
UNSHOWN = frozenset({PERSON_RESTRICTED.id, SENSITIVE_CONSENTED.id})
