"""A person's GP record, independent of any supplier's format.

The record is generated once per person and each GP style writes the part it holds: the
practice the person left holds what was recorded before they left; the current practice holds
the whole history (transferred with the patient). Concepts a style cannot code (no CTV3 code
for SystmOne, no SNOMED concept for EMIS) are left out of that style's extract. The record-level
hard cases chosen for the person (a partial date, an unknown code, a deleted row, a
confidential item, a sensitive code) are realised here on specific entries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from adapters.synth import catalogue as cat
from adapters.synth import names, rates
from adapters.synth.people import Person
from adapters.synth.rates import EXTRACT_DATE, HISTORY_START


@dataclass
class Visit:
    """A consultation: when, with which clinician (index), in which way."""

    when: date
    minute_of_day: int
    clinician: int
    kind: str
    confidential: bool = False


@dataclass
class Event:
    """One coded entry: an observation, a value, a problem, an allergy or family history."""

    concept: cat.Concept
    when: date
    value: str = ""
    visit: int | None = None
    problem: bool = False
    significant: bool = False
    ended: date | None = None
    #: Index (in the record's events) of the problem this entry was recorded against.
    problem_of: int | None = None
    allergy_drug: str | None = None
    family_history: bool = False
    #: Written by this style only (SystmOne's journal copy of an allergy), else by any.
    only: str | None = None
    deleted: bool = False
    confidential: bool = False
    #: EMIS date precision: ``YMD``, ``YM`` or ``Y`` (the date is written in full regardless).
    precision: str = "YMD"
    #: SystmOne writes the row with its CTV3 code only (the map must supply SNOMED).
    ctv3_only: bool = False
    #: SystmOne: recorded by another organisation sharing the record.
    shared: bool = False


@dataclass
class Course:
    """A medication course: one drug, its issues (a repeat is issued several times)."""

    drug: cat.Drug
    start: date
    repeat: bool
    issues: list[date]
    cancelled: date | None
    problem_of: int | None


@dataclass
class Contact:
    name: str
    relationship: str
    phone: str
    next_of_kin: bool
    carer: bool
    key_holder: bool


@dataclass
class Note:
    start: date
    expires: date | None
    kind: str
    text: str


@dataclass
class Record:
    visits: list[Visit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    courses: list[Course] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


_NOTES = (
    ("Alert", "Key safe by the back door; daughter holds the code."),
    ("Alert", "Hard of hearing: please face the patient when speaking."),
    ("Special Note", "Pays £25 a week for a cleaner; family manage her money."),
    ("Special Note", "Prefers morning appointments; lives alone with two dogs."),
    ("Special Note", "Lasting power of attorney (health and welfare) held by son."),
    ("Alert", "Carer visits twice a day; £10 float kept for shopping."),
)
_RELATIONSHIPS = {
    "child": ("Mother", "Father"),
    "adult": ("Wife", "Husband", "Partner", "Sister", "Brother", "Friend", "Neighbour"),
    "older": ("Daughter", "Son", "Wife", "Husband", "Neighbour", "Niece", "Nephew"),
}
#: Consultation kinds; home visits only for people aged 75 or over.
_VISIT_KINDS = (
    "Surgery consultation",
    "Surgery consultation",
    "Surgery consultation",
    "Telephone consultation",
    "Home visit",
)


def _day(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _value(rng: random.Random, concept: cat.Concept, shift: float = 0.0) -> str:
    low, high = concept.low + shift, concept.high + shift
    return f"{rng.uniform(low, high):.{concept.decimals}f}"


class RecordBuilder:
    """Builds one person's record; every choice comes from the run's seeded RNG."""

    def __init__(self, rng: random.Random, person: Person) -> None:
        self.rng = rng
        self.person = person
        self.start = max(HISTORY_START, person.truth.dob)
        self.end = person.truth.dod or EXTRACT_DATE
        self.styles = person.gp_styles
        self.record = Record()

    def _codable(self, concept: cat.Concept) -> bool:
        return any(concept.available_in(s) for s in self.styles)

    def _add(self, event: Event) -> int:
        self.record.events.append(event)
        return len(self.record.events) - 1

    def build(self) -> Record:
        problems = self._conditions()
        self._visits(problems)
        self._lifestyle()
        self._allergies()
        self._medicines(problems)
        self._contacts()
        self._notes()
        self._hard_cases()
        for event in self.record.events:
            event.ctv3_only = self.rng.random() < rates.CTV3_ONLY_ROW_RATE
            event.shared = self.rng.random() < rates.SHARED_ROW_RATE
        return self.record

    def _conditions(self) -> dict[str, int]:
        """Problems by condition key → index of the problem event."""
        rng = self.rng
        found: dict[str, int] = {}
        for condition in cat.CONDITIONS:
            concept = condition.concept
            if not all(concept.available_in(s) for s in self.styles):
                continue
            if rng.random() >= rates.by_age(condition.prevalence, self.person.age):
                continue
            onset = _day(rng, self.start, self.end - timedelta(days=30))
            ended = None
            if concept.key in ("asthma", "depression", "anxiety") and rng.random() < 0.2:
                ended = _day(rng, onset + timedelta(days=60), self.end)
            found[concept.key] = self._add(
                Event(concept, onset, problem=True, significant=rng.random() < 0.7, ended=ended)
            )
        return found

    def _visits(self, problems: dict[str, int]) -> None:
        rng = self.rng
        count = rng.randint(*rates.VISITS)
        days = sorted(_day(rng, self.start, self.end) for _ in range(count))
        hypertensive = "hypertension" in problems
        for when in days:
            kind = rng.choice(_VISIT_KINDS if self.person.age >= 75 else _VISIT_KINDS[:-1])
            self.record.visits.append(
                Visit(when, rng.randint(8 * 60, 18 * 60 - 10), rng.randrange(4), kind)
            )
            visit = len(self.record.visits) - 1
            if self.person.age >= 16 and kind != "Telephone consultation":
                shift = 12.0 if hypertensive else 0.0
                for concept in (cat.SYSTOLIC, cat.DIASTOLIC):
                    self._add(
                        Event(
                            concept,
                            when,
                            _value(rng, concept, shift),
                            visit,
                            problem_of=problems.get("hypertension"),
                        )
                    )
                if rng.random() < 0.5:
                    for concept in (cat.WEIGHT, cat.BMI) + (
                        (cat.HEIGHT,) if rng.random() < 0.3 else ()
                    ):
                        self._add(Event(concept, when, _value(rng, concept), visit))
            if "t2dm" in problems and when >= self.record.events[problems["t2dm"]].when:
                self._add(
                    Event(
                        cat.HBA1C, when, _value(rng, cat.HBA1C), visit, problem_of=problems["t2dm"]
                    )
                )
            if rng.random() < 0.3 and self._codable(cat.MEDICATION_REVIEW):
                self._add(Event(cat.MEDICATION_REVIEW, when, visit=visit))

    def _lifestyle(self) -> None:
        rng = self.rng
        if self.person.age < 16:
            return
        status = rng.choices(cat.SMOKING, weights=(0.15, 0.55, 0.3))[0]
        for _ in range(rng.randint(*rates.LIFESTYLE_RECORDS)):
            when = _day(rng, self.start, self.end)
            self._add(Event(status, when))
            if rng.random() < 0.5:
                self._add(Event(cat.ALCOHOL, when, _value(rng, cat.ALCOHOL)))
        for concept in cat.FAMILY_HISTORY:
            if rng.random() < 0.2:
                self._add(Event(concept, _day(rng, self.start, self.end), family_history=True))

    def _allergies(self) -> None:
        rng = self.rng
        chosen = rng.sample(cat.ALLERGY_CODES, rng.randint(*rates.ALLERGIES))
        for concept, drug in chosen:
            when = _day(rng, self.start, self.end)
            self._add(Event(concept, when, allergy_drug=drug))
            if drug:  # SystmOne also codes a drug allergy in the journal
                self._add(Event(cat.DRUG_ALLERGY, when, only="systmone"))

    def _medicines(self, problems: dict[str, int]) -> None:
        rng = self.rng
        avoid = {e.allergy_drug for e in self.record.events if e.allergy_drug}
        wanted: list[tuple[str, int | None]] = []
        for condition in cat.CONDITIONS:
            index = problems.get(condition.concept.key)
            if index is not None:
                wanted += [(d, index) for d in condition.drugs if rng.random() < 0.8]
        target = rng.randint(*rates.MEDICATION_COURSES)
        while len(wanted) < target:
            wanted.append((rng.choice(cat.GENERAL_DRUGS), None))
        for key, problem in wanted:
            if key in avoid:
                continue
            after = self.record.events[problem].when if problem is not None else self.start
            start = _day(rng, after, self.end - timedelta(days=14))
            repeat = problem is not None or rng.random() < 0.4
            issues = [start]
            if repeat:
                for _ in range(rng.randint(*rates.REPEAT_ISSUES) - 1):
                    following = issues[-1] + timedelta(days=rng.randint(28, 60))
                    if following > self.end:
                        break
                    issues.append(following)
            cancelled = None
            if repeat and rng.random() < 0.25:
                cancelled = issues[-1] + timedelta(days=rng.randint(1, 28))
                cancelled = min(cancelled, self.end)
            self.record.courses.append(
                Course(cat.DRUGS[key], start, repeat, issues, cancelled, problem)
            )

    def _contacts(self) -> None:
        rng = self.rng
        age = self.person.age
        group = "child" if age < 18 else ("older" if age >= 65 else "adult")
        for i in range(rng.randint(*rates.CONTACTS)):
            relationship = rng.choice(_RELATIONSHIPS[group])
            sex = "F" if relationship in ("Mother", "Wife", "Sister", "Daughter", "Niece") else "M"
            surname = (
                self.person.truth.surname
                if relationship != "Neighbour"
                else rng.choice(names.SURNAMES)
            )
            self.record.contacts.append(
                Contact(
                    name=f"{names.first_name(rng, sex)} {surname}",
                    relationship=relationship,
                    phone=names.mobile(rng) if rng.random() < 0.6 else names.landline(rng),
                    next_of_kin=i == 0,
                    carer=age >= 65 and rng.random() < 0.4,
                    key_holder=age >= 65 and rng.random() < 0.3,
                )
            )

    def _notes(self) -> None:
        rng = self.rng
        if rng.random() >= rates.SPECIAL_NOTE_RATE:
            return
        kind, text = rng.choice(_NOTES)
        start = _day(rng, self.start, self.end)
        expires = start + timedelta(days=365) if rng.random() < 0.3 else None
        self.record.notes.append(Note(start, expires, kind, text))

    def _hard_cases(self) -> None:
        rng, cases = self.rng, self.person.record_cases
        events = self.record.events
        if "unknown_code" in cases:
            self._add(Event(cat.UNMAPPED, _day(rng, self.start, self._held_until("systmone"))))
        if "sensitive_code" in cases:
            onset = _day(rng, self.start, self.end - timedelta(days=60))
            self._add(
                Event(
                    cat.SYPHILIS,
                    onset,
                    problem=True,
                    significant=False,
                    ended=_day(rng, onset + timedelta(days=30), self.end),
                )
            )
        if "partial_date" in cases:
            until = self._held_until("emis")
            history = [e for e in events if e.family_history and e.when <= until]
            if not history:
                when = _day(rng, self.start, until)
                added = self._add(Event(rng.choice(cat.FAMILY_HISTORY), when, family_history=True))
                history = [events[added]]
            for event in history:
                event.precision = rng.choice(("Y", "YM"))
        # Flag entries every style can code, so each extract holding the person shows them.
        if "deleted_row" in cases:
            rng.choice(self._everywhere()).deleted = True
        if "confidential_item" in cases:
            target = rng.choice(self._everywhere())
            target.confidential = True
            if target.visit is not None:
                self.record.visits[target.visit].confidential = True
                for event in events:
                    event.confidential = event.confidential or event.visit == target.visit

    def _held_until(self, style: str) -> date:
        """The last date a style's practice holds: the day the person left it, else the end."""
        return self.person.registration(style).end or self.end

    def _everywhere(self) -> list[Event]:
        """Entries every style of this person can code; adds a BMI reading if there are none."""
        found = [
            e
            for e in self.record.events
            if e.only is None
            and not e.problem
            and all(e.concept.available_in(s) for s in self.styles)
        ]
        if not found:
            when = _day(self.rng, self.start, self.end)
            found = [self.record.events[self._add(Event(cat.BMI, when, _value(self.rng, cat.BMI)))]]
        return found


def build_record(rng: random.Random, person: Person) -> Record:
    return RecordBuilder(rng, person).build()
