"""What the record page shows, worked out from the resources the gate released: pure.

Resources are placed in the policy's record sections (the same placement the policy judged
them by), summary sections first in the order a clinician reads them, each item with a label,
a date and its source organisation and system (from ``meta.source``), newest first. A summary
lists only what is current; the Details section lists everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import Any

from consent import Policy, section_of
from consent.facts import relationship
from engine.identity.features import NHS_SYSTEM
from engine.web.current import codes, current, standing, superseded
from engine.web.templating import uk_date

#: What a clinician reads first (issue 6): alerts, allergies, medicines, problems, recent
#: admissions and encounters, social care, legal and CPR decisions, contacts.
SUMMARY = (
    "alerts",
    "allergies",
    "medications-current",
    "problems-active",
    "admissions",
    "encounters",
    "care-packages",
    "care-team",
    "placements",
    "legal",
    "advance-decisions",
    "contacts",
)
#: Shown in the header or not at all: the person's own details, the directory entries and the
#: medicines that statements and requests name (each is listed under its statement).
_NOT_LISTED = frozenset({"demographics", "directory", "medicines"})
RECENT_ENCOUNTERS = 10
#: An item whose source names nothing is said to be so: a bare resource type
#: ("MedicationStatement") tells a clinician nothing and reads like a name.
UNNAMED_MEDICINE = "Medicine (name not available)"
UNNAMED = "Item (name not available)"
#: The types that name a drug (``medication[x]``): each is labelled by its drug alone, never
#: by a category or reason that would read as one.
_MEDICINE_TYPES = frozenset(
    {"MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense"}
)
_NO_MEDICINES: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
_LABEL_FIELDS = (
    "code",
    "vaccineCode",
    "type",
    "category",
    "reasonCode",
    "class",
)
_DATE_FIELDS = (
    "effectiveDateTime",
    "onsetDateTime",
    "occurrenceDateTime",
    "authoredOn",
    "recordedDate",
    "dateAsserted",
    "issued",
    "date",
    "created",
    "dateTime",
)


@dataclass(frozen=True, slots=True)
class Item:
    label: str
    detail: str
    #: As the source wrote it; empty when it gave none (the page says "undated").
    date: str
    source: str


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    born: str
    gender: str
    nhs_number: str
    address: str
    #: The structured parts of the first name, for forms: ``name`` leads with any title.
    given: str = ""
    family: str = ""


@dataclass(frozen=True, slots=True)
class View:
    person: Person | None
    summary: tuple[Section, ...]
    details: tuple[Section, ...]
    #: The CPR decision in force (:func:`cpr_in_force`).
    for_cpr: bool | None = None


def concept_text(value: Any) -> str:
    """A CodeableConcept (or a list of them, or a Coding) as words a person reads."""
    if isinstance(value, list):
        return "; ".join(_once([concept_text(v) for v in value]))
    if not isinstance(value, dict):
        return str(value) if isinstance(value, str) else ""
    if value.get("text"):
        return str(value["text"])
    if value.get("display"):
        return str(value["display"])
    for coding in value.get("coding", []):
        if coding.get("display"):
            return str(coding["display"])
    codes = [c.get("code") for c in value.get("coding", []) if c.get("code")]
    return str(codes[0]) if codes else ""


def _once(texts: list[str]) -> list[str]:
    """Each text once, as first written: a relationship given as 'Next of kin' and coded
    'Next of Kin' is said once."""
    first: dict[str, str] = {}
    for t in texts:
        if t:
            first.setdefault(t.casefold(), t)
    return list(first.values())


def _terms(concepts: Any) -> str:
    """Every text and coded display of CodeableConcepts, once each: a participant's role is
    written ('Social Worker') and coded ('Key worker'), and each says something."""
    found = [
        t
        for c in (concepts if isinstance(concepts, list) else [concepts])
        if isinstance(c, dict)
        for t in (c.get("text"), *(d.get("display") for d in c.get("coding", [])))
        if isinstance(t, str)
    ]
    return ", ".join(_once(found))


def label(
    resource: Mapping[str, Any], medicines: Mapping[str, Mapping[str, Any]] = _NO_MEDICINES
) -> str:
    """What an item is, in words: its title, else its coded concept, else a name; a medicine
    by its drug (``medicines``: the released Medications by ``Medication/<id>``). Never a bare
    resource type."""
    if resource.get("resourceType") in _MEDICINE_TYPES:
        return _drug(resource, medicines) or UNNAMED_MEDICINE
    for name in ("title", "description"):
        if isinstance(resource.get(name), str) and resource[name]:
            return str(resource[name])
    for name in _LABEL_FIELDS:
        text = concept_text(resource.get(name))
        if text:
            return text
    if resource.get("name"):
        return _name(resource["name"]) or UNNAMED
    return UNNAMED


def _drug(resource: Mapping[str, Any], medicines: Mapping[str, Mapping[str, Any]]) -> str:
    """The drug a statement or request names: on itself, or in the Medication its
    ``medicationReference`` names (GP Connect's way), contained (``#id``) or released beside
    it. A Medication the viewer may not see was not released, so its name is not shown."""
    named = concept_text(resource.get("medicationCodeableConcept"))
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if named or not isinstance(target, str):
        return named
    contained = resource.get("contained")
    inline = {
        f"#{c.get('id')}": c
        for c in (contained if isinstance(contained, list) else [])
        if isinstance(c, dict) and c.get("resourceType") == "Medication"
    }
    drug = inline.get(target) if target.startswith("#") else medicines.get(target)
    return concept_text(drug.get("code")) if drug else ""


def _name(names: Any) -> str:
    if isinstance(names, str):
        return names
    for n in names if isinstance(names, list) else [names]:
        if isinstance(n, dict):
            if n.get("text"):
                return str(n["text"])
            parts = [*n.get("prefix", []), *n.get("given", []), n.get("family", "")]
            return " ".join(str(p) for p in parts if p)
    return ""


def _value(resource: Mapping[str, Any]) -> str:
    q = resource.get("valueQuantity")
    if isinstance(q, dict) and "value" in q:
        unit = q.get("unit", q.get("code", ""))
        return f"{q.get('comparator', '')}{q['value']} {unit}".strip()
    for name in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if name in resource:
            return str(resource[name])
    return concept_text(resource.get("valueCodeableConcept"))


def _participants(resource: Mapping[str, Any]) -> list[str]:
    """A care team's members by name and role: who the key worker is, not only that there
    is one."""
    found = []
    for p in resource.get("participant", []):
        member = p.get("member") if isinstance(p, dict) else None
        name = str(member.get("display") or "") if isinstance(member, dict) else ""
        role = _terms(p.get("role")) if isinstance(p, dict) else ""
        found.append(f"{name} ({role})" if name and role else name or role)
    return found


def _organisations(ref: Any, org_names: Mapping[str, str]) -> list[str]:
    """The organisations a reference (or a list of them) names, by display or by the name of
    the code it identifies them by."""
    found = []
    for r in ref if isinstance(ref, list) else [ref]:
        if not isinstance(r, dict):
            continue
        ident = r.get("identifier")
        code = str(ident.get("value") or "") if isinstance(ident, dict) else ""
        found.append(str(r.get("display") or org_names.get(code, code)))
    return found


def contact_lines(contacts: Iterable[Mapping[str, Any]]) -> list[str]:
    """Contacts as the transfer form takes them, one a line (``name | relationship |
    telephone``), so a prefilled contact goes to the hospital with the number to call. One
    person recorded by two sources (the council's "Daughter", the practice's "Daughter;
    Next-of-Kin") is one line: the same name and number, each relationship said once. A ``|``
    of the source's would split a part, so it reads as ``/``."""
    merged: dict[tuple[str, str], list[str]] = {}
    for c in contacts:
        name, phones = label(c).replace("|", "/"), _phones(c).replace("|", "/")
        said = concept_text(c.get("relationship")).replace("|", "/").split("; ")
        kinds = merged.setdefault((name, phones), [])
        kinds += [k for k in said if k and k.casefold() not in {x.casefold() for x in kinds}]
    return [" | ".join([name, "; ".join(kinds), phones]).rstrip(" |")
            for (name, phones), kinds in merged.items()]  # fmt: skip


def _phones(resource: Mapping[str, Any]) -> str:
    return ", ".join(
        str(t["value"])
        for t in resource.get("telecom", [])
        if isinstance(t, dict) and t.get("system") == "phone" and t.get("value")
    )


def detail(resource: Mapping[str, Any], org_names: Mapping[str, str]) -> str:
    """What a clinician needs beside the label: a value, who (a care team's members, a
    contact's relationship to the person, the care home managing a placement when it is not
    the source), a telephone number, a dose, a reaction, a status."""
    parts = [_value(resource), *_participants(resource)]
    team = resource.get("name")
    if isinstance(team, str) and team != label(resource):
        parts.append(team)
    parts.append(concept_text(resource.get("relationship")))
    org = _source(resource)[1]
    managing = _organisations(resource.get("managingOrganization"), org_names)
    parts += [m for m in managing if m not in (org, org_names.get(org))]
    parts.append(_phones(resource))
    dosage = resource.get("dosage") or resource.get("dosageInstruction")
    if isinstance(dosage, list) and dosage and isinstance(dosage[0], dict):
        parts.append(str(dosage[0].get("text", "")))
    for reaction in resource.get("reaction", []):
        parts.append(concept_text(reaction.get("manifestation")))
    status = resource.get("clinicalStatus") or resource.get("status")
    parts.append(concept_text(status) if isinstance(status, dict) else str(status or ""))
    return " · ".join(p for p in parts if p)


#: The CPR decisions sections.json places under advance decisions, by whether each is for CPR.
FOR_CPR = {"450475007": True, "304252001": True, "450476008": False, "304253006": False}


def cpr_in_force(decisions: Iterable[Mapping[str, Any]], today: str) -> bool | None:
    """Whether the person's CPR decision in force is for CPR (the transfer form is prefilled
    with it): of the current decisions, every one no later one supersedes must say the same.
    ``None`` when none is current, or when those left disagree (an undated one, or two of a
    day, beside a decision the other way): the nurse then says, as guessing could send a
    DNACPR as in force when it is not, or the reverse."""
    said: list[tuple[str, bool]] = []
    for r in decisions:
        if r.get("resourceType") == "Consent" or not current(r, today):
            continue
        found = {FOR_CPR[c] for c in codes(r.get("code")) & FOR_CPR.keys()}
        if len(found) > 1:
            return None  # one record saying both
        said.extend((_date(r), v) for v in found)
    dates = [d for d, _ in said]
    left = {v for i, (d, v) in enumerate(said) if not superseded(d, dates[:i] + dates[i + 1 :])}
    return left.pop() if len(left) == 1 else None


def registered_practice(
    registrations: Iterable[Mapping[str, Any]],
    orgs: Mapping[str, str],
    org_names: Mapping[str, str],
    today: str,
) -> str:
    """The GP practice the person is registered with, as a form names it (``name (code)``),
    from the current registrations the user may see (``orgs``: a literal ``Organization/<id>``
    reference's ODS code); empty when none names one, or when they name more than one
    practice: which is theirs is not guessed."""
    codes = {
        found.org for r in registrations
        if current(r, today) and (found := relationship(r, orgs)) is not None
        and found.kind == "registration"
    }  # fmt: skip
    if len(codes) != 1:
        return ""
    (code,) = codes
    return f"{org_names[code]} ({code})" if code in org_names else code


def _date(resource: Mapping[str, Any]) -> str:
    for name in _DATE_FIELDS:
        if isinstance(resource.get(name), str):
            return uk_date(str(resource[name]))
    periods = [resource.get(n) for n in ("effectivePeriod", "period", "executionPeriod",
                                         "occurrencePeriod")]  # fmt: skip
    provision = resource.get("provision")  # a Consent's (an LPA, a deputyship)
    periods.append(provision.get("period") if isinstance(provision, dict) else None)
    for period in periods:
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return uk_date(str(period["start"]))
    return ""


def _source(resource: Mapping[str, Any]) -> tuple[str, str]:
    """(system, organisation code) from ``meta.source`` (``.../source/<system>/<org>/...``);
    empty when it does not say."""
    raw = str(resource.get("meta", {}).get("source", ""))
    parts = raw.split("/source/", 1)[-1].split("/") if "/source/" in raw else []
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


def source(resource: Mapping[str, Any], org_names: Mapping[str, str]) -> str:
    """``<organisation> (<system>)`` from ``meta.source``."""
    system, org = _source(resource)
    return f"{org_names.get(org, org)} ({system})" if system else "unknown source"


def _person(patients: Sequence[Mapping[str, Any]]) -> Person | None:
    if not patients:
        return None
    p = patients[0]
    nhs = next(
        (
            str(i.get("value"))
            for q in patients
            for i in q.get("identifier", [])
            if i.get("system") == NHS_SYSTEM
        ),
        "",
    )
    address = p.get("address") or [{}]
    line = ", ".join([*address[0].get("line", []), address[0].get("postalCode", "")]).strip(", ")
    names = p.get("name")
    first = next((n for n in names if isinstance(n, dict)), {}) if isinstance(names, list) else {}
    given = " ".join(str(g) for g in first.get("given", []) if isinstance(g, str))
    family = first.get("family")
    return Person(
        _name(p.get("name", [])), str(p.get("birthDate", "")), str(p.get("gender", "")), nhs, line,
        given, family if isinstance(family, str) else "",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Row:
    """An item, whether it is current, and whether it is a CPR decision."""

    current: bool
    cpr: bool
    item: Item


def _marked(rows: list[_Row]) -> list[_Row]:
    """Several current CPR decisions each say their standing in their label, which the
    transfer form is prefilled with too: a later 'For CPR' replaces a DNACPR, and both stay
    in the record."""
    at = [i for i, r in enumerate(rows) if r.cpr and r.current]
    if len(at) < 2:
        return rows
    marked = list(rows)
    for i in at:
        item = rows[i].item
        said = standing(item.date, [rows[j].item.date for j in at if j != i])
        marked[i] = replace(rows[i], item=replace(item, label=f"{item.label} ({said})"))
    return marked


def _rows(
    key: str,
    resources: Sequence[Mapping[str, Any]],
    medicines: Mapping[str, Mapping[str, Any]],
    org_names: Mapping[str, str],
    today: str,
) -> list[_Row]:
    """A section's items, newest first and undated last. sections.json places a Flag or an
    Observation in advance-decisions by its CPR code alone; the Consents there appoint
    people to decide, or refuse a treatment, and are not CPR decisions."""
    cpr = key == "advance-decisions"
    rows = [
        _Row(
            current(r, today), cpr and r.get("resourceType") != "Consent",
            Item(label(r, medicines), detail(r, org_names), _date(r), source(r, org_names)),
        )
        for r in resources
    ]  # fmt: skip
    rows.sort(key=lambda r: r.item.date, reverse=True)
    return _marked(rows)


def compose(
    resources: Iterable[Mapping[str, Any]],
    policy: Policy,
    org_names: Mapping[str, str],
    today: date,
) -> View:
    """The page's sections from what was released; empty sections are left out. The summary
    lists what is current on ``today`` (the UK day) only: a section holding more than the
    summary shows (ended items, older encounters) is shown in full under Details."""
    placed: dict[str, list[Mapping[str, Any]]] = {}
    for r in resources:
        placed.setdefault(section_of(r, policy), []).append(r)
    medicines = {
        f"Medication/{m.get('id')}": m
        for m in placed.get("medicines", [])
        if m.get("resourceType") == "Medication"
    }
    rows = {
        k: _rows(k, rs, medicines, org_names, today.isoformat())
        for k, rs in placed.items()
        if k not in _NOT_LISTED
    }

    def section(key: str, shown: Sequence[_Row]) -> Section:
        return Section(key, policy.sections.get(key, key), tuple(r.item for r in shown))

    def summarised(key: str) -> Section:
        shown = [r for r in rows[key] if r.current]
        recent = key in ("admissions", "encounters")
        return section(key, shown[:RECENT_ENCOUNTERS] if recent else shown)

    summary = tuple(summarised(k) for k in SUMMARY if any(r.current for r in rows.get(k, ())))
    shown_whole = {s.key for s in summary if len(s.items) == len(rows[s.key])}
    rest = [k for k in policy.sections if k in rows and k not in shown_whole]
    details = tuple(section(k, rows[k]) for k in rest)
    cpr = cpr_in_force(placed.get("advance-decisions", ()), today.isoformat())
    return View(_person(placed.get("demographics", [])), summary, details, cpr)
