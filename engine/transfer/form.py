"""The care home's transfer form and the hospital's discharge form (and its acknowledgement of
a transfer), as messages.

A form holds what a person typed (or what was prefilled from the shared record and kept); these
functions turn it into the sections and resources of the message, so the web pages, the bench
and the tests all send the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeGuard

from adapters.values import UK
from engine.transfer import news2
from engine.transfer.message import LOINC, NHS, Section, build, urn

SNOMED = "http://snomed.info/sct"
#: scr's code system for the SpO2 scale NEWS2 was scored on (no national code is verified for
#: scale 2), named under the deployment's canonical base like scr's other code systems.
SPO2_SCALES = "CodeSystem/scr-news2-spo2-scale"
UCUM = "http://unitsofmeasure.org"
#: scr's code system for what a hospital did to a medicine (no UK Core code says started,
#: stopped or changed in hospital), carried as a discharge MedicationStatement's ``category``;
#: named under the deployment's canonical base like scr's other code systems.
MEDICINE_CHANGES = "CodeSystem/scr-medication-change"
#: Each kind of change: (its display, the MedicationStatement status it goes with).
CHANGES = {"started": ("Started in hospital", "active"),
           "stopped": ("Stopped in hospital", "stopped"),
           "changed": ("Changed in hospital", "active")}  # fmt: skip
#: A discharge's medication changes when the hospital said there were none.
NO_CHANGES = "No medicine changes"
#: A UCUM annotation (``{Breaths}/min``, as UK Core's NEWS2 example sends it) names, not
#: changes, the unit.
_ANNOTATION = re.compile(r"\{[^{}]*\}")
#: (LOINC code, display, UCUM unit) for each vital sign the form records.
_VITALS = {
    "respiration_rate": ("9279-1", "Respiratory rate", "/min"),
    "spo2": ("59408-5", "Oxygen saturation by pulse oximetry", "%"),
    "systolic_bp": ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "pulse": ("8867-4", "Heart rate", "/min"),
    "temperature": ("8310-5", "Body temperature", "Cel"),
}
#: SNOMED "NEWS2 total score", the Observation a hospital triages on; and the codes of the
#: other Observations it is scored from besides the LOINC vital signs.
NEWS2_TOTAL = "1104051000000101"
ACVPU_SCORE = "1104441000000107"
ON_OXYGEN, ON_AIR = "371825009", "722742002"
#: FHIR's category for vital signs, which UK Core's vital-sign profiles require.
VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                           "code": "vital-signs", "display": "Vital Signs"}]}  # fmt: skip
#: The section the care home's reason for transfer goes under.
REASON = "reason-for-handover"
#: scr's section for the readings usual for the person when well (no UK Core heading has
#: them apart from the readings now): never scored into the NEWS2 total.
BASELINE = "baseline-observations"
_CPR = {True: ("450475007", "For cardiopulmonary resuscitation"),
        False: ("450476008", "Not for cardiopulmonary resuscitation")}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Person:
    nhs_number: str
    family: str
    given: str
    birth_date: str
    gp_practice: str = ""


@dataclass(frozen=True, slots=True)
class Medicine:
    name: str
    #: When the last dose was given, as the care home's MAR says (UK time), if it says.
    last_dose: datetime | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone the hospital may call about the person (next of kin, an attorney, the care
    home): sent as a RelatedPerson, so a hospital system can file the number, not only show
    it."""

    name: str
    relationship: str = ""
    phone: str = ""


def written(at: datetime) -> str:
    """An instant as people in the UK read it, to the minute (a last dose as the form reads it
    back, a step of a transfer): the day always (a bare 08:00 is this morning or yesterday's,
    by when it is read), the clock's name when the time happened twice (the night the clocks
    go back)."""
    at = at.astimezone(UK)
    twice = at.replace(fold=0).tzname() != at.replace(fold=1).tzname()
    return at.strftime("%Y-%m-%d %H:%M") + (f" {at.tzname()}" if twice else "")


@dataclass(frozen=True, slots=True)
class Baseline:
    """The readings usual for the person when well, and the day they were taken: a hospital
    reads today's readings against them (a pulse of 100 is new for one resident, usual for
    another). Each is optional, as care homes record what their residents need."""

    recorded: date
    respiration_rate: int | None = None
    spo2: int | None = None
    systolic_bp: int | None = None
    pulse: int | None = None
    temperature: float | None = None
    consciousness: news2.Consciousness | None = None


@dataclass(frozen=True, slots=True)
class TransferForm:
    person: Person
    reason: str
    vitals: news2.Vitals
    completed_by: str
    #: When the readings were taken (``None``: as the message is built).
    observed_at: datetime | None = None
    baseline: Baseline | None = None
    medicines: Sequence[Medicine] = ()
    allergies: Sequence[str] = ()
    for_cpr: bool | None = None
    advance_decisions: str = ""
    legal: str = ""
    about_me: str = ""
    contacts: Sequence[Contact] = ()
    infection_status: str = ""
    belongings: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class DischargeForm:
    person: Person
    diagnoses: Sequence[str]
    started: Sequence[str] = ()
    stopped: Sequence[str] = ()
    changed: Sequence[str] = ()
    follow_up: str = ""
    belongings_returned: Sequence[str] = ()
    completed_by: str = ""
    #: The hospital said no medicine was started, stopped or changed.
    no_medicine_changes: bool = False


def patient(p: Person) -> dict[str, Any]:
    """The Patient as the form knows them; what is blank is left out, not sent empty."""
    name = ({"family": p.family} if p.family else {}) | ({"given": [p.given]} if p.given else {})
    return (
        {"resourceType": "Patient", "identifier": [{"system": NHS, "value": p.nhs_number}]}
        | ({"name": [name]} if name else {})
        | ({"birthDate": p.birth_date} if p.birth_date else {})
    )


def _observation(subject: str, code: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": code,
            "subject": {"reference": subject}} | value  # fmt: skip


def _vital_sign(subject: str, name: str, value: float, effective: str) -> dict[str, Any]:
    code, display, unit = _VITALS[name]
    quantity = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return _observation(
        subject,
        _coded(LOINC, code, display),
        {"category": [VITAL_SIGNS], "effectiveDateTime": effective, "valueQuantity": quantity},
    )


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def observations(subject: str, v: news2.Vitals, base: str, at: datetime) -> list[dict[str, Any]]:
    """The vital signs, ACVPU and the NEWS2 total, as Observations taken ``at``; the total's
    ``method`` names the SpO2 scale it was scored on, so the hospital reads the score as it
    was meant."""
    when = {"effectiveDateTime": at.isoformat(timespec="seconds")}
    out = [_vital_sign(subject, name, getattr(v, name), when["effectiveDateTime"])
           for name in _VITALS]  # fmt: skip
    out.append(_observation(subject, _coded(SNOMED, ACVPU_SCORE, "ACVPU scale score"),
                            when | {"valueString": v.consciousness}))  # fmt: skip
    out.append(_observation(subject, _coded(SNOMED, ON_AIR, "Breathing room air")
                            if not v.on_oxygen else _coded(SNOMED, ON_OXYGEN,
                                                           "Patient on oxygen"), when))  # fmt: skip
    total = {"value": news2.total(v), "unit": "score", "system": UCUM,
             "code": "{score}"}  # fmt: skip
    scale = _coded(base + SPO2_SCALES, str(v.spo2_scale), news2.SCALES[v.spo2_scale])
    out.append(_observation(subject, _coded(SNOMED, NEWS2_TOTAL, "NEWS2 total score"),
                            when | {"valueQuantity": total, "method": scale}))  # fmt: skip
    return out


def baseline_observations(subject: str, b: Baseline) -> list[dict[str, Any]]:
    """The usual readings given, as Observations of the day they were taken: the same codes
    as the readings now, in a section of their own (:data:`BASELINE`), which is what tells
    them apart."""
    day = b.recorded.isoformat()
    out = [_vital_sign(subject, name, value, day)
           for name in _VITALS if (value := getattr(b, name)) is not None]  # fmt: skip
    if b.consciousness is not None:
        out.append(
            _observation(
                subject,
                _coded(SNOMED, ACVPU_SCORE, "ACVPU scale score"),
                {"effectiveDateTime": day, "valueString": b.consciousness},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Claim:
    """A message's (first) NEWS2 total, where it stands, and the readings it says it was scored
    on; ``more`` are the entries of any other totals, which a message must not have."""

    entry: int
    total: object
    vitals: news2.Vitals | None
    more: tuple[int, ...] = ()
    #: The readings the total is scored on that the message lacks (``vitals`` is ``None``).
    missing: tuple[str, ...] = ()
    #: Readings the total cannot be checked on (``vitals`` is ``None``): each entry, and why
    #: (a second reading of a kind, air and oxygen being one; one Observation coded as two
    #: readings; a reading not in the unit it is scored in).
    unusable: tuple[tuple[int, str], ...] = ()


def _codes(concept: object, system: str | None) -> set[str]:
    """The codes a CodeableConcept holds in ``system`` (a code means nothing without it), or
    under any system (``None``)."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return {
        str(c.get("code")) for c in (codings if isinstance(codings, list) else [])
        if isinstance(c, dict) and system in (None, c.get("system"))
    }  # fmt: skip


def observed(observation: dict[str, Any]) -> object:
    """An Observation's number, as a quantity (as scr sends one) or an integer (as R4 allows
    a score to be sent); ``None`` when it has neither."""
    quantity = observation.get("valueQuantity")
    if isinstance(quantity, dict):
        return quantity.get("value")
    return observation.get("valueInteger")


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: The SNOMED-coded readings a NEWS2 total is scored from, by the kind each is (on oxygen
#: and breathing room air are one reading, either way).
_SCORED = {ACVPU_SCORE: "ACVPU scale score", ON_OXYGEN: "air or oxygen", ON_AIR: "air or oxygen"}


def _scale_2(method: object) -> bool:
    """Whether a total's ``method`` says SpO2 scale 2 (in scr's code system, whatever base the
    deployment that sent it serves it under)."""
    codings = method.get("coding") if isinstance(method, dict) else None
    return any(
        isinstance(c, dict) and str(c.get("system", "")).endswith(SPO2_SCALES)
        and c.get("code") == "2" for c in (codings if isinstance(codings, list) else [])
    )  # fmt: skip


def _reading(r: dict[str, Any], kind: str, snomed: set[str]) -> tuple[str, object] | str:
    """(what the reading gives, its value), or why it cannot be scored: a vital sign in its
    UCUM unit, an ACVPU letter, air or oxygen (one, not both)."""
    name = next((n for n, (_, shown, _) in _VITALS.items() if shown == kind), None)
    if name is not None:
        unit = _VITALS[name][2]
        given = r.get("valueQuantity")
        given = given if isinstance(given, dict) else {}
        code = _ANNOTATION.sub("", str(given.get("code", "")))  # {Breaths}/min is /min
        if given.get("system") != UCUM or code != unit:
            said = given.get("code") or given.get("unit") or "no unit"
            return f"{kind} is scored in {unit} (UCUM); this is in {said}"
        value = given.get("value")
        if not _number(value):
            return f"{kind} has no number"
        low, high = news2.PLAUSIBLE[name]
        if not low <= value <= high:
            # A slip the form refuses (SpO2 940 for 94) would be scored, and the total with it.
            return f"{kind} of {value} {unit} is outside what a person can have ({low}-{high})"
        return name, value
    if kind == "ACVPU scale score":
        level = r.get("valueString")
        if not isinstance(level, str) or level not in news2.ACVPU:
            return f"the ACVPU scale score is one of {', '.join(news2.ACVPU)}, not {level!r}"
        return "consciousness", level
    if {ON_OXYGEN, ON_AIR} <= snomed:
        return "one Observation says both on oxygen and breathing room air"
    return "oxygen", ON_OXYGEN in snomed


#: Observation statuses that say there is no result (entered in error is refused outright).
NO_RESULT = frozenset({"registered", "cancelled"})


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def usual_entries(entries: Sequence[Any]) -> frozenset[str]:
    """The fullUrls the :data:`BASELINE` section references, in any Composition (the rules
    refuse a message with two): read as they are, not trusted, as the rules run on them."""
    refs: set[str] = set()
    for entry in entries:
        r = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(r, dict) or r.get("resourceType") != "Composition":
            continue
        for section in _items(r.get("section")):
            if isinstance(section, dict) and BASELINE in _codes(section.get("code"), None):
                refs.update(
                    e["reference"] for e in _items(section.get("entry"))
                    if isinstance(e, dict) and isinstance(e.get("reference"), str)
                )  # fmt: skip
    return frozenset(refs)


def claimed_news2(entries: Sequence[Any]) -> Claim | None:
    """The NEWS2 total in a message's entries and, when each reading :func:`observations`
    writes is there once, coded in its own system and given in its own unit, those readings
    (else which are missing and which cannot be used): so a total is checked against what it
    was scored on, never against readings the sender chose among. The usual readings
    (:func:`usual_entries`) are not today's and are never scored. ``None`` when there is no
    total."""
    totals: list[tuple[int, object, bool]] = []
    found: dict[str, Any] = {}
    seen: set[str] = set()
    unusable: list[tuple[int, str]] = []
    loinc = {code: shown for code, shown, _ in _VITALS.values()}
    usual_urls = usual_entries(entries)
    for i, entry in enumerate(entries):
        r = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(r, dict) or r.get("resourceType") != "Observation":
            continue
        if isinstance(url := entry.get("fullUrl"), str) and url in usual_urls:
            continue
        snomed = _codes(r.get("code"), SNOMED)
        if NEWS2_TOTAL in _codes(r.get("code"), None):  # as any reader would take it
            totals.append((i, observed(r), _scale_2(r.get("method"))))
            if NEWS2_TOTAL not in snomed:
                unusable.append((i, f"a NEWS2 total is coded in SNOMED CT ({SNOMED})"))
        kinds = sorted({*(loinc[c] for c in _codes(r.get("code"), LOINC) & loinc.keys()),
                        *(k for c, k in _SCORED.items() if c in snomed)})  # fmt: skip
        if len(kinds) + (NEWS2_TOTAL in snomed) > 1:
            named = ", ".join([*kinds, *(["NEWS2 total"] if NEWS2_TOTAL in snomed else [])])
            unusable.append((i, f"one Observation is one reading; this is coded as {named}"))
        elif kinds and kinds[0] in seen:
            unusable.append((i, f"a NEWS2 total is scored on one {kinds[0]}; this is another"))
        elif kinds:
            read = _reading(r, kinds[0], snomed)
            if isinstance(read, str):
                unusable.append((i, read))
            else:
                found[read[0]] = read[1]
        seen.update(kinds)
        status = r.get("status")
        if (kinds or NEWS2_TOTAL in snomed) and isinstance(status, str) and status in NO_RESULT:
            # A reading never taken (or a total never scored) must not be triaged on.
            unusable.append((i, f"an Observation with status {status} has no result"))
    if not totals:
        return None
    (i, value, scale_2), *more = totals
    every = [*(shown for _, shown, _ in _VITALS.values()), "ACVPU scale score", "air or oxygen"]
    missing = tuple(k for k in every if k not in seen)
    vitals = None if missing or unusable else news2.Vitals(
        int(found["respiration_rate"]), int(found["spo2"]), bool(found["oxygen"]),
        int(found["systolic_bp"]), int(found["pulse"]), found["consciousness"],
        float(found["temperature"]), 2 if scale_2 else 1,
    )  # fmt: skip
    return Claim(i, value, vitals, tuple(j for j, _, _ in more), missing, tuple(unusable))


def readings(v: news2.Vitals, at: datetime) -> str:
    """The observations as the hospital reads them on screen and on paper, when they were
    taken first (readings of an hour ago are not the resident now), score last: a NEWS2 total
    alone hides which reading is wrong."""
    air = "on oxygen" if v.on_oxygen else "on air"
    return (
        f"Taken {written(at)}. "
        f"Respiration rate {v.respiration_rate}/min; SpO2 {v.spo2}% {air}; systolic blood "
        f"pressure {v.systolic_bp} mmHg; pulse {v.pulse}/min; consciousness "
        f"{news2.ACVPU[v.consciousness]}; temperature {v.temperature} °C. {news2.said(v)}"
    )


#: How each usual reading reads: (words, unit after the value).
_USUAL = {"respiration_rate": ("respiration rate", "/min"), "spo2": ("SpO2", "%"),
          "systolic_bp": ("systolic blood pressure", " mmHg"), "pulse": ("pulse", "/min"),
          "temperature": ("temperature", " °C")}  # fmt: skip


def usual(b: Baseline) -> str:
    """The usual readings as the hospital reads them, with the day they were taken."""
    said = [f"{words} {value}{unit}" for name, (words, unit) in _USUAL.items()
            if (value := getattr(b, name)) is not None]  # fmt: skip
    if b.consciousness is not None:
        said.append(f"consciousness {news2.ACVPU[b.consciousness]}")
    return f"Usual when well, recorded {b.recorded.isoformat()}: " + "; ".join(said)


def changes_of(statement: dict[str, Any]) -> list[tuple[int, object]]:
    """(coding index, code) of each coding of a MedicationStatement's ``category`` in scr's
    kinds of change, whatever base the deployment that sent it serves it under."""
    category = statement.get("category")
    codings = category.get("coding") if isinstance(category, dict) else None
    return [
        (j, c.get("code")) for j, c in enumerate(codings if isinstance(codings, list) else [])
        if isinstance(c, dict) and str(c.get("system", "")).endswith(MEDICINE_CHANGES)
    ]  # fmt: skip


def related_person(subject: str, c: Contact) -> dict[str, Any]:
    """A contact as UK Core's RelatedPerson, about the subject; what is blank is left out."""
    return (
        {"resourceType": "RelatedPerson", "patient": {"reference": subject},
         "name": [{"text": c.name}]}
        | ({"relationship": [{"text": c.relationship}]} if c.relationship else {})
        | ({"telecom": [{"system": "phone", "value": c.phone}]} if c.phone else {})
    )  # fmt: skip


def contact_text(c: Contact) -> str:
    """A contact as the Contacts section says it: ``Jane Smith (daughter) 07700 900123``."""
    return " ".join(
        filter(None, [c.name, f"({c.relationship})" if c.relationship else "", c.phone])
    )


def _given(m: Medicine) -> str:
    return written(m.last_dose) if m.last_dose else "not recorded"


#: What a list section says when the form listed nothing.
NOTHING = "None recorded"


def _lines(items: Sequence[str]) -> str:
    return "; ".join(items) or NOTHING


def transfer_message(
    form: TransferForm, *, sender: str, destination: str, now: datetime, base: str,
    header_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The unsigned ``care-home-transfer`` message for a completed form."""
    subject = urn()
    medicines = [
        {"resourceType": "MedicationStatement", "status": "active",
         "medicationCodeableConcept": {"text": m.name}, "subject": {"reference": subject}}
        | ({"effectiveDateTime": m.last_dose.isoformat(timespec="seconds"),
            "note": [{"text": "Last dose given"}]} if m.last_dose else {})
        for m in form.medicines
    ]  # fmt: skip
    allergies = [
        {"resourceType": "AllergyIntolerance", "code": {"text": a},
         "patient": {"reference": subject}}
        for a in form.allergies
    ]  # fmt: skip
    cpr = (
        [_observation(subject, _coded(SNOMED, *_CPR[form.for_cpr]), {})]
        if form.for_cpr is not None else []
    )  # fmt: skip
    vitals = form.vitals
    at = form.observed_at or now
    baseline = (
        [Section(BASELINE, "Baseline observations", usual(form.baseline),
                 baseline_observations(subject, form.baseline))]
        if form.baseline is not None else []
    )  # fmt: skip
    sections = [
        Section("person-demographics", "Person demographics",
                f"{form.person.given} {form.person.family}, born {form.person.birth_date}, "
                f"NHS number {form.person.nhs_number}"
                + (f"; GP practice {form.person.gp_practice}" if form.person.gp_practice else "")),
        Section(REASON, "Reason for transfer", form.reason),
        Section("observations", "Observations", readings(vitals, at),
                observations(subject, vitals, base, at)),
        *baseline,
        Section("allergies-and-adverse-reaction", "Allergies and adverse reactions",
                _lines(form.allergies), allergies),
        Section("medications-and-medical-devices", "Medications",
                _lines([f"{m.name} (last dose {_given(m)})" for m in form.medicines]),
                medicines),
        Section("advance-decisions-about-treatment", "Advance decisions",
                "; ".join(filter(None, [None if form.for_cpr is None else _CPR[form.for_cpr][1],
                                        form.advance_decisions])), cpr),
        Section("legal-information", "Legal information", form.legal),
        Section("about-me", "About me", form.about_me),
        Section("contact-for-further-information", "Contacts",
                "; ".join(contact_text(c) for c in form.contacts),
                [related_person(subject, c) for c in form.contacts]),
        Section("infection-status", "Infection status", form.infection_status),
        Section("belongings", "What is in the bag", _lines(form.belongings)),
        Section("person-completing-record", "Person completing the record", form.completed_by),
    ]  # fmt: skip
    return build(
        "care-home-transfer", sender=sender, destination=destination,
        patient=patient(form.person), patient_url=subject, sections=sections,
        author=form.completed_by, now=now, base=base, header_id=header_id,
    )  # fmt: skip


def discharge_message(
    form: DischargeForm, *, sender: str, destination: str, transfer_id: str, now: datetime,
    base: str, header_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The unsigned ``hospital-discharge`` message closing transfer ``transfer_id``."""
    subject = urn()
    diagnoses = [
        {"resourceType": "Condition", "code": {"text": d}, "subject": {"reference": subject}}
        for d in form.diagnoses
    ]
    changed = (("started", form.started), ("stopped", form.stopped),
               ("changed", form.changed))  # fmt: skip
    changes = "; ".join(f"{kind.capitalize()}: {_lines(items)}" for kind, items in changed)
    if form.no_medicine_changes and not any(items for _, items in changed):
        changes = NO_CHANGES
    # one statement a medicine, its kind of change coded, so a care-home system can update
    # its medicines record from them: the narrative joins them for people, and a line may
    # hold "; " itself
    statements = [
        {"resourceType": "MedicationStatement", "status": CHANGES[kind][1],
         "category": _coded(base + MEDICINE_CHANGES, kind, CHANGES[kind][0]),
         "medicationCodeableConcept": {"text": item}, "subject": {"reference": subject},
         "note": [{"text": CHANGES[kind][0]}]}
        for kind, items in changed for item in items
    ]  # fmt: skip
    sections = [
        Section("discharge-details", "Discharge details", _lines(form.diagnoses), diagnoses),
        Section("medications-and-medical-devices", "Medication changes", changes, statements),
        Section("plan-and-requested-actions", "Follow-up actions", form.follow_up),
        Section("belongings", "Belongings returned", _lines(form.belongings_returned)),
    ]
    return build(
        "hospital-discharge", sender=sender, destination=destination,
        patient=patient(form.person), patient_url=subject, sections=sections,
        author=form.completed_by, now=now, base=base, header_id=header_id,
        transfer_id=transfer_id,
    )  # fmt: skip


def acknowledgement_message(
    person: Person, *, sender: str, destination: str, transfer_id: str, completed_by: str,
    now: datetime, base: str, header_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The unsigned ``transfer-acknowledgement`` of transfer ``transfer_id``: the Patient and a
    Composition naming the transfer, with no sections (a receipt carries no clinical content)."""
    subject = urn()
    return build(
        "transfer-acknowledgement", sender=sender, destination=destination,
        patient=patient(person), patient_url=subject, sections=(), author=completed_by,
        now=now, base=base, header_id=header_id, transfer_id=transfer_id,
    )  # fmt: skip
