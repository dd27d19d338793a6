"""Who exists, where they are known, and how each source gets their details slightly wrong.

A :class:`Person` holds the true identity, which sources hold a record of them, and one
:class:`Demographics` per source as that source has it. Noise (a missing or mistyped NHS
number, another spelling, an old address, a maiden name, a day/month swap) is applied to one
source's view only and labelled, so ``truth.json`` says what a matcher should have coped with.
People come in households (units): mostly one person, sometimes twins, or a father and son of
the same name at one address. Units are yielded one at a time: nothing is kept between them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from adapters.synth import names, rates
from adapters.synth.catalogue import CARE_HOMES, Org
from adapters.synth.nhs import NhsNumbers, mistype
from adapters.synth.rates import EXTRACT_DATE

GP_STYLES = ("systmone", "emis")
#: Cases only a person held by two or more sources can show.
_IDENTITY_CASES = frozenset(
    {
        "name_variant",
        "moved_address",
        "married_name_change",
        "transposed_dob",
        "mistyped_nhs_number",
    }
)
_COUNCIL_CASES = frozenset({"restricted", "safeguarding", "care_home"})
_SOLO_CASES = frozenset({"married_name_change", "transposed_dob"})


@dataclass
class Demographics:
    """A person's details as one source (or the truth) holds them."""

    title: str
    first: str
    middle: str
    surname: str
    previous_surname: str
    sex: str
    dob: date
    dod: date | None
    #: Blank when the source has no NHS number.
    nhs: str
    nhs_verified: bool
    address: names.Address


@dataclass(frozen=True)
class Registration:
    style: str
    start: date
    end: date | None


@dataclass
class Person:
    pid: str
    truth: Demographics
    registrations: list[Registration]
    council: bool
    views: dict[str, Demographics] = field(default_factory=dict)
    #: The previous home, when the person moved house (kept in address history).
    old_address: names.Address | None = None
    moved_home_on: date | None = None
    care_home: Org | None = None
    care_home_since: date | None = None
    restricted: bool = False
    safeguarding: bool = False
    #: Clinical-record hard cases the record generator must realise.
    record_cases: set[str] = field(default_factory=set)
    cases: list[str] = field(default_factory=list)

    @property
    def age(self) -> int:
        on = self.truth.dod or EXTRACT_DATE
        dob = self.truth.dob
        return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))

    @property
    def gp_styles(self) -> list[str]:
        return [r.style for r in self.registrations]

    def registration(self, style: str) -> Registration:
        return next(r for r in self.registrations if r.style == style)

    def holds(self, style: str, when: date) -> bool:
        """Whether a practice holds an entry of this date: the one left stops at the move."""
        end = self.registration(style).end
        return end is None or when <= end

    def label(self, case: str) -> None:
        if case not in self.cases:
            self.cases.append(case)


@dataclass(frozen=True)
class Unit:
    """One household's people, and the case groups that tie them together (twins, etc.)."""

    people: list[Person]
    groups: list[tuple[str, list[str]]]


def _between(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _years_before(on: date, years: int) -> date:
    try:
        return on.replace(year=on.year - years)
    except ValueError:  # 29 February
        return on.replace(year=on.year - years, day=28)


def _age(rng: random.Random, forced: set[str]) -> int:
    if "care_home" in forced:
        return rng.randint(75, 99)
    bands: tuple[tuple[int, int, float], ...] = rates.AGE_BANDS
    if forced & (_IDENTITY_CASES | _COUNCIL_CASES | {"sensitive_code", "moved_practice"}):
        bands = tuple(b for b in bands if b[0] >= 18)
    low, high, _ = rng.choices(bands, weights=[b[2] for b in bands])[0]
    return rng.randint(low, high)


def _dob(rng: random.Random, age: int) -> date:
    return _years_before(EXTRACT_DATE, age) - timedelta(days=rng.randrange(1, 365))


def _title(rng: random.Random, sex: str, age: int) -> str:
    if age < 18 or sex == "U":
        return ""
    return rng.choice(names.TITLES[sex])


def _demographics(
    rng: random.Random,
    nhs: NhsNumbers,
    sex: str,
    dob: date,
    surname: str,
    home: names.Address,
    first: str | None = None,
) -> Demographics:
    age = EXTRACT_DATE.year - dob.year
    dies = rng.random() < rates.DECEASED_RATE * (3 if age >= 75 else 0.5)
    return Demographics(
        title=_title(rng, sex, age),
        first=first or names.first_name(rng, "F" if sex == "U" else sex),
        middle=names.first_name(rng, "F" if sex == "U" else sex) if rng.random() < 0.5 else "",
        surname=surname,
        previous_surname="",
        sex=sex,
        dob=dob,
        dod=_between(rng, max(dob, EXTRACT_DATE - timedelta(days=900)), EXTRACT_DATE)
        if dies
        else None,
        nhs=nhs.issue(),
        nhs_verified=True,
        address=home,
    )


def _sex(rng: random.Random, forced: set[str]) -> str:
    if "married_name_change" in forced:
        return "F"
    r = rng.random()
    return "U" if r < 0.003 else ("M" if r < 0.5 else "F")


class Population:
    """Yields households until ``n`` people exist, placing forced cases through the run."""

    def __init__(self, rng: random.Random, n: int, nhs: NhsNumbers) -> None:
        self._rng = rng
        self._n = n
        self._nhs = nhs
        self._plan: dict[int, set[str]] = {}
        slots = len(rates.FORCED_CASES)
        for j, case in enumerate(rates.FORCED_CASES):
            self._plan.setdefault((j * n) // slots, set()).add(case)

    def __iter__(self) -> Iterator[Unit]:
        made = 0
        while made < self._n:
            unit = self._unit(made)
            made += len(unit.people)
            yield unit

    def _forced(self, index: int) -> set[str]:
        return set(self._plan.get(index, ()))

    def _unit(self, index: int) -> Unit:
        rng = self._rng
        forced = self._forced(index)
        roll = rng.random()
        # Natural households avoid places planned for a married-name change or a date swap,
        # which a household cannot show (they would break the shared surname and birth date).
        natural = not (forced | self._forced(index + 1)) & _SOLO_CASES
        if index + 1 < self._n:
            if "twin" in forced or (natural and roll < rates.TWIN_RATE):
                return self._twins(index, forced - {"twin"})
            fathers = rates.TWIN_RATE <= roll < rates.TWIN_RATE + rates.FATHER_SON_RATE
            if "father_son_same_name" in forced or (natural and fathers):
                return self._father_and_son(index, forced - {"father_son_same_name"})
        forced -= {"twin", "father_son_same_name"}
        sex = _sex(rng, forced)
        age = _age(rng, forced)
        truth = _demographics(
            rng, self._nhs, sex, _dob(rng, age), rng.choice(names.SURNAMES), names.address(rng)
        )
        return Unit([self._person(index, truth, forced)], [])

    def _twins(self, index: int, forced: set[str]) -> Unit:
        rng = self._rng
        age = _age(rng, forced)
        dob = _dob(rng, age)
        surname = rng.choice(names.SURNAMES)
        home = names.address(rng)
        first = _demographics(rng, self._nhs, _sex(rng, forced), dob, surname, home)
        if rng.random() < rates.TWIN_DOB_DIFFERS_SHARE:
            dob += timedelta(days=1)
        second_sex = _sex(rng, set())
        second_name = names.other_first_name(
            rng, "F" if second_sex == "U" else second_sex, first.first
        )
        second = _demographics(rng, self._nhs, second_sex, dob, surname, home, second_name)
        elder = self._person(index, first, forced | {"twin"}, household=True)
        younger = self._person(
            index + 1,
            second,
            self._forced(index + 1) | {"twin"},
            household=True,
            practice=elder.registrations[-1].style,
        )
        return Unit([elder, younger], [("twin", [elder.pid, younger.pid])])

    def _father_and_son(self, index: int, forced: set[str]) -> Unit:
        rng = self._rng
        son_age = rng.randint(18, 34)
        father_age = son_age + rng.randint(22, 38)
        surname = rng.choice(names.SURNAMES)
        home = names.address(rng)
        first_name = names.first_name(rng, "M")
        father = _demographics(
            rng, self._nhs, "M", _dob(rng, father_age), surname, home, first_name
        )
        son = _demographics(rng, self._nhs, "M", _dob(rng, son_age), surname, home, first_name)
        label = {"father_son_same_name"}
        dad = self._person(index, father, forced | label, household=True)
        junior = self._person(
            index + 1,
            son,
            self._forced(index + 1) | label,
            household=True,
            practice=dad.registrations[-1].style,
        )
        return Unit([dad, junior], [("father_son_same_name", [dad.pid, junior.pid])])

    def _person(
        self,
        index: int,
        truth: Demographics,
        forced: set[str],
        *,
        household: bool = False,
        practice: str | None = None,
    ) -> Person:
        rng = self._rng
        person = Person(f"P{index + 1:06d}", truth, [], council=False)
        for case in ("twin", "father_son_same_name"):
            if case in forced:
                person.label(case)
        if household:
            forced -= _SOLO_CASES
        adult = person.age >= 18
        needs_two = bool(forced & _IDENTITY_CASES)
        council_rate = rates.by_age(rates.COUNCIL_RATE_BY_AGE, person.age)
        person.council = adult and (
            rng.random() < council_rate
            or bool(forced & (_COUNCIL_CASES | _IDENTITY_CASES))
            or "missing_nhs_number" in forced
        )
        self._register(person, forced, practice, moved=not person.council and needs_two)
        if "transposed_dob" in forced:
            dob = truth.dob
            day = rng.choice([d for d in range(1, 13) if d != dob.month])
            truth.dob = dob.replace(day=day)
        person.views = {
            s: replace(truth)
            for s in [*person.gp_styles, "council"]
            if s != "council" or person.council
        }
        _identity_noise(rng, person, forced, household=household)
        self._council_facts(person, forced)
        for case, rate in rates.RECORD_CASE_RATES.items():
            possible = _record_case_possible(person, case)
            if possible and (case in forced or rng.random() < rate):
                person.record_cases.add(case)
                person.label(case)
        return person

    def _register(
        self, person: Person, forced: set[str], practice: str | None, *, moved: bool
    ) -> None:
        rng = self._rng
        dob = person.truth.dob
        end_of_life = person.truth.dod or EXTRACT_DATE
        first_style = practice or ("systmone" if rng.random() < rates.SYSTMONE_SHARE else "emis")
        if "unknown_code" in forced:
            first_style = "systmone"
        elif "partial_date" in forced:
            first_style = "emis"
        start = _between(rng, max(dob, date(1990, 1, 1)), end_of_life - timedelta(days=400))
        moved = (
            moved
            or "moved_practice" in forced
            or {"unknown_code", "partial_date"} <= forced
            or rng.random() < rates.MOVED_PRACTICE_RATE
        )
        if not moved or end_of_life - start < timedelta(days=800):  # too short a life to move
            person.registrations = [Registration(first_style, start, None)]
            return
        # Leave after a year there, and after the extracts' history starts (so both hold some).
        earliest = max(start, rates.HISTORY_START) + timedelta(days=365)
        left = _between(rng, earliest, end_of_life - timedelta(days=120))
        other = "emis" if first_style == "systmone" else "systmone"
        person.registrations = [
            Registration(first_style, start, left),
            Registration(other, left + timedelta(days=rng.randint(1, 21)), None),
        ]
        person.label("moved_practice")

    def _council_facts(self, person: Person, forced: set[str]) -> None:
        if not person.council:
            return
        rng = self._rng
        rate = rates.CARE_HOME_RATE_75_PLUS if person.age >= 75 else rates.CARE_HOME_RATE_UNDER_75
        if "care_home" in forced or rng.random() < rate:
            person.care_home = rng.choice(CARE_HOMES)
            end = person.truth.dod or EXTRACT_DATE
            person.care_home_since = _between(rng, end - timedelta(days=1500), end)
            person.label("care_home")
        if "restricted" in forced or rng.random() < rates.RESTRICTED_RATE:
            person.restricted = True
            person.label("restricted")
        if "safeguarding" in forced or rng.random() < rates.SAFEGUARDING_RATE:
            person.safeguarding = True
            person.label("safeguarding")


def _record_case_possible(person: Person, case: str) -> bool:
    """Partial dates are EMIS's, unknown codes SystmOne's; sensitive codes adults' (16+)."""
    if case == "partial_date":
        return "emis" in person.gp_styles
    if case == "unknown_code":
        return "systmone" in person.gp_styles
    return case != "sensitive_code" or person.age >= 16


def _other_view(person: Person) -> str | None:
    """The source whose view may differ from the current practice's: council, else the old GP."""
    if person.council:
        return "council"
    if len(person.registrations) > 1:
        return person.registrations[0].style
    return None


def _identity_noise(
    rng: random.Random, person: Person, forced: set[str], *, household: bool
) -> None:
    views = person.views
    other = _other_view(person)
    current_gp = person.registrations[-1].style

    # NHS number: missing (council often), mistyped (one source), unverified (GP trace status).
    missing = False
    if person.council and rng.random() < rates.COUNCIL_MISSING_NHS_RATE:
        views["council"].nhs = ""
        missing = True
    for style in person.gp_styles:
        if rng.random() < rates.GP_MISSING_NHS_RATE:
            views[style].nhs, views[style].nhs_verified = "", False
            missing = True
    if "missing_nhs_number" in forced and not missing:
        target = "council" if person.council else current_gp
        views[target].nhs, views[target].nhs_verified = "", False
        missing = True
    if missing:
        person.label("missing_nhs_number")
    holders = [s for s in (other, current_gp) if s and views[s].nhs]
    if (
        other
        and holders
        and ("mistyped_nhs_number" in forced or rng.random() < rates.MISTYPED_NHS_RATE)
    ):
        views[holders[0]].nhs = mistype(rng, person.truth.nhs)
        views[holders[0]].nhs_verified = False
        person.label("mistyped_nhs_number")
    unverified = [s for s in person.gp_styles if views[s].nhs and not views[s].nhs_verified]
    for style in person.gp_styles:
        if views[style].nhs and rng.random() < rates.UNVERIFIED_NHS_RATE:
            views[style].nhs_verified = False
            unverified.append(style)
    numbered = [s for s in person.gp_styles if views[s].nhs]
    if "unverified_nhs_number" in forced and numbered and not unverified:
        views[numbered[-1]].nhs_verified = False
        unverified.append(numbered[-1])
    if unverified:
        person.label("unverified_nhs_number")
    if other is None:
        return

    view = views[other]
    if "name_variant" in forced or rng.random() < rates.NAME_VARIANT_RATE:
        view.first, view.surname = names.variant(rng, view.first, view.surname)
        person.label("name_variant")
    if "moved_address" in forced or rng.random() < rates.MOVED_ADDRESS_RATE:
        person.old_address = names.address(rng)
        person.moved_home_on = _between(
            rng,
            max(person.truth.dob, EXTRACT_DATE - timedelta(days=2000)),
            EXTRACT_DATE - timedelta(days=60),
        )
        view.address = person.old_address
        person.label("moved_address")
    eligible = person.truth.sex == "F" and person.age >= 20 and not household
    if eligible and ("married_name_change" in forced or rng.random() < rates.MARRIED_NAME_RATE):
        maiden = rng.choice([s for s in names.SURNAMES if s != person.truth.surname])
        person.truth.previous_surname = maiden
        for style, held in views.items():
            if style == other:
                held.surname = maiden
            else:
                held.previous_surname = maiden
        person.label("married_name_change")
    dob = person.truth.dob
    swappable = dob.day <= 12 and dob.day != dob.month
    if swappable and ("transposed_dob" in forced or rng.random() < rates.TRANSPOSED_DOB_RATE):
        view.dob = dob.replace(month=dob.day, day=dob.month)
        person.label("transposed_dob")
