"""Reading a SystmOne-style extract folder: Windows-1252 files and the joins mapping needs.

Small lookup tables (current address and registration per patient, problems by code row,
the extract's own CTV3→SNOMED rows, drug names) are read first and joined into each record
as ``_``-prefixed fields, so every record can be mapped (and replayed) on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from adapters.base import ExtractError, ExtractStamp, SourceRecord, SourceRef
from adapters.extract import (
    ProblemRows,
    first_row,
    joined_fields,
    joined_problem,
    lookup_rows,
    problem_changes,
    problem_join,
    table_file,
    table_records,
    unknown_files,
)
from adapters.values import ValueProblem, tpp_date, tpp_datetime

STYLE = "systmone"
ENCODING = "cp1252"
#: Tables in the order they are read: patients before the rows that cite them.
TABLES = (
    "SROrganisation",
    "SRPatient",
    "SRPatientRegistration",
    "SRPatientRelationship",
    "SRCode",
    "SRPrimaryCareMedication",
    "SRDrugSensitivity",
    "SRSpecialNotes",
)
#: What a correction cannot change on replay: the columns the reader joins other rows by.
JOINED_BY = {
    "SROrganisation": {"NationalId": "the practice's code into every record"},
    "SRPatient": {"RowIdentifier": "SRPatientAddressHistory and SRPatientRegistration"},
    "SRCode": {"RowIdentifier": "SRProblem", "CTV3Code": "SRCtv3ToSnomed"},
    "SRDrugSensitivity": {"IDDrugCode": "SRPrimaryCareMedication (the drug's name and dm+d code)"},
}
#: What a code row takes from its SRProblem row: whether it is a problem, and the problem's
#: end, severity and visibility.
_PROBLEM_FILE = "SRProblem.csv"
PROBLEM_JOINS = ("_ProblemRow", "_ProblemDateEnd", "_ProblemSeverity", "_ProblemVisibleTo")
#: Read only to be joined into other tables' records (SRManifest: the extract's end date, which
#: tells a current medication course from a past one).
LOOKUPS = ("SRManifest", "SRPatientAddressHistory", "SRProblem", "SRCtv3ToSnomed")


def _sort_date(raw: str) -> str:
    try:
        return tpp_date(raw[:11]) if raw else ""
    except ValueProblem:
        return ""


def _removed(row: dict[str, str]) -> bool:
    """``RemovedData`` as the maps read it (their ``deleted`` rule), so a join skips what they
    mark entered-in-error."""
    return row.get("RemovedData", "").strip().lower() in ("1", "true", "y")


def _lookup(folder: Path, table: str, key: str, notes: list[str]) -> Iterator[dict[str, str]]:
    return lookup_rows(folder / f"{table}.csv", ENCODING, [key], notes)


def _latest(row: dict[str, str], date_column: str) -> tuple[str, str]:
    """Latest first by ``date_column``, then by row id: which of two rows of one start date
    wins must not depend on the order a file lists them (a re-run in another order made a new
    Patient version)."""
    return _sort_date(row.get(date_column, "")), row.get("RowIdentifier", "").strip()


def _current_addresses(folder: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    """Per patient, the open address with the latest start date."""
    best: dict[str, dict[str, str]] = {}
    for row in _lookup(folder, "SRPatientAddressHistory", "IDPatient", notes):
        if row.get("DateTo", "").strip() or _removed(row):
            continue
        pid = row["IDPatient"].strip()
        if pid not in best or _latest(row, "DateEvent") > _latest(best[pid], "DateEvent"):
            best[pid] = row
    return {
        pid: {
            **{f"_AddressLine{i}": r.get(f"AddressLine{i}", "") for i in range(1, 6)},
            "_PostCode": r.get("PostCode", ""),
            "_AddressDateEvent": r.get("DateEvent", ""),
            **joined_problem(r),
        }
        for pid, r in best.items()
    }


def _current_registrations(folder: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    """Per patient, the organisation of the open registration with the latest start."""
    best: dict[str, tuple[tuple[str, str], dict[str, str]]] = {}
    for row in _lookup(folder, "SRPatientRegistration", "IDPatient", notes):
        if row.get("DateDeregistration", "").strip() or _removed(row):
            continue
        start = _latest(row, "DateRegistration")
        pid = row["IDPatient"].strip()
        if pid not in best or start > best[pid][0]:
            best[pid] = (start, row)
    return {
        pid: {
            **({"_RegIDOrganisation": org} if (org := r.get("IDOrganisation", "")) else {}),
            **joined_problem(r),
        }
        for pid, (_, r) in best.items()
    }


def _problems(folder: Path, notes: list[str]) -> ProblemRows:
    """Each code row's problem row, live or removed, and the patient it names."""
    found = ProblemRows({}, set(), {})
    live, removed = found.live, found.removed
    for row in _lookup(folder, "SRProblem", "IDCode", notes):
        code = row["IDCode"].strip()
        if _removed(row):
            removed.add(code)
            continue
        found.patients[code] = row.get("IDPatient", "").strip()
        live[code] = {
            "_ProblemRow": row.get("RowIdentifier", "") or row["IDCode"],
            "_ProblemDateEnd": row.get("DateEnd", ""),
            "_ProblemSeverity": row.get("Severity", ""),
            **joined_problem(row),
            "_ProblemVisibleTo": row.get("IDOrganisationVisibleTo", ""),
        }
    return found


def _check_listed(folder: Path) -> None:
    """Every file a full extract's manifest lists must be there, under the name the reader
    opens (``SRProblem.csv``, whatever case the manifest writes): one that did not arrive (a
    failed transfer) would be read as empty, so its rows would be taken as removed. (A delta
    may list a file it did not send: nothing of it changed.)"""
    names = {f"{table}.csv".lower(): f"{table}.csv" for table in (*TABLES, *LOOKUPS)}
    missing = sorted(
        {
            name
            for row in _lookup(folder, "SRManifest", "FileName", [])
            if (listed := row.get("FileName", "").strip())
            and not table_file(folder, name := names.get(listed.lower(), listed)).exists()
        }
    )
    if missing:
        raise ExtractError(
            f"{folder}: SRManifest.csv lists {', '.join(missing)}, which the extract does not "
            "hold; nothing is taken in: fetch the whole extract again"
        )


def _delta(folder: Path, notes: list[str]) -> bool:
    """Whether the extract may be a delta: unless the manifest says plainly of every file that
    it is not (``N``), or there is none, which the spec takes as a full extract. A value it
    does not know is taken as a delta, the safe reading."""
    return any(
        row.get("IsDelta", "").strip().lower() not in ("n", "no", "false", "0")
        for row in _lookup(folder, "SRManifest", "FileName", notes)
    )


def _extract_ctv3_map(folder: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    return {
        row["CTV3Code"].strip(): {"_ExtractSNOMEDCode": row["SNOMEDCode"], **joined_problem(row)}
        for row in _lookup(folder, "SRCtv3ToSnomed", "CTV3Code", notes)
        if row.get("SNOMEDCode")
    }


def _extract_end(folder: Path, notes: list[str]) -> str:
    """The date the extract runs to (SRManifest ``DateExtractTo``), as an ISO date, or ''. A
    row read with a problem counts when its date reads whole (the problem is elsewhere)."""
    ends = {
        _sort_date(row.get("DateExtractTo", ""))
        for row in _lookup(folder, "SRManifest", "FileName", notes)
    }
    ends.discard("")
    return max(ends) if ends else ""


def medication_joins(row: Mapping[str, Any], extract_end: str, today: str) -> dict[str, str]:
    """Whether a course was current when the extract was taken (on ``today`` when the extract
    does not say), and the extract's end, so a corrected course can be judged again."""
    end = _sort_date(str(row.get("DateMedicationEnd", "")))
    current = bool(end and end >= (extract_end or today))
    return {"_CurrentAtExtract": "Y" if current else "N", **_ends(extract_end)}


def row_joins(ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
    """What the reader works out from a row alone: a course's currency, and a sensitivity's
    drug name when its row gives one (else the one a medication row gave stands). A code row
    kept before the reader joined its problem's visibility (``_ProblemVisibleTo``) cannot
    learn it without the extract, so it is taken as private to its practice: fail closed."""
    if ref.table == "SRPrimaryCareMedication":
        return medication_joins(fields, str(fields.get("_ExtractEnd", "")), today)
    if ref.table == "SRCode" and "_ProblemRow" in fields and "_ProblemVisibleTo" not in fields:
        return {"_ProblemVisibleTo": "unknown: read before problem visibility was joined"}
    name = str(fields.get("DrugName", "")).strip()
    return {"_DrugName": name} if ref.table == "SRDrugSensitivity" and name else {}


def _ends(extract_end: str) -> dict[str, str]:
    return {"_ExtractEnd": extract_end} if extract_end else {}


def extract_stamp(folder: Path) -> ExtractStamp | None:
    """The practice and the time the manifest says the extract runs to (UTC: an extract taken
    in the morning is older than the evening's); ``None`` without them (reading the extract
    reports a missing organisation, or a manifest it cannot use)."""
    times = set()
    try:
        org = first_row(folder / "SROrganisation.csv", ENCODING, "NationalId")
        for row in _lookup(folder, "SRManifest", "FileName", []):  # the read notes problems
            try:
                at = tpp_datetime(row.get("DateExtractTo", ""))
            except ValueProblem:
                continue
            times.add(at if "T" in at else f"{at}T23:59:59+00:00")  # a day runs to its end
    except ExtractError:
        return None
    return ExtractStamp(f"{STYLE}|{org}", max(times)) if times else None


def read_extract(folder: Path, notes: list[str]) -> Iterator[SourceRecord]:
    unknown_files(folder, {*TABLES, *LOOKUPS}, notes)
    org = first_row(folder / "SROrganisation.csv", ENCODING, "NationalId")
    addresses = _current_addresses(folder, notes)
    registrations = _current_registrations(folder, notes)
    #: Whether each code row's problem row, or its absence, is in this extract.
    full = not _delta(folder, [])  # the manifest's problems are noted once, below
    if full:
        _check_listed(folder)
    found_problems = _problems(folder, notes)
    problems, unproblems = found_problems.live, found_problems.removed
    ctv3 = _extract_ctv3_map(folder, notes)
    extract_end = _extract_end(folder, notes)
    #: Without a manifest, what is current is judged on the day the extract is read.
    today = date.today().isoformat()

    def patient(row: dict[str, str]) -> dict[str, str]:
        pid = row.get("RowIdentifier", "").strip()
        return joined_fields(addresses.get(pid, {}), registrations.get(pid, {}))

    def code(row: dict[str, str]) -> dict[str, Any]:
        row_id = row.get("RowIdentifier", "").strip()
        deleted = _removed(row)
        problem = problem_join(
            found_problems, _PROBLEM_FILE, PROBLEM_JOINS, (row_id, row.get("IDPatient", "")),
            known=full or row_id in problems or row_id in unproblems, deleted=deleted,
        )  # fmt: skip
        ctv3_code = row.get("CTV3Code", "").strip()
        return joined_fields(problem, ctv3.get(ctv3_code, {}), deleted=deleted)

    #: Multilex product id → its name and dm+d code, from the medication rows read so far.
    products: dict[str, tuple[str, str]] = {}

    def medication(row: dict[str, str]) -> dict[str, str]:
        product = row.get("IDMultiLexProduct", "").strip()
        if product and row.get("NameOfMedication", "").strip():
            products[product] = (row["NameOfMedication"].strip(), row.get("IDMultiLexDMD", ""))
        return medication_joins(row, extract_end, today)

    def sensitivity(row: dict[str, str]) -> dict[str, str]:
        """The drug's name: its own column where an extract has one, else a medication row's."""
        name, dmd = products.get(row.get("IDDrugCode", "").strip(), ("", ""))
        name = row.get("DrugName", "").strip() or name
        return {k: v.strip() for k, v in (("_DrugName", name), ("_DmdCode", dmd)) if v.strip()}

    enrich = {
        "SRPatient": patient,
        "SRCode": code,
        "SRPrimaryCareMedication": medication,
        "SRDrugSensitivity": sensitivity,
    }
    codes: set[str] = set()
    for table in TABLES:
        for record in table_records(
            folder,
            STYLE,
            table,
            org,
            ENCODING,
            notes,
            required=table in ("SROrganisation", "SRPatient"),
            enrich=enrich.get(table),
        ):
            if table == "SRCode":
                codes.add(record.ref.row_id)
            yield record
    if not full:
        ref = SourceRef(STYLE, org, "SRCode", "")
        yield from problem_changes(
            ref, _PROBLEM_FILE, found_problems, codes, PROBLEM_JOINS, "IDPatient"
        )
