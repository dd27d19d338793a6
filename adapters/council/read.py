"""Reading a council-style extract folder (UTF-8 CSV) into records each map can map on its own.

Four small joins are added as ``_``-prefixed fields, because the table maps cannot build
them: every record carries the council's code (``_org``) so maps can point at the council;
persons carry the council-specific identifier system (``_person_id_system``: person ids are
only unique within one council, so two councils' ``1001`` must not look like one person); and
every row that belongs to a person carries that person's raw ``restricted`` value
(``_person_restricted``), so a restricted person's whole council record is labelled, not only
the Patient, and whether its end date has passed (``_ended``), which the maps cannot compare.
The API pull (``api.py``) adds the same fields, so the same maps apply to both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from adapters import values
from adapters.base import ExtractError, SourceRecord, SourceRef
from adapters.extract import first_row, joined_problem, lookup_rows, table_records, unknown_files

STYLE = "council"
ENCODING = "utf-8"
#: Tables in the order they are read: persons before the rows that cite them.
TABLES = ("organisation", "persons", "events", "warnings", "contacts", "legal", "placements")
#: Person ids are local to one council, so the identifier system names the council.
PERSON_ID_SYSTEM = "https://fhir.scr.example/Id/council-person/"
#: Tables whose rows belong to a person, and so carry the person's joined fields.
MEMBER_TABLES = ("events", "warnings", "contacts", "legal", "placements")
#: What a correction cannot change on replay: the columns the reader joins other rows by.
JOINED_BY = {
    "organisation": {"code": "the council's code into every record"},
    "persons": {"restricted": "this value into every row of the person"},
    **{table: {"person_id": "persons.csv (the restricted flag)"} for table in MEMBER_TABLES},
}
#: An ISO date to the day, the month or the year.
_ISO_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")

Enrich = Callable[[dict[str, str]], Mapping[str, Any]]


def person_extras(org: str) -> dict[str, str]:
    """The joined fields of a persons row."""
    return {"_org": org, "_person_id_system": PERSON_ID_SYSTEM + org}


def member_extras(org: str, restricted: str, row: Mapping[str, Any], today: str) -> dict[str, str]:
    """The joined fields of a row that belongs to a person: its person's raw ``restricted``
    value, and whether it has ended (:func:`ended`)."""
    return {"_org": org, "_person_restricted": restricted, "_ended": ended(row, today)}


def row_joins(ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
    """What the reader works out from a row alone: whether it has ended, by ``today``."""
    return {"_ended": ended(fields, today)} if ref.table in MEMBER_TABLES else {}


def ended(row: Mapping[str, Any], today: str) -> str:
    """``true`` once the row's end date (ISO, ``today`` too) has passed: a care package or a
    warning with a planned end date is still running until then. An end given to the month or
    the year has passed once that month or year has."""
    end = str(row.get("event_end_date") or row.get("end_date") or "").strip()[:10]
    over = bool(_ISO_DATE.fullmatch(end)) and end < today[: len(end)]
    return "true" if over else "false"


def resolve_org(folder: Path, org: str | None, notes: list[str]) -> str:
    """The council's code: ``organisation.csv`` first, then the code the caller gave."""
    path = folder / "organisation.csv"
    if path.exists():
        code = first_row(path, ENCODING, "code")
        if org and org != code:
            notes.append(
                f"organisation.csv names {code!r}; the given council code {org!r} is unused"
            )
        return code
    if org:
        return org
    raise ExtractError(
        f"{folder}: no organisation.csv and no council code given: add organisation.csv "
        "(code,name) or pass the code (CouncilAdapter(org=...))"
    )


def _restricts(row: Mapping[str, str]) -> bool:
    """Fail closed, as persons.json reads it: only a clear no (or blank) does not restrict."""
    try:
        return values.boolean(str(row.get("restricted", "")))
    except values.ValueProblem:
        return True


def _persons(path: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    """Each person's row, read as a lookup (``lookup_rows``): its raw ``restricted`` value is
    joined into the rows that belong to them, so a row read with a problem holds them too,
    and one whose quote swallowed other persons (their restrictions unread) stops the read.
    A person listed twice is restricted if either copy says so (fail closed): the ingest keeps
    the first copy and quarantines the other, and which came first must not decide whether
    their address and care are shown to other organisations."""
    people: dict[str, dict[str, str]] = {}
    for row in lookup_rows(path, ENCODING, ["person_id", "restricted"], notes):
        first = people.setdefault(row.get("person_id", "").strip(), row)
        if _restricts(row) and not _restricts(first):
            people[row.get("person_id", "").strip()] = {**first, "restricted": row["restricted"]}
    return people


def read_extract(folder: Path, org: str | None, notes: list[str]) -> Iterator[SourceRecord]:
    """Yield every record of the extract in folder, persons before the rows that cite them."""
    persons = folder / "persons.csv"
    if not persons.exists():
        raise ExtractError(f"{folder}: required file persons.csv is missing")
    unknown_files(folder, set(TABLES), notes)
    code = resolve_org(folder, org, notes)
    people = _persons(persons, notes)

    today = date.today().isoformat()

    def member(row: dict[str, str]) -> dict[str, str]:
        person = people.get(row.get("person_id", "").strip(), {})
        restricted = person.get("restricted", "")
        return {**member_extras(code, restricted, row, today), **joined_problem(person)}

    extras = person_extras(code)

    def person(row: dict[str, str]) -> dict[str, str]:
        """The person's own row is restricted by another copy of it too (:func:`_persons`)."""
        merged = people.get(row.get("person_id", "").strip(), {})
        return {**extras, "_person_restricted": merged.get("restricted", "")}

    enrichers: dict[str, Enrich | None] = {"organisation": None, "persons": person}
    for table in TABLES:
        yield from table_records(
            folder,
            STYLE,
            table,
            code,
            ENCODING,
            notes,
            required=table == "persons",
            enrich=enrichers.get(table, member),
        )
