"""Facts for the decision, read from stored FHIR resources: pure, so the caller does the query.

Relationships come from what the sources recorded (a GP registration, a council case, a care
home placement, a hospital encounter); privacy directives from ``Consent`` resources with scope
``patient-privacy``. Anything that cannot be read with certainty gives no fact, which can only
narrow access: a relationship with an unknown organisation grants nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from consent.model import (
    ALWAYS,
    ConsentDirective,
    DirectiveKind,
    PersonLabel,
    Precision,
    Relationship,
    RelationshipKind,
)

UK = ZoneInfo("Europe/London")
#: scr's own code systems, matched by path so that any canonical base is accepted.
EPISODE_TYPE = "/CodeSystem/scr-episode-type"
SCR_LABELS = "/CodeSystem/scr-security-label"
SECTIONS = "/CodeSystem/scr-record-section"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
_GONE = frozenset({"entered-in-error", "cancelled", "revoked", "rejected", "draft"})
#: SNOMED CT "Patient referral": the category GP Connect gives a referral (ReferralRequest).
REFERRAL = "3457005"
#: Statuses that say an episode, referral or task is over: with no end date to say when, it
#: gives no relationship, as an open-ended one would last for ever. (An encounter with no end
#: counts from its start, its window the same either way.)
_CLOSED = {
    "EpisodeOfCare": frozenset({"finished"}),
    "ServiceRequest": frozenset({"completed"}),
    "Task": frozenset({"completed", "failed"}),
}
#: Statuses that say it has not begun: a planned or waitlisted placement is no resident yet
#: (maybe never), a planned encounter no patient yet.
_NOT_YET = {
    "EpisodeOfCare": frozenset({"planned", "waitlist"}),
    "Encounter": frozenset({"planned"}),
}
#: All a permit may hold to be a consent to share the record: any other element (an actor, a
#: category, a purpose, a class of data) narrows it to something that is not read.
_GENERAL = frozenset({"type", "period"})
_PRECISION_BY_LENGTH: dict[int, Precision] = {4: "year", 7: "month", 10: "day"}
_EPISODE_KINDS: dict[str, RelationshipKind] = {
    "gp-registration": "registration",
    "care-home-placement": "placement",
}


def _instant(value: Any, *, end: bool = False) -> datetime | None:
    """A FHIR date or dateTime as an aware instant; a bare end date covers its whole day, and
    an end given to the month or the year its whole month or year.

    A date, or a time without an offset, is a UK one: a registration ending on 1 July ends at
    midnight in the UK, an hour before midnight UTC in summer."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) in (4, 7, 10):
            first = date.fromisoformat((value + "-01-01")[:10])
            day = _after(first, len(value)) if end else first
            return datetime.combine(day, datetime.min.time(), UK).astimezone(UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):  # 9999-12-31 as an end has no next day: no fact
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UK).astimezone(UTC)


def _precision(value: str) -> Precision:
    """How precisely a FHIR date or dateTime (one ``_instant`` has read) is given."""
    return _PRECISION_BY_LENGTH.get(len(value), "time")


def _after(first: date, precision: int) -> date:
    """The first day after the year (4), month (7) or day (10) that starts on ``first``."""
    if precision == 4:
        return first.replace(year=first.year + 1)
    if precision == 7:
        return (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first + timedelta(days=1)


def _period(period: Any) -> tuple[datetime | None, datetime | None]:
    if not isinstance(period, dict):
        return None, None
    return _instant(period.get("start")), _instant(period.get("end"), end=True)


def _ref_parts(ref: Any) -> tuple[str | None, str | None]:
    """(the organisation code a reference names directly, else its literal reference) of a
    reference, or of a list's first."""
    if isinstance(ref, list):
        ref = ref[0] if ref else None
    if not isinstance(ref, dict):
        return None, None
    identifier = ref.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return str(identifier["value"]), None
    literal = ref.get("reference")
    return None, literal if isinstance(literal, str) else None


def _ods(ref: Any) -> str | None:
    """The ODS code a reference names by identifier (no system, or the ODS system), as ODS
    writes it (upper case, no spaces); anything else names no organisation exactly."""
    if not isinstance(ref, dict):
        return None
    identifier = ref.get("identifier")
    if not isinstance(identifier, dict) or identifier.get("system") not in (None, ODS):
        return None
    value = identifier.get("value")
    code = value.strip().upper() if isinstance(value, str) else ""
    return code if code.isalnum() else None


def _org(ref: Any, orgs: Mapping[str, str]) -> str | None:
    """The organisation code a reference names, directly or through ``orgs`` (ref → code)."""
    code, literal = _ref_parts(ref)
    return code if literal is None else orgs.get(literal)


def ods_code(organization: Mapping[str, Any]) -> str | None:
    """An ``Organization``'s ODS code, to build the ``orgs`` map of literal references."""
    for identifier in organization.get("identifier", []):
        if identifier.get("system") == ODS and isinstance(identifier.get("value"), str):
            return str(identifier["value"])
    return None


def _in(coding: Any, system: str) -> bool:
    return isinstance(coding, dict) and str(coding.get("system", "")).endswith(system)


def _codes(concepts: Any, system: str) -> set[str]:
    """Codes of scr's ``system`` in one CodeableConcept or a list of them."""
    items = concepts if isinstance(concepts, list) else [concepts]
    return {
        c["code"]
        for cc in items
        if isinstance(cc, dict)
        for c in cc.get("coding", [])
        if _in(c, system) and isinstance(c.get("code"), str)
    }


def _where(resource: Mapping[str, Any]) -> tuple[RelationshipKind, Any, Any] | None:
    """The relationship kind a resource records, the reference to its organisation, its period."""
    rt = resource.get("resourceType")
    if rt == "EpisodeOfCare":
        found = _codes(resource.get("type", []), EPISODE_TYPE) & set(_EPISODE_KINDS)
        kind = _EPISODE_KINDS[min(found)] if found else "council-case"
        return kind, resource.get("managingOrganization"), resource.get("period")
    if rt == "Encounter":
        return "hospital-encounter", resource.get("serviceProvider"), resource.get("period")
    if rt == "Task":
        return "council-case", resource.get("owner"), resource.get("executionPeriod")
    if rt == "ServiceRequest":
        # A referral is an open case to a council and a window to a hospital; any other request
        # (a lab test a GP asked a hospital for) is a council's own case only.
        period = resource.get("occurrencePeriod") or {"start": resource.get("authoredOn")}
        asked: RelationshipKind = "referral" if _is_referral(resource) else "council-case"
        return asked, resource.get("performer"), period
    if rt == "CareTeam" and resource.get("status") == "active":
        return "council-case", resource.get("managingOrganization"), resource.get("period")
    return None


def _is_referral(request: Mapping[str, Any]) -> bool:
    """Categorised as a patient referral (SNOMED 3457005), as GP Connect's are."""
    return any(
        _in(c, "snomed.info/sct") and c.get("code") == REFERRAL
        for cc in request.get("category", [])
        if isinstance(cc, dict)
        for c in cc.get("coding", [])
    )


@dataclass(frozen=True, slots=True)
class Tie:
    """A relationship as one resource records it, before its organisation is looked up: the
    code the resource names directly (``org``), else the literal ``reference`` to resolve.
    Split from :func:`relationship` so it can be stored at ingest and resolved at read."""

    kind: RelationshipKind
    org: str | None = None
    reference: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def resolve(self, orgs: Mapping[str, str]) -> Relationship | None:
        """The relationship, with ``orgs`` (literal reference → code) for a reference."""
        org = self.org if self.reference is None else orgs.get(self.reference)
        if org is None:
            return None
        return Relationship(org=org, kind=self.kind, start=self.start, end=self.end)


def tie(resource: Mapping[str, Any]) -> Tie | None:
    """The relationship a stored resource records, unresolved; ``None`` if it records none."""
    status = resource.get("status")
    not_yet = _NOT_YET.get(str(resource.get("resourceType")), frozenset())
    where = None if status in _GONE or status in not_yet else _where(resource)
    if where is None:
        return None
    kind, ref, period = where
    code, literal = _ref_parts(ref)
    if code is None and literal is None:
        return None
    start, end = _period(period)
    if end is None and status in _CLOSED.get(str(resource["resourceType"]), ()):
        return None
    return Tie(kind, code, literal, start, end)


def organisation_reference(resource: Mapping[str, Any]) -> str | None:
    """The literal ``Organization/<id>`` reference :func:`relationship` would look up in its
    ``orgs`` for this resource, if any: the only references worth resolving."""
    found = tie(resource)
    literal = found.reference if found is not None else None
    return literal if literal is not None and literal.startswith("Organization/") else None


def relationship(
    resource: Mapping[str, Any], orgs: Mapping[str, str] | None = None
) -> Relationship | None:
    """The relationship a stored resource records, if it records one.

    ``orgs`` maps literal references (``Organization/<id>``) to organisation codes, for
    sources that point at an ``Organization`` rather than naming its code.
    """
    found = tie(resource)
    return found.resolve(orgs or {}) if found is not None else None


def directive(
    consent: Mapping[str, Any], sensitive: Mapping[str, str], sections: Collection[str]
) -> ConsentDirective | None:
    """A privacy directive from an active ``patient-privacy`` Consent; anything else is none.

    ``provision.type`` deny with no actor and no category is a dissent; with an actor, a
    restriction of that organisation; with a category (an scr sensitive label in
    ``securityLabel`` or an scr record section in ``code``), a restriction of the category.
    permit with a sensitive label and an actor is the explicit consent that alone opens it;
    permit with nothing else (a period at most) is a consent to share the record: made after a
    dissent, it lifts it. ``sensitive`` maps category → label, as the policy has it.

    ``sections`` are the policy's record sections.

    A deny naming more than one organisation or category, a section the policy does not have,
    an organisation only by a literal reference or by an identifier that is not an ODS code, or
    with provisions nested in it, is none of these exactly: it is read as a dissent, the widest
    objection, since dropping it would share what the person asked to be kept back. So is a
    permit with a deny nested in it ("share, except ..."). Such a dissent is ``dissent-wide``:
    a later general consent to share, which lifts a plain dissent, does not lift it, as it
    would lift what the person restricted along with what they did not. A Consent with no
    provision type, or one R4 does not define, is an objection too (a plain opt-out is recorded
    as ``policyRule`` OPTOUT with none), unless its ``policyRule`` opts in; an objection whose
    period ends before it starts is kept in force.
    """
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return None
    scope = consent.get("scope", {})
    if "patient-privacy" not in {c.get("code") for c in scope.get("coding", [])}:
        return None
    provision = consent.get("provision", {})
    by_label = {label: cat for cat, label in sensitive.items()}
    labels = provision.get("securityLabel", [])
    categories = {
        by_label[c["code"]] for c in labels if _in(c, SCR_LABELS) and c.get("code") in by_label
    }
    named = _codes(provision.get("code", []), SECTIONS)
    categories |= named
    actors = [a.get("reference") for a in provision.get("actor", []) if isinstance(a, dict)]
    org = _ods(actors[0]) if len(actors) == 1 else None
    nested = provision.get("provision")
    exact = (
        len(categories) <= 1
        and len(actors) <= 1
        and not (actors and org is None)
        and named <= set(sections)
        and not nested
    )
    category = next(iter(categories), None) if exact else None
    kind: DirectiveKind
    if provision.get("type") == "permit" and not nested:
        if set(provision) <= _GENERAL:
            kind = "consent-share"
        elif exact and category in sensitive and org is not None:
            kind = "consent-category"
        else:
            return None
    elif provision.get("type") == "deny" or (provision.get("type") == "permit" and nested):
        if not exact:
            org = None
        kind = (
            "restrict-category"
            if category
            else "restrict-org"
            if org
            else "dissent"
            if exact
            else "dissent-wide"
        )
    elif _opted_in(consent):
        return None  # an opt-in naming no provision type lifts no objection, and makes none
    else:
        # No provision type (R4 records a plain opt-out as policyRule OPTOUT, with none) or
        # one R4 does not define: an objection, as dropping it would share what the person
        # asked to keep back; the widest unless nothing but its date is given.
        kind = "dissent" if exact and not categories and not actors else "dissent-wide"
    recorded = _instant(consent.get("dateTime"))
    start, end = _period(provision.get("period"))
    if recorded is None and kind in ("consent-category", "consent-share"):
        return None  # it could not be weighed against an objection
    objection = kind not in ("consent-category", "consent-share")
    if objection and start is not None and end is not None and end <= start:
        end = None  # an objection ending before it starts (a year mistyped) is not dropped
    start = start or recorded or ALWAYS  # an objection is not dropped for want of a date
    author = next(
        (str(p.get("display") or _org(p, {}) or "") for p in consent.get("performer", [])),
        "",
    )
    return ConsentDirective(
        kind=kind,
        recorded=recorded,
        author=author or "unknown",
        start=start,
        end=end,
        org=org,
        category=category,
        precision=_precision(consent["dateTime"]) if recorded else "time",
    )


#: ``policyRule`` codes (v3 ActCode) that say the person opted in.
_OPT_IN = frozenset({"OPTIN", "OPTINR"})


def _opted_in(consent: Mapping[str, Any]) -> bool:
    rule = consent.get("policyRule")
    codings = rule.get("coding") if isinstance(rule, dict) else None
    return any(
        isinstance(c, dict) and c.get("code") in _OPT_IN
        for c in (codings if isinstance(codings, list) else [])
    )


def person_labels(rows: Iterable[tuple[str, str, str]], label: str) -> frozenset[PersonLabel]:
    """``label`` on the person's ``Patient`` rows, given as (resource type, source_org, labels):
    columns alone, so no body is parsed for them."""
    return frozenset(
        PersonLabel(label, org)
        for resource_type, org, labels in rows
        if resource_type == "Patient" and label in labels.split()
    )
