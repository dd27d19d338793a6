"""What a nurse typed on the transfer form: the form to send, or what is wrong with it (pure).

Every value is checked here, before a review, so that what the review shows is what is sent and
what the message rules would refuse (a time of last dose as a nurse writes it, a birth date with
a space) is caught on the form, at its field, in words a nurse can act on. A field with nothing
visible in it (spaces, a zero-width character) is blank. What the hospital's discharge form
must say is checked here too (:func:`unsaid`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

from adapters.values import UK as _UK
from consent.policy import readable
from engine.transfer import news2
from engine.transfer.form import (
    Baseline,
    Contact,
    DischargeForm,
    Medicine,
    Person,
    TransferForm,
    written,
)

#: A problem: the field it is about (``None``: the message as a whole) and what to do, in the
#: words of the error summary that links to the field.
Problem = tuple[str | None, str]
#: The observations, by field, as the messages name them.
READINGS = {
    "respiration_rate": "respiration rate",
    "spo2": "SpO2",
    "systolic_bp": "systolic blood pressure",
    "pulse": "pulse",
    "temperature": "temperature",
}
#: The rest of what NEWS2 is scored on, by field.
_OBSERVED = ("consciousness", "on_oxygen", "spo2_scale")
#: What NEWS2 needs typed or chosen, in the order the form asks it.
_ASKED = (
    *((n, READINGS[n]) for n in ("respiration_rate", "spo2", "systolic_bp", "pulse")),
    ("consciousness", "level of consciousness"),
    ("temperature", READINGS["temperature"]),
)
#: A reading as a nurse types one: digits (a decimal point in a temperature), nothing else
#: Python's own reading lets through (``9_8``, other scripts' digits).
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
#: About me, by field, as the contract lists it: what a hospital needs to care for the person
#: as themselves. Each is optional, and the section says each given under its heading.
ABOUT_ME = {
    "about_communication": "Communication",
    "about_matters": "What matters to me",
    "about_support": "How to support me",
    "about_mobility": "Mobility",
    "about_eating": "Eating and drinking",
    "about_continence": "Continence",
    "about_cognition": "Cognition",
}
#: What a red bag usually carries, ticked on the form: the rest is typed, one a line.
BAG = (
    "Medicines and MAR chart",
    "Day-of-discharge clothes",
    "Glasses",
    "Hearing aids",
    "Dentures",
    "Walking aid",
)
#: The oldest a person is taken to be: an older birth date is a slip of the keyboard.
OLDEST_YEARS = 120
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ZONE = r"(?:\s*(GMT|BST))?"
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.]([0-5]\d)" + _ZONE, re.I)
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T]([01]?\d|2[0-3])[:.]([0-5]\d)" + _ZONE, re.I)
_TIME_FORMAT = "as a time such as 08:00, or a date and time such as 2026-12-05 08:00"


def blank(text: str) -> bool:
    """Nothing a person could see, as a reason is judged (``consent.policy.readable``): only
    spaces, controls, format characters, marks with nothing under them or blank letters."""
    return not readable(text)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if not blank(line)]


def _reading(text: str, name: str, problems: list[Problem], usual: bool = False) -> float:
    """A reading as typed, or 0 with the problem: not a number, or not one a person can have.
    A usual reading (``usual``) is asked at its own field, ``usual_<name>``."""
    what = ("usual " if usual else "") + READINGS[name]
    field = f"usual_{name}" if usual else name
    low, high = news2.PLAUSIBLE[name]
    whole = name != "temperature"
    if not (_WHOLE if whole else _DECIMAL).fullmatch(text):
        kind = "a whole number" if whole else "a number such as 37.2"
        problems.append((field, f"Enter the {what} as {kind}"))
        return 0.0
    value = float(text)
    if not low <= value <= high:
        problems.append(
            (field, f"Enter the {what} between {low:g} and {high:g}: check the reading")
        )
    return value


def _birth_date(text: str, today: date, problems: list[Problem]) -> None:
    try:
        born = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:
        born = None
    if born is None:
        problems.append(("born", "Enter the date of birth as YYYY-MM-DD, such as 1932-04-01"))
    elif born >= today:
        problems.append(("born", "The date of birth must be before today"))
    elif today.year - born.year > OLDEST_YEARS:
        problems.append(("born", f"The date of birth is over {OLDEST_YEARS} years ago: check it"))


def _placed(day: date, hour: str, minute: str, zone: str | None) -> datetime | str:
    """A UK clock time on ``day`` (``zone``, BST or GMT, saying which where the clocks make it
    happen twice), or what is wrong with it: the hour the clocks skip never happened, and the
    hour they repeat is asked, never guessed."""
    at = datetime.combine(day, time(int(hour), int(minute)), _UK)
    named = f"{day.isoformat()} {int(hour):02d}:{minute}"
    both = {at.tzname(), at.replace(fold=1).tzname()}
    if at.astimezone(UTC).astimezone(_UK).replace(tzinfo=None) != at.replace(tzinfo=None):
        return f"the clocks went forward that night, so {named} never happened: check the time"
    if zone is None:
        if len(both) > 1:
            return (f"the clocks went back that night, so {named} happened twice: add BST (the "
                    "first) or GMT (the second) after the time")  # fmt: skip
        return at
    if zone.upper() not in both:
        return f"UK clocks showed {at.tzname()} at {named}, not {zone.upper()}"
    return at.replace(fold=int(at.tzname() != zone.upper()))


def _past(text: str, now: datetime, noun: str, done: str) -> datetime | str:
    """A time ``noun`` (the last dose, the time the readings were taken) as a nurse writes it
    (``08:00`` today, or yesterday if that is still to come; or a date and time; ``GMT`` or
    ``BST`` after either) in UK time; else what is wrong with it (``_placed``, or a time still
    to come, when nothing was ``done``). Instants are compared in UTC: two UK times share a
    zone object, and Python then compares their clock faces, which the night the clocks go
    back tells nothing."""
    if clock := _CLOCK.fullmatch(text):
        hour, minute, zone = clock[1], clock[2], clock[3]
        day = now.astimezone(_UK).date()
        at = _placed(day, hour, minute, zone)
        soonest = (at if isinstance(at, datetime)
                   else datetime.combine(day, time(int(hour), int(minute)), _UK))  # fmt: skip
        if soonest.astimezone(UTC) > now.astimezone(UTC):
            before = _placed(day - timedelta(days=1), hour, minute, zone)
            # "01:10 GMT" on the night the clocks go back, before it came: only today has one
            named_today = zone is not None and isinstance(at, datetime)
            at = at if named_today and isinstance(before, str) else before
    elif stamp := _STAMP.fullmatch(text):
        try:
            at = _placed(date.fromisoformat(stamp[1]), stamp[2], stamp[3], stamp[4])
        except ValueError:
            return f"give {noun} {_TIME_FORMAT}"
    else:
        return f"give {noun} {_TIME_FORMAT}"
    if isinstance(at, datetime) and at.astimezone(UTC) > now.astimezone(UTC):
        return f"{written(at)} is still to come: give the time {done}"
    return at


def _medicines(text: str, now: datetime, problems: list[Problem]) -> list[Medicine]:
    found: list[Medicine] = []
    for n, line in enumerate(lines(text), start=1):
        name, _, dose = (part.strip() for part in line.partition("|"))
        when = _past(dose, now, "the last dose", "the last dose was given") if dose else None
        if blank(name):
            problems.append(("medicines", f"Line {n} of the medicines: name the medicine"))
        elif isinstance(when, str):
            problems.append(("medicines", f"Line {n} of the medicines: {when}"))
        else:
            found.append(Medicine(name, when))
    return found


def _contacts(text: str, problems: list[Problem]) -> list[Contact]:
    """One contact a line, as the form asks: name | relationship | telephone. A number with no
    digit in it is a slip a hospital would only find on calling it."""
    found: list[Contact] = []
    for n, line in enumerate(lines(text), start=1):
        name, relationship, phone, *more = (part.strip() for part in [*line.split("|"), "", ""])
        if blank(name):
            problems.append(("contacts", f"Line {n} of the contacts: name the contact"))
        elif any(not blank(part) for part in more):
            problems.append(("contacts", f"Line {n} of the contacts: give the name, "
                             "relationship and telephone only, with | between them"))  # fmt: skip
        elif not blank(phone) and not any(c.isdigit() for c in phone):
            problems.append(("contacts", f"Line {n} of the contacts: give the telephone "
                             "number in digits"))  # fmt: skip
        else:
            found.append(Contact(name, "" if blank(relationship) else relationship,
                                 "" if blank(phone) else phone))  # fmt: skip
    return found


def _observed(text: str, now: datetime, problems: list[Problem]) -> datetime | None:
    """When the readings were taken: the hospital reads a NEWS2 of an hour ago otherwise
    than one taken as the ambulance came."""
    if blank(text):
        problems.append(("observed", "Enter the time the observations were taken, such as 08:00"))
        return None
    at = _past(text, now, "the time the observations were taken", "the observations were taken")
    if isinstance(at, str):
        problems.append(("observed", at[0].upper() + at[1:]))
        return None
    return at


def _baseline(entered: Mapping[str, str], today: date, problems: list[Problem]) -> Baseline | None:
    """The usual readings, if any is given, with the day they were taken (which they need:
    a baseline of years ago may no longer be the resident's)."""
    given = {
        name: entered[f"usual_{name}"] for name in READINGS if not blank(entered[f"usual_{name}"])
    }
    level = entered["usual_consciousness"]
    day_typed = entered["usual_recorded"]
    if not given and not level:
        if not blank(day_typed):
            said = "Enter the usual readings, or clear the day they were taken"
            problems.append(("usual_respiration_rate", said))
        return None
    values = {name: _reading(text, name, problems, usual=True) for name, text in given.items()}
    if level and level not in news2.ACVPU:
        problems.append(("usual_consciousness", "Choose the usual level of consciousness"))
    try:
        day = date.fromisoformat(day_typed) if _ISO_DATE.fullmatch(day_typed) else None
    except ValueError:
        day = None
    if day is None:
        problems.append(("usual_recorded",
                         "Enter the day the usual readings were taken as YYYY-MM-DD"))  # fmt: skip
    elif day > today:
        problems.append(("usual_recorded", "The day the usual readings were taken is to come"))
    whole = {name: int(value) for name, value in values.items() if name != "temperature"}
    return Baseline(
        day or today, whole.get("respiration_rate"), whole.get("spo2"), whole.get("systolic_bp"),
        whole.get("pulse"), values.get("temperature"),
        level if level in news2.ACVPU else None,
    )  # fmt: skip


def packed(ticked: Sequence[str], other: str) -> str:
    """The belongings field: the items ticked (known ones only, in the list's order), then the
    others typed, each once."""
    known = [item for item in BAG if item in ticked]
    return "\n".join(dict.fromkeys([*known, *lines(other)]))


def reviewed_medicines(medicines: Sequence[Medicine]) -> str:
    """The medicines field as the review shows it and seals it: each last dose with its day,
    so that sending later (after midnight, or past the time typed) sends what was reviewed."""
    return "\n".join(
        f"{m.name} | {written(m.last_dose)}" if m.last_dose else m.name for m in medicines
    )


def _vitals(entered: Mapping[str, str], problems: list[Problem]) -> news2.Vitals:
    """The observations now, as typed (stripped), each problem at its field."""
    readings = {name: _reading(entered[name], name, problems) for name in READINGS}
    level = entered["consciousness"]
    if level not in news2.ACVPU:
        problems.append(("consciousness", "Choose the level of consciousness (ACVPU)"))
    return news2.Vitals(
        int(readings["respiration_rate"]), int(readings["spo2"]), entered["on_oxygen"] == "yes",
        int(readings["systolic_bp"]), int(readings["pulse"]),
        level if level in news2.ACVPU else "A",
        readings["temperature"], 2 if entered["spo2_scale"] == "2" else 1,
    )  # fmt: skip


def news2_so_far(typed: Mapping[str, str]) -> str:
    """What the form says of NEWS2 while the observations are typed: the total once every
    reading is in and each is one a person can have, else what it still waits for. Judged as
    the review judges them (:func:`read_form`), so the two never disagree."""
    entered = {name: typed.get(name, "").strip() for name in (*_OBSERVED, *READINGS)}
    missing = [  # in the form's order
        what
        for name, what in _ASKED
        if (entered[name] not in news2.ACVPU if name == "consciousness" else blank(entered[name]))
    ]
    if missing:
        return "NEWS2 still needs the " + _and(missing)
    problems: list[Problem] = []
    vitals = _vitals(entered, problems)
    return f"NEWS2 not scored yet: {problems[0][1]}" if problems else news2.said(vitals)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def read_form(
    typed: Mapping[str, str],
    nhs_number: str,
    completed_by: str,
    hospitals: Collection[str],
    now: datetime,
) -> tuple[TransferForm, list[Problem]]:
    """The form to send, and the problems with it in the order the form asks; send only when
    there are none."""
    entered = {k: v.strip() for k, v in typed.items()}
    problems: list[Problem] = []
    for name, what in (("given", "given name"), ("family", "family name")):
        if blank(entered[name]):
            problems.append((name, f"Enter the {what}"))
    _birth_date(entered["born"], now.astimezone(_UK).date(), problems)
    if entered["hospital"] not in hospitals:
        problems.append(("hospital", "Choose the hospital"))
    if blank(entered["reason"]):
        problems.append(("reason", "Enter the reason and current concern"))
    vitals = _vitals(entered, problems)
    observed_at = _observed(entered["observed"], now, problems)
    baseline = _baseline(entered, now.astimezone(_UK).date(), problems)
    medicines = _medicines(typed["medicines"], now, problems)
    form = TransferForm(
        person=Person(nhs_number, entered["family"], entered["given"], entered["born"],
                      entered["gp_practice"]),
        reason=entered["reason"], vitals=vitals, completed_by=completed_by,
        observed_at=observed_at, baseline=baseline,
        medicines=medicines, allergies=lines(typed["allergies"]),
        for_cpr={"yes": True, "no": False}.get(entered["for_cpr"]),
        advance_decisions=entered["advance"], legal=entered["legal"],
        about_me=about_me(entered), contacts=_contacts(typed["contacts"], problems),
        infection_status=entered["infection"], belongings=lines(typed["belongings"]),
    )  # fmt: skip
    return form, problems


def about_me(entered: Mapping[str, str]) -> str:
    """The About me section's words: each part given, under its heading, one a line."""
    return "\n".join(
        f"{heading}: {entered[name]}" for name, heading in ABOUT_ME.items()
        if not blank(entered[name])
    )  # fmt: skip


def unsaid(form: DischargeForm) -> list[str]:
    """What a discharge form must say and does not, in the order the form asks: the diagnoses,
    and whether medicines changed, in lines or by the tick (with neither, the care home could
    not tell no change from a form left blank; with both, which is meant)."""
    problems = [] if form.diagnoses else ["Enter the diagnoses, one a line"]
    listed = bool(form.started or form.stopped or form.changed)
    if listed == form.no_medicine_changes:
        problems.append(
            "Untick 'No medicine changes', or remove the medicines started, stopped or changed"
            if listed else
            "Enter the medicines started, stopped or changed, or tick 'No medicine changes'"
        )  # fmt: skip
    return problems
