"""Small synthetic inputs for tests: NHS numbers in the 999 range and SystmOne-style extracts."""

from __future__ import annotations

import copy
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from adapters.values import nhs_check_digit


def nhs_numbers(start: int = 999_000_000) -> Iterator[str]:
    """Valid test NHS numbers (999 range, modulus 11), in order."""
    n = start
    while True:
        digit = nhs_check_digit(f"{n:09d}")
        if digit is not None:
            yield f"{n:09d}{digit}"
        n += 1


def invalid_nhs_number() -> str:
    valid = next(nhs_numbers())
    return valid[:9] + str((int(valid[9]) + 1) % 10)


def write_csv(path: Path, header: list[str], rows: Sequence[dict[str, str]], encoding: str) -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.DictWriter(fh, header, lineterminator="\r\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


S1_HEADERS: dict[str, list[str]] = {
    "SROrganisation": ["ID", "Name", "NationalId"],
    "SRPatient": [
        "RowIdentifier",
        "Title",
        "FirstName",
        "MiddleNames",
        "Surname",
        "NHSNumber",
        "DateBirth",
        "DateDeath",
        "Gender",
        "SpineMatched",
        "TestPatient",
    ],
    "SRPatientAddressHistory": [
        "RowIdentifier",
        "IDPatient",
        "AddressLine1",
        "AddressLine2",
        "AddressLine3",
        "AddressLine4",
        "AddressLine5",
        "PostCode",
        "DateEvent",
        "DateTo",
        "AddressType",
        "RemovedData",
    ],
    "SRCode": [
        "RowIdentifier",
        "IDOrganisationVisibleTo",
        "DateEventRecorded",
        "DateEvent",
        "CTV3Code",
        "CTV3Text",
        "SNOMEDCode",
        "SNOMEDText",
        "NumericComparator",
        "IsNumeric",
        "NumericValue",
        "NumericUnit",
        "IDEvent",
        "IDPatient",
        "IDOrganisation",
        "RemovedData",
    ],
    "SRPatientRegistration": [
        "RowIdentifier",
        "IDPatient",
        "IDOrganisation",
        "DateRegistration",
        "DateDeregistration",
        "RegistrationStatus",
        "RemovedData",
    ],
    "SRProblem": [
        "RowIdentifier",
        "IDCode",
        "IDPatient",
        "CTV3Code",
        "DateEnd",
        "Severity",
        "IDOrganisation",
        "IDOrganisationVisibleTo",
        "RemovedData",
    ],
}


def s1_patient(row_id: str, nhs: str, **over: str) -> dict[str, str]:
    return {
        "RowIdentifier": row_id,
        "Title": "Mrs",
        "FirstName": "Renée",
        "MiddleNames": "",
        "Surname": "Smith",
        "NHSNumber": nhs,
        "DateBirth": "01 Mar 1950",
        "DateDeath": "",
        "Gender": "F",
        "SpineMatched": "Y",
        "TestPatient": "N",
        **over,
    }


def s1_registration(row_id: str, org: str, patient: str = "1") -> dict[str, str]:
    """A current GMS registration of ``patient`` at the practice with TPP id ``org``."""
    return {
        "RowIdentifier": row_id, "IDPatient": patient, "IDOrganisation": org,
        "DateRegistration": "01 Jan 2001", "DateDeregistration": "", "RegistrationStatus": "GMS",
        "RemovedData": "0",
    }  # fmt: skip


def s1_code(row_id: str, patient: str, **over: str) -> dict[str, str]:
    return {
        "RowIdentifier": row_id,
        "IDOrganisationVisibleTo": "",
        "DateEventRecorded": "01 Mar 2024 10:15:00",
        "DateEvent": "01 Mar 2024 10:10:00",
        "CTV3Code": "XaJQs",
        "CTV3Text": "Blood pressure reading",
        "SNOMEDCode": "75367002",
        "SNOMEDText": "Blood pressure",
        "NumericComparator": "",
        "IsNumeric": "Y",
        "NumericValue": "120",
        "NumericUnit": "mmHg",
        "IDEvent": "1",
        "IDPatient": patient,
        "IDOrganisation": "5001",
        "RemovedData": "0",
        **over,
    }


def write_systmone(
    folder: Path,
    patients: list[dict[str, str]],
    codes: Sequence[dict[str, str]] = (),
    problems: Sequence[dict[str, str]] = (),
    encoding: str = "cp1252",
    organisations: Sequence[dict[str, str]] = (
        {"ID": "5001", "Name": "Riverside Surgery", "NationalId": "Y00001"},
    ),
    registrations: Sequence[dict[str, str]] = (),
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "SROrganisation.csv", S1_HEADERS["SROrganisation"], organisations, encoding)
    if registrations:
        write_csv(
            folder / "SRPatientRegistration.csv",
            S1_HEADERS["SRPatientRegistration"],
            registrations,
            encoding,
        )
    write_csv(folder / "SRPatient.csv", S1_HEADERS["SRPatient"], patients, encoding)
    if codes:
        write_csv(folder / "SRCode.csv", S1_HEADERS["SRCode"], list(codes), encoding)
    if problems:
        write_csv(folder / "SRProblem.csv", S1_HEADERS["SRProblem"], list(problems), encoding)
    return folder


#: Values to break a resource with: valid in some elements and not in others, or in none.
JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from(
        ["", "x", "2009-13-45", "Patient/p1", " lead", "final", "urn:uuid:x", "<p>no div</p>"]
    ),
    st.just([]),
    st.just([None]),
    st.just({}),
    st.just({"reference": 1}),
    st.just({"coding": [{"code": 5}]}),
    st.just({"unknown": "element"}),
)
#: Where a value sits in a JSON document: its keys and indexes from the root.
JsonPath = tuple[str | int, ...]


def paths_in(node: Any, deeper_than: int, path: JsonPath = ()) -> list[JsonPath]:
    """Every path in a JSON document more than ``deeper_than`` steps down, for an edit
    (:data:`JUNK`) to land anywhere below that."""
    found = [path] if len(path) > deeper_than else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()  # fmt: skip
    for key, child in items:
        found.extend(paths_in(child, deeper_than, (*path, key)))
    return found


def edited(doc: Any, edits: Sequence[tuple[JsonPath, Any]]) -> Any:
    """A copy of ``doc`` with each value put at its path; an edit whose parent an earlier
    edit replaced is left out."""
    out = copy.deepcopy(doc)
    for path, value in edits:
        node = out
        try:
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue
    return out
