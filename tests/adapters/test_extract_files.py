"""How the CSV-folder readers find their files and join their lookups: a table file under any
case of its name, lookup ids padded as the rows they join are, and ids no store can hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.base import ExtractError
from adapters.codes import CodeMaps
from adapters.extract import row_key
from engine.settings import Settings
from tests.adapters import test_council as council
from tests.adapters import test_emis as emis
from tests.engine.test_ingest import bodies, run, s1_problem, statuses
from tests.factories import (
    S1_HEADERS,
    nhs_numbers,
    s1_code,
    s1_patient,
    s1_registration,
    write_csv,
    write_systmone,
)

NHS = nhs_numbers(999_420_000)


def test_a_table_file_named_in_upper_case_is_read_and_noted(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")])
    (folder / "SRCode.csv").rename(folder / "SRCode.CSV")
    summary = run(engine, settings, codes, folder)
    assert (summary.created, summary.quarantined) == (3, 0)
    assert "x: SRCode.CSV read as SRCode.csv" in summary.notes
    assert statuses(engine, "systmone|Y00001|SRCode|10") == {"Observation": "active"}


def test_a_lookup_file_named_in_another_case_is_joined(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IsNumeric="N")],
        problems=[s1_problem("10")],
    )
    (folder / "SRProblem.csv").rename(folder / "SRPROBLEM.CSV")
    run(engine, settings, codes, folder)
    assert statuses(engine, "systmone|Y00001|SRCode|10") == {"Condition": "active"}


def test_two_files_of_one_table_differing_in_case_refuse_the_extract(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")])
    (folder / "srcode.csv").write_bytes((folder / "SRCode.csv").read_bytes())
    with pytest.raises(ExtractError, match=r"SRCode\.csv and srcode\.csv are both"):
        run(engine, settings, codes, folder)
    assert bodies(engine) == []


def test_an_emis_table_file_named_in_upper_case_is_read(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    tables = emis.default_tables()
    expected = emis.run(engine, settings, codes, emis.write_extract(tmp_path / "a", tables))
    again = emis.write_extract(tmp_path / "b", tables)
    (again / "CareRecord_Observation.csv").rename(again / "CareRecord_Observation.CSV")
    (again / "Coding_ClinicalCode.csv").rename(again / "coding_clinicalcode.csv")
    summary = emis.run(engine, settings, codes, again)
    counts = (summary.read, summary.created, summary.updated, summary.deleted, summary.quarantined)
    assert counts == (expected.read, 0, 0, 0, expected.quarantined)  # all read, as before


def test_a_council_table_file_named_in_upper_case_is_read(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    folder = council.write_extract(tmp_path / "c", council.standard())
    (folder / "events.csv").rename(folder / "Events.CSV")
    summary = council.run(engine, settings, codes, str(folder))
    assert summary.created == council.CREATED


def test_a_padded_problem_idcode_changes_nothing(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """Joined by the raw id, a padded IDCode met no code row: the Condition was withdrawn."""
    nhs = next(NHS)
    code = s1_code("10", "1", IsNumeric="N")
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [code], problems=[s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    write_systmone(folder, [s1_patient("1", nhs)], [code], problems=[s1_problem(" 10 ")])
    again = run(engine, settings, codes, folder)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0), again.as_dict()
    assert statuses(engine, "systmone|Y00001|SRCode|10") == {"Condition": "active"}


def test_padded_patient_ids_in_lookups_join_their_patient(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        registrations=[s1_registration("800", "5001", patient=" 1")],
    )
    address = {
        "RowIdentifier": "900", "IDPatient": "1 ", "AddressLine1": "1 Mill Lane",
        "AddressLine4": "Ambridge", "PostCode": "AB1 2CD", "DateEvent": "01 Jan 2020",
        "AddressType": "H", "RemovedData": "0",
    }  # fmt: skip
    header = S1_HEADERS["SRPatientAddressHistory"]
    write_csv(folder / "SRPatientAddressHistory.csv", header, [address], "cp1252")
    run(engine, settings, codes, folder)
    [patient] = bodies(engine, "Patient")
    assert patient["address"][0]["postalCode"] == "AB1 2CD"
    assert patient["generalPractitioner"][0]["reference"].startswith("Organization/")


def test_a_row_id_holding_a_control_character_is_named_by_its_line() -> None:
    row_id, issue = row_key({"RowIdentifier": "1\x1a", "x": "y"}, ["RowIdentifier"], 7)
    assert row_id.startswith("line-7-")
    assert issue is not None and issue.field == "RowIdentifier"
    assert issue.reason == "row identifier '1\\x1a' holds control character U+001A"
    assert row_key({"RowIdentifier": " 12 "}, ["RowIdentifier"], 7) == ("12", None)


def test_an_organisation_code_holding_a_nul_refuses_the_extract(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    org = {"ID": "5001", "Name": "Riverside Surgery", "NationalId": "Y00\x0001"}
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], organisations=[org])
    with pytest.raises(ExtractError, match=r"SROrganisation\.csv, line 2: NationalId .* control"):
        run(engine, settings, codes, folder)
