"""Reading an EMIS-style extract folder: UTF-8 files, GUIDs as written, and the joins mapping needs.

The coding tables and ``CareRecord_Problem`` are small lookups read first; each clinical record
gets its code's term, SNOMED concept and Read v2 code (and an observation its problem row) as
``_``-prefixed fields, so that every record can be mapped, and replayed from quarantine, on its
own; a drug record, and each of its issues, gets the SNOMED concept of the problem it was
prescribed for, and whether that problem is confidential, read earlier in the same extract, so
that it is labelled with the problem; so does an observation recorded under a problem
(``ProblemGuid``), held back to the end of its file when the problem's row comes after it.
An observation or issue written in a consultation (``ConsultationGuid``) takes whether the
consultation is confidential, read earlier in the same extract, so it is withheld with the visit.
Row ids are kept exactly as the file writes them (braces included): they are the keys other
tables and ``truth.json`` cite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from adapters.base import SourceRecord, SourceRef
from adapters.codes import SNOMED, read_v2_code
from adapters.extract import (
    Enrich,
    ProblemRows,
    first_row,
    joined_fields,
    joined_problem,
    lookup_rows,
    problem_changes,
    problem_join,
    table_records,
    unknown_files,
)
from adapters.values import ValueProblem, decimal

STYLE = "emis"
#: A BOM, when present, is honoured by ``csvread``.
ENCODING = "utf-8"
ORGANISATION = "Admin_Organisation"
PATIENT = "Admin_Patient"
#: Tables in the order they are read: patients before the rows that cite them, and drug records
#: before the issues that are joined to them.
TABLES = (
    ORGANISATION,
    "Admin_UserInRole",
    PATIENT,
    "CareRecord_Consultation",
    "CareRecord_Observation",
    "Prescribing_DrugRecord",
    "Prescribing_IssueRecord",
)
#: What a correction cannot change on replay: the columns the reader joins other rows by.
JOINED_BY = {
    ORGANISATION: {"ODSCode": "the practice's code into every record"},
    "CareRecord_Observation": {
        "CodeId": "Coding_ClinicalCode",
        "ObservationGuid": "CareRecord_Problem",
        "ProblemGuid": "the problem's own observation",
        "ConsultationGuid": "CareRecord_Consultation",
    },
    "Prescribing_DrugRecord": {
        "CodeId": "Coding_DrugCode",
        "ProblemObservationGuid": "the problem's own observation",
    },
    "Prescribing_IssueRecord": {
        "CodeId": "Coding_DrugCode",
        "DrugRecordGuid": "Prescribing_DrugRecord",
        "ConsultationGuid": "CareRecord_Consultation",
    },
}
#: Read only to be joined into other tables' records, with the columns each must have.
LOOKUPS: dict[str, tuple[str, ...]] = {
    "Coding_ClinicalCode": ("CodeId", "Term", "ReadTermId", "SnomedCTConceptId"),
    "Coding_DrugCode": ("CodeId", "Term", "DmdProductCodeId"),
    "CareRecord_Problem": (
        "ObservationGuid",
        "EndDate",
        "ProblemStatusDescription",
        "SignificanceDescription",
    ),
}
_TRUE = ("true", "1", "y")
#: What an observation takes from its CareRecord_Problem row: whether it is a problem, and the
#: problem's status, significance and end.
_PROBLEM_FILE = "CareRecord_Problem.csv"
PROBLEM_JOINS = (
    "_IsProblem",
    "_ProblemStatus",
    "_ProblemSignificance",
    "_ProblemEndDate",
    "_ProblemEndDatePrecision",
)
#: A result reported beyond what the test measures: its FHIR Quantity comparator and number.
_CENSORED = re.compile(r"(<=|>=|<|>)\s*(\S+)")

Fields = dict[str, str]


class Course(NamedTuple):
    """What an issue needs from its drug record. One is kept per drug record read (short
    strings), so the drug file is never read twice."""

    patient: str
    code: str
    #: The course's confidentiality flag, or its problem's.
    confidential: str
    #: The SNOMED concept of the problem it treats, when this extract holds the problem.
    concept: str
    #: The source keys it names (its problem's), and those of them this extract holds.
    pointed: tuple[str, ...]
    met: tuple[str, ...]


def _present(fields: Fields) -> Fields:
    """Only the non-blank values, so a quarantined record keeps no empty joined fields."""
    return {k: v.strip() for k, v in fields.items() if v and v.strip()}


def _get(row: Fields, column: str) -> str:
    return row.get(column, "").strip()


def _lookup(folder: Path, table: str, notes: list[str]) -> Iterator[Fields]:
    return lookup_rows(folder / f"{table}.csv", ENCODING, LOOKUPS[table], notes)


def _clinical_codes(folder: Path, notes: list[str]) -> dict[str, Fields]:
    """CodeId → term, SNOMED concept and either the Read v2 code or the EMIS-local (Egton) id."""
    out: dict[str, Fields] = {}
    for row in _lookup(folder, "Coding_ClinicalCode", notes):
        term_id = _get(row, "ReadTermId")
        read = read_v2_code(term_id) if term_id else None
        out[_get(row, "CodeId")] = {
            **_present(
                {
                    "_Term": row["Term"],
                    "_SnomedCTConceptId": row["SnomedCTConceptId"],
                    "_ReadCode": read or "",
                    "_EgtonCode": "" if read else term_id,
                }
            ),
            **joined_problem(row),
        }
    return out


def _drug_codes(folder: Path, notes: list[str]) -> dict[str, Fields]:
    return {
        _get(row, "CodeId"): {
            **_present({"_DrugTerm": row["Term"], "_DmdProductCodeId": row["DmdProductCodeId"]}),
            **joined_problem(row),
        }
        for row in _lookup(folder, "Coding_DrugCode", notes)
    }


def _problems(folder: Path, notes: list[str]) -> ProblemRows:
    """Each observation's problem row, live or deleted (which leaves it a plain observation,
    so whether it is a problem is known), and the patient it names."""
    found = ProblemRows({}, set(), {})
    for row in _lookup(folder, "CareRecord_Problem", notes):
        guid = _get(row, "ObservationGuid")
        if _get(row, "Deleted").lower() in _TRUE:
            found.removed.add(guid)
            continue
        found.patients[guid] = _get(row, "PatientGuid")
        found.live[guid] = {
            **_present(
                {
                    "_IsProblem": "True",
                    "_ProblemStatus": row["ProblemStatusDescription"],
                    "_ProblemSignificance": row["SignificanceDescription"],
                    "_ProblemEndDate": row["EndDate"],
                    "_ProblemEndDatePrecision": row.get("EndDatePrecision", ""),
                }
            ),
            **joined_problem(row),
        }
    return found


def _present_list(name: str, values: tuple[str, ...]) -> dict[str, Any]:
    return {name: list(values)} if values else {}


def _treats(concept: str) -> dict[str, Any]:
    """The problem a prescription is for, as the codes it names (``SourceRecord``): a medicine
    for a sensitive problem is withheld with it."""
    return {"_pointed_codings": [[SNOMED, concept]]} if concept else {}


def _of_problem(problem: tuple[str, bool]) -> dict[str, Any]:
    """What a record written for a problem takes from it: its concept and its confidentiality."""
    concept, confidential = problem
    return {
        **_present({"_ProblemIsConfidential": "True" if confidential else ""}),
        **_treats(concept),
    }


def value_fields(raw: str) -> Fields:
    """``_ValueIsNumeric`` when ``Value`` is a number, the map cannot test that by itself; for
    a censored result (``<5``, ``>=90``) also its comparator and number, so the unit is kept."""
    censored = _CENSORED.fullmatch(raw.strip())
    number = censored.group(2) if censored else raw
    try:
        decimal(number)
    except ValueProblem:
        return {}
    if censored:
        return {
            "_ValueIsNumeric": "True",
            "_ValueComparator": censored.group(1),
            "_ValueNumber": number,
        }
    return {"_ValueIsNumeric": "True"}


def _quantity(row: Mapping[str, Any]) -> Fields:
    quantity = str(row.get("Quantity", "")).strip()
    unit = str(row.get("QuantityUnit", "")).strip()
    return _present({"_QuantityText": f"{quantity} {unit}" if quantity else ""})


def _issue_patient(own: str, course: str) -> Fields:
    """An issue's patient: its row's when it names one, else its course's; an issue naming
    another patient than its course's is marked, so its map holds it rather than put one
    person's prescription on another's course."""
    return _present(
        {
            "_PatientGuid": own or course,
            "_CoursePatientGuid": course,
            "_NotCoursePatient": "True" if own and course and own != course else "",
        }
    )


#: The columns by which a row names another record, and that record's table.
_NAMED_BY = {
    "CareRecord_Observation": (
        ("ConsultationGuid", "CareRecord_Consultation"),
        ("ProblemGuid", "CareRecord_Observation"),
    ),
    "Prescribing_DrugRecord": (("ProblemObservationGuid", "CareRecord_Observation"),),
    "Prescribing_IssueRecord": (
        ("DrugRecordGuid", "Prescribing_DrugRecord"),
        ("ConsultationGuid", "CareRecord_Consultation"),
    ),
}
#: The joined fields :func:`row_joins` works out, by table, so a stale one can be dropped.
_ROW_JOINED = {
    "CareRecord_Observation": ("_ValueIsNumeric", "_ValueComparator", "_ValueNumber"),
    "Prescribing_DrugRecord": ("_QuantityText",),
    "Prescribing_IssueRecord": ("_NotCoursePatient",),
}


def row_joins(ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
    """What the reader works out from a row alone: a value's number, a course's quantity, an
    issue's patient when its row names one (else its course's stands), checked against its
    course's; and the records the row names by its own columns, so a record kept before the
    reader named them (or naming them since corrected) takes their stored labels on replay."""
    table = ref.table
    if table == "CareRecord_Observation":
        worked: dict[str, Any] = value_fields(str(fields.get("Value", "")))
    elif table == "Prescribing_DrugRecord":
        worked = _quantity(fields)
    elif table == "Prescribing_IssueRecord":
        worked = _issue_patient(
            str(fields.get("PatientGuid", "")).strip(),
            str(fields.get("_CoursePatientGuid", "")).strip(),
        )
    else:
        worked = {}
    named = [
        SourceRef(STYLE, ref.org, named_table, guid).key
        for column, named_table in _NAMED_BY.get(table, ())
        if (guid := str(fields.get(column, "")).strip()) and guid != ref.row_id
    ]
    pointed = tuple(dict.fromkeys([*fields.get("_pointed_records", ()), *named]))
    return {
        **dict.fromkeys(_ROW_JOINED.get(table, ())),
        **worked,
        **_present_list("_pointed_records", pointed),
    }


def read_extract(folder: Path, notes: list[str]) -> Iterator[SourceRecord]:
    """Stream every table's records, the lookups joined in; the org is the first ODS code."""
    unknown_files(folder, {*TABLES, *LOOKUPS}, notes)
    org = first_row(folder / f"{ORGANISATION}.csv", ENCODING, "ODSCode")
    clinical = _clinical_codes(folder, notes)
    drugs = _drug_codes(folder, notes)
    found_problems = _problems(folder, notes)
    problems, unproblems = found_problems.live, found_problems.removed
    courses: dict[str, Course] = {}
    #: Consultation GUID → whether the practice marked it confidential: what is written in it
    #: says as much as the visit, so is withheld with it.
    consultations: dict[str, bool] = {}
    #: Problem observation GUID → its SNOMED concept and whether the practice marked it
    #: confidential: what a record written for it names, and must keep as close.
    treated: dict[str, tuple[str, bool]] = {}

    def key(table: str, guid: str) -> str:
        return SourceRef(STYLE, org, table, guid).key

    def for_problem(guid: str) -> dict[str, Any]:
        """A record written for the problem ``guid`` takes its concept and confidentiality, or,
        for a problem this extract does not hold, the labels it was stored with; either way it
        names the problem, so labels the problem gains later reach it."""
        if not guid:
            return {}
        named = [key("CareRecord_Observation", guid)]
        if guid in treated:
            return {**_of_problem(treated[guid]), "_pointed_records": named, "_met_records": named}
        return {"_pointed_records": named}

    def in_consultation(row: Fields) -> dict[str, Any]:
        """A record written in a consultation takes its confidentiality, or, for one this
        extract does not hold, the labels it was stored with; either way it names the
        consultation, so labels the consultation gains later reach it."""
        guid = _get(row, "ConsultationGuid")
        if not guid:
            return {}
        named = [key("CareRecord_Consultation", guid)]
        if guid not in consultations:
            return {"_pointed_records": named}
        confidential = "True" if consultations[guid] else ""
        return {
            **_present({"_ConsultationIsConfidential": confidential}),
            "_pointed_records": named,
            "_met_records": named,
        }

    def observation(row: Fields) -> dict[str, Any]:
        code = clinical.get(_get(row, "CodeId"), {})
        guid = _get(row, "ObservationGuid")
        problem = problems.get(guid, {})
        if problem:
            confidential = _get(row, "IsConfidential").lower() in _TRUE
            earlier = treated.get(guid, ("", False))[1]  # a copy of the row: fail closed
            treated[guid] = (code.get("_SnomedCTConceptId", ""), confidential or earlier)
        parent = _get(row, "ProblemGuid")
        waits = parent in problems and parent not in treated
        deleted = _get(row, "Deleted").lower() in _TRUE
        return joined_fields(
            code,
            problem_join(
                found_problems,
                _PROBLEM_FILE,
                PROBLEM_JOINS,
                (guid, _get(row, "PatientGuid")),
                known=guid in problems or guid in unproblems,
                deleted=deleted,
            ),
            value_fields(row.get("Value", "")),
            {} if parent == guid or waits else for_problem(parent),
            in_consultation(row),
            deleted=deleted,
        )

    def waits_for_problem(record: SourceRecord) -> bool:
        """Recorded under a problem whose own row comes later in the file."""
        parent = str(record.fields.get("ProblemGuid", "")).strip()
        return parent in problems and parent not in treated and parent != record.ref.row_id

    def drug_record(row: Fields) -> dict[str, Any]:
        return {
            **drugs.get(_get(row, "CodeId"), {}),
            **_quantity(row),
            **for_problem(_get(row, "ProblemObservationGuid")),
        }

    def issue(row: Fields) -> dict[str, Any]:
        """Patient and drug from the issue row when it has them, else from its drug record; a
        drug record this extract does not hold passes on the labels it was stored with."""
        guid = _get(row, "DrugRecordGuid")
        drug = (key("Prescribing_DrugRecord", guid),) if guid else ()
        course = courses.get(guid) or Course("", "", "", "", (), ())
        met = (*drug, *course.met) if guid in courses else course.met
        code_id = _get(row, "CodeId") or course.code
        return joined_fields(
            _issue_patient(_get(row, "PatientGuid"), course.patient),
            _present({"_CodeId": code_id, "_CourseIsConfidential": course.confidential}),
            drugs.get(code_id, {}),
            _treats(course.concept),
            _present_list("_pointed_records", (*drug, *course.pointed)),
            _present_list("_met_records", met),
            in_consultation(row),
        )

    enrich: dict[str, Enrich] = {
        "CareRecord_Observation": observation,
        "Prescribing_DrugRecord": drug_record,
        "Prescribing_IssueRecord": issue,
    }
    #: The observations this extract holds: a problem row for another is mapped with it as
    #: last taken in.
    observations: set[str] = set()
    for table in TABLES:
        waiting: list[SourceRecord] = []
        for record in table_records(
            folder,
            STYLE,
            table,
            org,
            ENCODING,
            notes,
            required=table in (ORGANISATION, PATIENT),
            enrich=enrich.get(table),
        ):
            if table == "CareRecord_Observation":
                observations.add(record.ref.row_id)
            if table == "CareRecord_Consultation":
                # Fail closed: a copy of the row (the second is quarantined as a duplicate)
                # or a row read with a problem (its flag may be what was lost) says confidential.
                marked = str(record.fields.get("IsConfidential", "")).strip().lower()
                consultations[record.ref.row_id] = (
                    consultations.get(record.ref.row_id, False)
                    or marked in _TRUE
                    or bool(record.read_issues)
                )
            if table == "Prescribing_DrugRecord":
                f = record.fields
                concept, confidential = treated.get(
                    str(f.get("ProblemObservationGuid", "")).strip(), ("", False)
                )
                earlier = courses.get(record.ref.row_id)
                confidential = confidential or (  # fail closed, as for consultations
                    earlier is not None and earlier.confidential.lower() in _TRUE
                )
                courses[record.ref.row_id] = Course(
                    str(f.get("PatientGuid", "")).strip(),
                    str(f.get("CodeId", "")).strip(),
                    "True" if confidential else str(f.get("IsConfidential", "")).strip(),
                    concept,
                    tuple(f.get("_pointed_records", ())),
                    tuple(f.get("_met_records", ())),
                )
            if table == "CareRecord_Observation" and waits_for_problem(record):
                waiting.append(record)
                continue
            yield record
        for record in waiting:
            parent = str(record.fields["ProblemGuid"]).strip()
            yield replace(record, fields=joined_fields(record.fields, for_problem(parent)))
    events = SourceRef(STYLE, org, "CareRecord_Observation", "")
    yield from problem_changes(
        events, _PROBLEM_FILE, found_problems, observations, PROBLEM_JOINS, "PatientGuid"
    )
