"""The ingest pipeline on SystmOne-style input: idempotence, versions, deletion, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, select, update

from adapters.base import CorrectionRefused, ExtractError, resource_id, source_key
from adapters.codes import CodeMaps, load_all
from adapters.extract import map_columns
from adapters.mapper import load_table_map
from adapters.systmone import SystmOneAdapter
from engine import ingest as pipeline
from engine import quarantine
from engine.extracts import OlderExtract
from engine.identity import members_of_patient, person_of
from engine.ingest import ingest
from engine.models import IngestRun, QuarantineItem, Resource, ResourceVersion
from engine.quarantine import list_items, replay
from engine.settings import Settings
from engine.validate import validate_resource
from tests.factories import (
    S1_HEADERS,
    invalid_nhs_number,
    nhs_numbers,
    s1_code,
    s1_patient,
    s1_registration,
    write_csv,
    write_systmone,
)

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

NHS = nhs_numbers()


def run(engine: Engine, settings: Settings, codes: CodeMaps, folder: Path):  # type: ignore[no-untyped-def]
    return ingest(engine, settings, codes, SystmOneAdapter(), str(folder))


def bodies(engine: Engine, rtype: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    query = select(Resource.body)
    if rtype:
        query = query.where(Resource.resource_type == rtype)
    with engine.connect() as conn:
        return [orjson.loads(b) for b in conn.execute(query).scalars()]


def statuses(engine: Engine, key: str) -> dict[str, str]:
    """The status of each resource stored for source row ``key``, by type."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Resource.resource_type, Resource.status).where(Resource.source_key == key)
        )
        return {r.resource_type: r.status for r in rows}


def test_ingest_is_idempotent_and_valid(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1"), s1_code("11", "1")]
    )
    first = run(engine, settings, codes, folder)
    assert (first.created, first.quarantined) == (4, 0)  # organisation, patient, 2 observations
    assert all(validate_resource(b) == [] for b in bodies(engine))
    again = run(engine, settings, codes, folder)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_changed_row_makes_a_new_version(engine, settings, codes, tmp_path):
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    write_systmone(folder, [s1_patient("1", nhs)], [s1_code("10", "1", NumericValue="135")])
    second = run(engine, settings, codes, folder)
    assert (second.created, second.updated) == (0, 1)
    obs = bodies(engine, "Observation")[0]
    assert obs["valueQuantity"]["value"] == 135
    assert obs["meta"]["versionId"] == "2"
    with engine.connect() as conn:
        versions = (
            conn.execute(
                select(ResourceVersion.version_id).where(ResourceVersion.resource_id == obs["id"])
            )
            .scalars()
            .all()
        )
    assert sorted(versions) == [1, 2]


@pytest.mark.parametrize("blanked", [{}, {"DateEvent": ""}])
def test_deleted_row_is_entered_in_error(engine, settings, codes, tmp_path, blanked):
    """Even when the source blanks a required value on the row it deletes."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    removed = s1_code("10", "1", RemovedData="1", **blanked)
    write_systmone(folder, [s1_patient("1", nhs)], [removed])
    second = run(engine, settings, codes, folder)
    assert second.deleted == 1 and second.quarantined == 0
    with engine.connect() as conn:
        row = conn.execute(
            select(Resource.status, Resource.body).where(Resource.resource_type == "Observation")
        ).one()
    assert row.status == "entered-in-error"
    assert orjson.loads(row.body)["status"] == "entered-in-error"


def test_a_special_note_deleted_at_source_is_entered_in_error(engine, settings, codes, tmp_path):
    """TPP marks a deleted special note with DateDeleted: a warning the practice deleted must
    not stay an active Flag."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))])
    note = {"RowIdentifier": "55", "IDPatient": "1", "IDOrganisation": "5001",
            "IDOrganisationVisibleTo": "", "DateStart": "01 Jan 2024", "Type": "Warning",
            "Note": "Do not visit alone", "DateExpired": "", "DateDeleted": "02 Jan 2024",
            "RemovedData": "0"}  # fmt: skip
    write_csv(folder / "SRSpecialNotes.csv", list(note), [note], "cp1252")
    assert run(engine, settings, codes, folder).deleted == 1
    [flag] = bodies(engine, "Flag")
    assert flag["status"] == "entered-in-error"


def test_a_removed_row_with_its_columns_blanked_is_applied(engine, settings, codes, tmp_path):
    """TPP blanks a removed row's columns, its patient too: quarantining that deletion would
    leave the entry the practice deleted active and shared."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    blank = dict.fromkeys(S1_HEADERS["SRCode"], "") | {"RemovedData": "1"}
    removed = [blank | {"RowIdentifier": "10"}, blank | {"RowIdentifier": "11"}]
    write_systmone(folder, [s1_patient("1", nhs)], removed)
    second = run(engine, settings, codes, folder)
    assert (second.deleted, second.created, second.quarantined) == (1, 0, 0)
    [obs] = bodies(engine, "Observation")
    assert obs["status"] == "entered-in-error"
    assert obs["code"]["coding"] and obs["meta"]["versionId"] == "2"  # what was withdrawn
    again = run(engine, settings, codes, folder)
    assert (again.deleted, again.updated, again.quarantined) == (0, 0, 0)


def test_a_removed_patient_with_its_columns_blanked_is_withdrawn_and_linked_again(
    engine, settings, codes, tmp_path
):
    """A removed patient row blanked by TPP withdraws the Patient as it was stored, not as a
    blank, and has it linked again as a deletion is, so it no longer shows or joins people."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)])
    run(engine, settings, codes, folder)
    header = [*S1_HEADERS["SRPatient"], "RemovedData"]
    blank = dict.fromkeys(header, "") | {"RowIdentifier": "1", "RemovedData": "1"}
    write_csv(folder / "SRPatient.csv", header, [blank], "cp1252")
    second = run(engine, settings, codes, folder)
    assert (second.deleted, second.quarantined, second.linking["patients"]) == (1, 0, 1)
    [patient] = bodies(engine, "Patient")
    assert patient["active"] is False and patient["name"]  # the stored body, withdrawn


def test_windows_1252_names_and_bom(engine, settings, codes, tmp_path):
    cp = write_systmone(
        tmp_path / "cp", [s1_patient("1", next(NHS), FirstName="Renée", Surname="Poundé£")]
    )
    run(engine, settings, codes, cp)
    bom = write_systmone(
        tmp_path / "bom", [s1_patient("2", next(NHS), FirstName="Zoë")], encoding="utf-8-sig"
    )
    summary = run(engine, settings, codes, bom)
    assert summary.quarantined == 0
    names = {
        p["name"][0]["given"][0] + " " + p["name"][0]["family"] for p in bodies(engine, "Patient")
    }
    assert names == {"Renée Poundé£", "Zoë Smith"}


def test_a_windows_1252_file_saved_as_utf8_without_a_bom_is_read_as_utf8(
    engine, settings, codes, tmp_path
):
    """Every UTF-8 byte pair is valid Windows-1252, so without this 'Renée' would be stored as
    'RenÃ©e', with no issue or note, and matched and shown that way."""
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS), FirstName="Renée")], encoding="utf-8"
    )
    summary = run(engine, settings, codes, folder)
    (patient,) = bodies(engine, "Patient")
    assert patient["name"][0]["given"] == ["Renée"]
    assert (
        "SRPatient.csv: read as UTF-8, not cp1252: it has no BOM, but every byte outside ASCII in "
        "it is UTF-8"
    ) in summary.notes


def test_missing_required_column_names_file_and_column(engine, settings, codes, tmp_path):
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))])
    text = (folder / "SRPatient.csv").read_text(encoding="cp1252").replace("DateBirth", "Born")
    (folder / "SRPatient.csv").write_text(text, encoding="cp1252")
    with pytest.raises(ExtractError, match=r"SRPatient\.csv: missing required column DateBirth"):
        run(engine, settings, codes, folder)
    assert bodies(engine) == []


@pytest.mark.parametrize(
    ("patient", "code", "field", "reason", "patients"),
    [
        # The number is withheld, not the person: the Patient goes in without it.
        ({"NHSNumber": invalid_nhs_number()}, {}, "NHSNumber", "modulus-11", 2),
        ({"DateBirth": "31 Feb 1950"}, {}, "DateBirth", "not a real date", 1),
        (
            {},
            {"CTV3Code": "Xzzz9", "SNOMEDCode": "", "SNOMEDText": ""},
            "CTV3Code",
            "no map to http://snomed.info/sct",
            2,
        ),
        ({}, {"IDPatient": "404"}, "patient", "neither in this extract nor in the store", 2),
        ({}, {"DateEvent": "01 Foo 2024"}, "DateEvent", "unknown month", 2),
    ],
    ids=["invalid-nhs-number", "impossible-date", "unknown-code", "missing-patient", "bad-month"],
)
def test_bad_records_are_quarantined_and_the_rest_loads(
    engine, settings, codes, tmp_path, patient, code, field, reason, patients
):
    good = s1_patient("1", next(NHS))
    target = s1_patient("2", next(NHS), **patient)
    folder = write_systmone(
        tmp_path / "x", [good, target], [s1_code("10", "1"), s1_code("11", "1", **code)]
    )
    summary = run(engine, settings, codes, folder)
    items = list_items(engine)
    assert len(items) == 1 and summary.quarantined == 1
    item = items[0]
    assert item.field == field and reason in item.reason
    assert item.file in ("SRPatient.csv", "SRCode.csv") and item.line in (3, 3)
    assert len(bodies(engine, "Patient")) == patients
    assert len(bodies(engine, "Observation")) == (1 if code else 2)
    again = run(engine, settings, codes, folder)
    assert again.quarantined == 1 and len(list_items(engine)) == 1
    assert again.created == again.updated == 0


def test_a_row_without_an_id_keeps_its_own_quarantine_item(engine, settings, codes, tmp_path):
    """Named by its line alone, the next extract's id-less row on that line took over the open
    item, and the first rejected record (here another person's result) was lost to review."""
    people = [s1_patient("1", next(NHS)), s1_patient("2", next(NHS))]
    folder = write_systmone(tmp_path / "x", people, [s1_code("", "1", NumericValue="181")])
    run(engine, settings, codes, folder)
    assert run(engine, settings, codes, folder).quarantined == 1
    write_systmone(folder, people, [s1_code("", "2", NumericValue="99")])
    run(engine, settings, codes, folder)
    items = list_items(engine)
    assert sorted(i.record["fields"]["NumericValue"] for i in items) == ["181", "99"]
    assert all(i.field == "RowIdentifier" and i.line == 2 for i in items)


def test_a_test_patient_is_quarantined_with_its_records(engine, settings, codes, tmp_path):
    """A SystmOne test patient (TestPatient) must not be taken in as a real person, linked
    into people with its made-up results."""
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS), TestPatient="Y")], [s1_code("10", "1")]
    )
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 2 and bodies(engine, "Patient") == []
    assert bodies(engine, "Observation") == []
    [patient, code] = sorted(list_items(engine), key=lambda i: i.field or "")
    assert patient.field == "TestPatient" and "test patient" in patient.reason
    assert code.field == "patient"


def test_an_invalid_nhs_number_is_withheld_and_the_correction_adds_it(
    engine, settings, codes, tmp_path
):
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", invalid_nhs_number())], [s1_code("10", "1")]
    )
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 1 and len(bodies(engine, "Observation")) == 1
    (patient,) = bodies(engine, "Patient")
    assert all(i["system"] != NHS_SYSTEM for i in patient["identifier"])
    (item,) = list_items(engine)
    assert item.field == "NHSNumber" and "taken in without it" in item.reason
    assert run(engine, settings, codes, folder).quarantined == 1
    assert len(list_items(engine)) == 1
    number = next(NHS)
    fixed = replay(engine, settings, codes, ids=[item.id], corrections={"NHSNumber": number})
    assert fixed.updated == 1 and fixed.quarantined == 0 and list_items(engine) == []
    (patient,) = bodies(engine, "Patient")
    assert {"system": NHS_SYSTEM, "value": number}.items() <= next(
        i for i in patient["identifier"] if i["system"] == NHS_SYSTEM
    ).items()


def test_truncated_file_keeps_the_partial_row(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1"), s1_code("11", "1")]
    )
    raw = (folder / "SRCode.csv").read_bytes()
    (folder / "SRCode.csv").write_bytes(raw[: raw.rindex(b",Blood pressure,") + 8])
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 1 and len(bodies(engine, "Observation")) == 1
    item = list_items(engine)[0]
    assert item.line == 3 and "truncated" in item.reason
    restored = {
        k: v
        for k, v in s1_code("11", "1").items()
        if k not in item.record["fields"] or item.record["fields"][k] != v
    }
    with pytest.raises(CorrectionRefused, match="IDEvent: not a column the SRCode map reads"):
        replay(engine, settings, codes, [item.id], corrections=restored)
    read = map_columns(load_table_map("systmone", "SRCode"))
    restored = {k: v for k, v in restored.items() if k in read}
    fixed = replay(engine, settings, codes, [item.id], corrections=restored)
    assert fixed.created == 1 and list_items(engine) == []


def test_replay_after_the_map_is_fixed(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", CTV3Code="Xzzz9", SNOMEDCode="", SNOMEDText="")],
    )
    run(engine, settings, codes, folder)
    assert len(list_items(engine)) == 1
    still = replay(engine, settings, codes)
    assert still.quarantined == 1 and len(list_items(engine)) == 1
    fixes = settings.data_dir / "mappings" / "codes"
    fixes.mkdir(parents=True)
    (fixes / "local-ctv3.csv").write_text(
        "# source=http://read.info/ctv3 target=http://snomed.info/sct version=t name=local\n"
        "source_code,target_code\nXzzz9,75367002\n",
        encoding="utf-8",
    )
    fixed_codes = load_all(extra=settings.data_dir / "mappings")
    done = replay(engine, settings, fixed_codes)
    assert done.created == 1 and list_items(engine) == []
    assert [i.status for i in list_items(engine, status="replayed")] == ["replayed"]


def test_replay_patient_then_its_records(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS), DateBirth="31 Feb 1950")], [s1_code("10", "1")]
    )
    run(engine, settings, codes, folder)
    items = list_items(engine)
    assert [i.field for i in items] == ["DateBirth", "patient"]
    done = replay(engine, settings, codes, corrections=None, ids=[items[0].id])
    assert done.quarantined == 1
    fixed = replay(
        engine, settings, codes, ids=[items[0].id], corrections={"DateBirth": "01 Feb 1950"}
    )
    assert fixed.created == 1
    rest = replay(engine, settings, codes)
    assert rest.created == 1 and list_items(engine) == []


def test_confidential_and_sensitive_items_are_labelled(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [
            s1_code("10", "1", IDOrganisationVisibleTo="5001"),
            s1_code("11", "1", SNOMEDCode="76272004", SNOMEDText="Syphilis", CTV3Code="A94.."),
        ],
    )
    run(engine, settings, codes, folder)
    with engine.connect() as conn:
        labels = dict(conn.execute(select(Resource.source_key, Resource.labels)).all())
    assert labels["systmone|Y00001|SRCode|10"] == "source-confidential"
    assert labels["systmone|Y00001|SRCode|11"] == "sensitive-sti"


def s1_problem(code_row: str, **over: str) -> dict[str, str]:
    """An SRProblem row making the SRCode row ``code_row`` a problem of patient 1."""
    return {
        "RowIdentifier": "70", "IDCode": code_row, "IDPatient": "1", "CTV3Code": "XaJQs",
        "DateEnd": "", "Severity": "Major", "IDOrganisation": "5001",
        "IDOrganisationVisibleTo": "", "RemovedData": "0", **over,
    }  # fmt: skip


def test_problem_row_becomes_a_condition(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IsNumeric="N")],
        problems=[s1_problem("10")],
    )
    run(engine, settings, codes, folder)
    [condition] = bodies(engine, "Condition")
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    assert bodies(engine, "Observation") == []


def test_a_coded_event_recorded_on_a_date_alone_is_taken_without_an_instant(
    engine, settings, codes, tmp_path
):
    """SystmOne may write any date column as ``dd MMM yyyy``; ``Observation.issued`` is an R4
    instant, so a date-only ``DateEventRecorded`` quarantined the whole coded event, naming
    the FHIR element rather than the column. It is taken, without ``issued``."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", DateEventRecorded="01 Mar 2024"),
         s1_code("11", "1", DateEventRecorded="01 Mar 2024 10:15")],
    )  # fmt: skip
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 0
    issued = sorted(str(o.get("issued")) for o in bodies(engine, "Observation"))
    assert issued == ["2024-03-01T10:15:00+00:00", "None"]


def test_a_code_row_whose_problem_row_cannot_be_read_is_held_naming_it(
    engine, settings, codes, tmp_path
):
    """A lookup row with a bad byte was dropped without trace, so its code row was stored as a
    plain Observation and the problem left the person's problem list silently."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1")],
        problems=[
            {"RowIdentifier": "70", "IDCode": "10", "IDPatient": "1", "CTV3Code": "XaJQs",
             "DateEnd": "", "Severity": "Major X", "IDOrganisation": "5001",
             "IDOrganisationVisibleTo": "", "RemovedData": "0"}
        ],
    )  # fmt: skip
    path = folder / "SRProblem.csv"
    path.write_bytes(path.read_bytes().replace(b"Major X", b"Major \x81"))
    summary = run(engine, settings, codes, folder)
    problem = "SRProblem.csv, line 2: Severity: bytes that are not valid cp1252"
    assert f"{problem} (a lookup row: a record joined to it is held in quarantine)" in (
        summary.notes
    )
    assert bodies(engine, "Condition") == bodies(engine, "Observation") == []
    (item,) = list_items(engine)
    assert (item.file, item.line, item.field) == ("SRCode.csv", 2, "_JoinedRowProblem")
    assert item.reason.startswith(f"{problem} (a row joined into this record)")
    still = replay(engine, settings, codes, [item.id], corrections={"NumericValue": "121"})
    assert still.quarantined == 1 and bodies(engine, "Observation") == []


@pytest.mark.parametrize(
    ("closed", "runs_to"),
    [("Minor", "is still open at the end of the file \\(line 4\\)"), ('Minor"', "runs to line 4")],
)
def test_a_lookup_row_whose_quote_swallows_later_rows_refuses_the_extract(
    engine, settings, codes, tmp_path, closed, runs_to
):
    """The SRProblem rows swallowed by an unbalanced quote are not read: a code row whose
    swallowed problem the practice made private would be stored as a plain, unlabelled,
    shared Observation, and which code rows those are cannot be told."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IsNumeric="N"), s1_code("11", "1", IsNumeric="N")],
        problems=[
            s1_problem("10"),
            s1_problem("11", RowIdentifier="71", Severity="", IDOrganisationVisibleTo="5001"),
            s1_problem("12", RowIdentifier="72", Severity="Minor"),
        ],
    )
    path = folder / "SRProblem.csv"
    text = path.read_bytes().replace(b",Major,", b',"Major,')
    path.write_bytes(text.replace(b",Minor,", f",{closed},".encode()))
    with pytest.raises(
        ExtractError, match=f"SRProblem.csv, line 2: a quoted field opened on line 2 {runs_to}"
    ):
        run(engine, settings, codes, folder)
    assert bodies(engine) == []
    assert list_items(engine) == []


def test_a_problem_visible_to_one_organisation_labels_its_condition(
    engine, settings, codes, tmp_path
):
    """A problem the practice made private on its SRProblem row must not be shared as an
    unlabelled problem-list Condition."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IsNumeric="N")],
        problems=[s1_problem("10", IDOrganisationVisibleTo="5001")],
    )
    run(engine, settings, codes, folder)
    with engine.connect() as conn:
        labels = dict(conn.execute(select(Resource.resource_type, Resource.labels)).all())
    assert labels["Condition"] == "source-confidential"


def _problem_removed(engine, settings, codes, tmp_path, **code: str) -> Path:  # type: ignore[no-untyped-def]
    """An extract taken in with coded event 10 a problem, then written again with its problem
    row removed (and the event's columns ``code``): the folder, for the second run."""
    nhs = next(NHS)
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    write_systmone(
        folder,
        [s1_patient("1", nhs)],
        [s1_code("10", "1", **code)],
        [s1_problem("10", RemovedData="1")],
    )
    return folder


def test_a_coded_event_whose_problem_was_removed_leaves_no_active_condition(
    engine, settings, codes, tmp_path
):
    """Once its problem is removed the coded event maps to an Observation: the Condition it
    made before must be withdrawn, not left active on the shared problem list."""
    folder = _problem_removed(engine, settings, codes, tmp_path)
    second = run(engine, settings, codes, folder)
    assert (second.created, second.deleted) == (1, 1)
    key = "systmone|Y00001|SRCode|10"
    assert statuses(engine, key) == {"Condition": "entered-in-error", "Observation": "active"}
    [condition] = bodies(engine, "Condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    again = run(engine, settings, codes, folder)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_a_quarantined_record_withdraws_nothing_until_it_is_replayed(
    engine, settings, codes, tmp_path
):
    """A record that cannot be taken in must not withdraw what its key holds: the Condition
    goes only when the corrected record's Observation comes in."""
    folder = _problem_removed(engine, settings, codes, tmp_path, DateEvent="01 Foo 2024")
    second = run(engine, settings, codes, folder)
    assert (second.quarantined, second.deleted) == (1, 0)
    key = "systmone|Y00001|SRCode|10"
    assert statuses(engine, key) == {"Condition": "active"}
    [item] = list_items(engine)
    fixed = replay(engine, settings, codes, [item.id], {"DateEvent": "01 Mar 2024 10:10:00"})
    assert (fixed.created, fixed.deleted, fixed.quarantined) == (1, 1, 0)
    assert statuses(engine, key) == {"Condition": "entered-in-error", "Observation": "active"}


def test_a_run_hands_the_gil_over_quickly_and_restores_the_interval(
    engine, settings, codes, tmp_path
):
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")])
    before = sys.getswitchinterval()
    during: list[float] = []
    ingest(
        engine, settings, codes, SystmOneAdapter(), str(folder),
        progress=lambda _: during.append(sys.getswitchinterval()),
    )  # fmt: skip
    assert set(during) == {0.001}
    assert sys.getswitchinterval() == before


def test_a_row_id_met_again_in_a_later_batch_or_the_same_one_is_a_duplicate(
    engine, settings, codes, tmp_path
):
    """The checks that depend on what the run wrote earlier (in its own transaction on
    PostgreSQL, committed to staging on SQLite) see every earlier batch."""
    patients = [s1_patient(str(i), next(NHS)) for i in range(1, 11)]
    observations = [s1_code(str(100 + i), str(1 + i % 10)) for i in range(120)]
    observations.insert(60, s1_code("105", "1"))  # batch 2 repeats a row of batch 1 (size 50)
    observations.append(s1_code("218", "2"))  # the last batch repeats a row of its own
    folder = write_systmone(tmp_path / "x", patients, observations)
    summary = run(engine, settings, codes, folder)
    assert (summary.created, summary.quarantined) == (1 + 10 + 120, 2)
    items = list_items(engine)
    assert sorted(i.line for i in items) == [62, 123]
    assert all("duplicate row identifier" in i.reason for i in items)
    again = run(engine, settings, codes, folder)
    assert (again.created, again.unchanged, again.quarantined) == (0, 131, 2)
    assert len(list_items(engine)) == 2


def test_a_run_that_died_before_linking_is_linked_by_the_next(
    engine, settings, codes, tmp_path, monkeypatch
):
    """The run commits, then its Patients are linked: a process killed in between left them in
    no person, and the re-run, finding nothing changed, never linked them."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")])

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt("killed while linking")

    monkeypatch.setattr(pipeline, "relink", killed)
    with pytest.raises(KeyboardInterrupt):
        run(engine, settings, codes, folder)
    monkeypatch.undo()
    (patient,) = bodies(engine, "Patient")
    with engine.connect() as conn:
        assert person_of(conn, patient["id"]) is None
    again = run(engine, settings, codes, folder)
    assert again.unchanged and any("stopped before linking" in n for n in again.notes)
    with engine.connect() as conn:
        assert person_of(conn, patient["id"]) is not None
        waiting = conn.execute(select(IngestRun.id).where(IngestRun.linked_at.is_(None))).all()
    assert waiting == []


def _manifest(folder: Path, runs_to: str) -> Path:
    row = {"FileName": "SRPatient.csv", "IsDelta": "N", "DateExtractFrom": "01 Jan 2005",
           "DateExtractTo": runs_to}  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(row), [row], "cp1252")
    return folder


def test_an_extract_older_than_one_taken_in_is_refused(engine, settings, codes, tmp_path):
    """Last month's extract loaded after this month's would put back last month's surname and
    results as a plain update: it is refused, naming both dates, and changes nothing; the
    same extract again, or with --allow-older (a restore), is taken."""
    number = next(NHS)
    new = write_systmone(tmp_path / "new", [s1_patient("1", number, Surname="Jones")])
    old = write_systmone(tmp_path / "old", [s1_patient("1", number, Surname="Smith")])
    run(engine, settings, codes, _manifest(new, "30 Nov 2026 23:59:59"))
    _manifest(old, "31 Oct 2026 23:59:59")
    with pytest.raises(OlderExtract, match=r"to 2026-10-31T23:59:59.*running to 2026-11-30"):
        run(engine, settings, codes, old)
    [patient] = bodies(engine, "Patient")
    assert patient["name"][0]["family"] == "Jones"
    assert run(engine, settings, codes, new).updated == 0
    restored = ingest(engine, settings, codes, SystmOneAdapter(), str(old), allow_older=True)
    assert restored.updated == 1
    assert restored.as_dict()["extract"]["runs_to"] == "2026-10-31T23:59:59+00:00"


def test_an_extract_taken_earlier_the_same_day_is_refused(engine, settings, codes, tmp_path):
    """The morning's extract loaded after the evening's would put the morning's values back."""
    number = next(NHS)
    evening = write_systmone(tmp_path / "pm", [s1_patient("1", number, Surname="Jones")])
    morning = write_systmone(tmp_path / "am", [s1_patient("1", number, Surname="Smith")])
    run(engine, settings, codes, _manifest(evening, "30 Nov 2026 20:00:00"))
    with pytest.raises(OlderExtract, match="runs to 2026-11-30T08:00:00"):
        run(engine, settings, codes, _manifest(morning, "30 Nov 2026 08:00:00"))


def test_an_older_extract_of_another_practice_is_not_refused(engine, settings, codes, tmp_path):
    """The newest extract is per practice: another practice's older extract is its own."""
    first = write_systmone(tmp_path / "a", [s1_patient("1", next(NHS))])
    run(engine, settings, codes, _manifest(first, "30 Nov 2026"))
    other = write_systmone(
        tmp_path / "b",
        [s1_patient("1", next(NHS))],
        organisations=({"ID": "6001", "Name": "Hillside", "NationalId": "Y00002"},),
    )
    assert run(engine, settings, codes, _manifest(other, "31 Oct 2026")).created >= 1


def _note(row_id: str, text: str, **over: str) -> dict[str, str]:
    return {"RowIdentifier": row_id, "IDPatient": "1", "IDOrganisation": "5001",
            "IDOrganisationVisibleTo": "", "DateStart": "01 Jan 2024", "Type": "Warning",
            "Note": text, "DateExpired": "", "DateDeleted": "", "RemovedData": "0",
            **over}  # fmt: skip


@pytest.mark.parametrize("other_is_stored", [True, False])
def test_a_corrected_key_naming_another_record_is_refused(
    engine, settings, codes, tmp_path, other_is_stored
):
    """An id-less row given the id of another row would update that row's stored warning
    with its own text, or close that row's open item (never taken in) as replayed: refused,
    naming the other record, and nothing changes."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))])
    other = _note(
        "20", "Do not visit alone", DateStart="01 Jan 2024" if other_is_stored else "31 Feb 2024"
    )
    rows = [_note("", "Dog in house"), other]
    write_csv(folder / "SRSpecialNotes.csv", list(rows[0]), rows, "cp1252")
    run(engine, settings, codes, folder)
    idless = next(i for i in list_items(engine) if i.line == 2)
    before = sorted((i.id, i.status) for i in list_items(engine, status=None))
    named = "a record already stored" if other_is_stored else "open item"
    with pytest.raises(CorrectionRefused, match=f"SRSpecialNotes\\|20 names {named}"):
        replay(engine, settings, codes, ids=[idless.id], corrections={"RowIdentifier": "20"})
    assert sorted((i.id, i.status) for i in list_items(engine, status=None)) == before
    texts = [f["code"]["text"] for f in bodies(engine, "Flag")]
    assert texts == (["Do not visit alone"] if other_is_stored else [])


def test_a_problem_kept_before_its_visibility_was_joined_is_taken_as_private(
    engine, settings, codes, tmp_path
):
    """A code row quarantined before the reader joined its problem row's visibility cannot
    learn it on replay: taken as private to its practice (fail closed), not shared."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IsNumeric="N", DateEvent="31 Feb 2024")],
        problems=[s1_problem("10")],
    )
    run(engine, settings, codes, folder)
    (item,) = list_items(engine)
    record = dict(item.record)
    record["fields"] = {k: v for k, v in record["fields"].items() if k != "_ProblemVisibleTo"}
    with engine.begin() as conn:
        conn.execute(
            update(QuarantineItem).where(QuarantineItem.id == item.id).values(record=record)
        )
    replay(engine, settings, codes, [item.id], corrections={"DateEvent": "28 Feb 2024"})
    with engine.connect() as conn:
        labels = dict(conn.execute(select(Resource.resource_type, Resource.labels)).all())
    assert labels["Condition"] == "source-confidential"


def test_a_patient_flagged_as_a_test_patient_later_is_withdrawn_with_its_records(
    engine, settings, codes, tmp_path
):
    """A patient taken in before being flagged TestPatient is withdrawn once flagged (and kept
    in quarantine), and its new records are not taken in under it."""
    number = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", number)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    write_systmone(
        folder, [s1_patient("1", number, TestPatient="Y")], [s1_code("10", "1"), s1_code("11", "1")]
    )
    run(engine, settings, codes, folder)
    with engine.connect() as conn:
        live = (
            conn.execute(select(Resource.source_key).where(Resource.status != "entered-in-error"))
            .scalars()
            .all()
        )
    assert not any(k.endswith("|SRCode|11") for k in live), live


def test_a_test_patient_deleted_at_source_is_entered_in_error(engine, settings, codes, tmp_path):
    """A stored patient the source deletes while flagged TestPatient is a deletion: the stored
    Patient becomes entered-in-error rather than staying live behind a held row."""
    number = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", number)])
    run(engine, settings, codes, folder)
    gone = {**s1_patient("1", number, TestPatient="Y"), "RemovedData": "1"}
    write_csv(folder / "SRPatient.csv", [*S1_HEADERS["SRPatient"], "RemovedData"], [gone], "cp1252")
    run(engine, settings, codes, folder)
    with engine.connect() as conn:
        status = conn.execute(
            select(Resource.status).where(Resource.resource_type == "Patient")
        ).scalar_one()
    assert status == "entered-in-error"


def test_a_column_name_with_a_byte_the_encoding_cannot_read_fails_nothing(
    engine, settings, codes, tmp_path
):
    """A column named with an undecodable byte, naming the field of a quarantined row, could
    not be stored (a lone surrogate), so the whole run failed: the name is kept as shown."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", IDEvent="E\x01"), s1_code("11", "1")],
    )
    path = folder / "SRCode.csv"
    path.write_bytes(path.read_bytes().replace(b"IDEvent", b"IDEv\x81nt").replace(b"\x01", b"\x81"))
    summary = run(engine, settings, codes, folder)
    assert summary.status == "completed" and summary.quarantined == 1
    [item] = list_items(engine)
    assert item.field == "IDEv\ufffdnt"


def test_a_delta_without_the_problem_row_withdraws_no_problem(engine, settings, codes, tmp_path):
    """A delta carries changed rows only: a coded event sent again without its (unchanged)
    SRProblem row is not thereby no longer a problem, so its Condition stays on the list."""
    nhs = next(NHS)
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    delta = write_systmone(tmp_path / "d", [s1_patient("1", nhs)], [s1_code("10", "1")])
    row = {"FileName": "SRCode.csv", "IsDelta": "Y", "DateExtractFrom": "01 Jan 2005",
           "DateExtractTo": "01 Dec 2026"}  # fmt: skip
    write_csv(delta / "SRManifest.csv", list(row), [row], "cp1252")
    summary = run(engine, settings, codes, delta)
    assert summary.deleted == 0
    assert statuses(engine, "systmone|Y00001|SRCode|10")["Condition"] == "active"


def test_the_deleted_records_of_a_deleted_patient_are_deleted(engine, settings, codes, tmp_path):
    """TPP removes a patient (its row blanked) and its coded entry in one extract: the entry's
    deletion needs no live patient, or it would be held and the entry stay shared."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    header = [*S1_HEADERS["SRPatient"], "RemovedData"]
    blank = dict.fromkeys(header, "") | {"RowIdentifier": "1", "RemovedData": "1"}
    write_systmone(folder, [s1_patient("1", nhs)], [s1_code("10", "1", RemovedData="1")])
    write_csv(folder / "SRPatient.csv", header, [blank], "cp1252")
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 0
    assert statuses(engine, "systmone|Y00001|SRCode|10") == {"Observation": "entered-in-error"}


@pytest.mark.parametrize("says", ["Yes", "T", "Delta", ""])
def test_a_manifest_that_does_not_plainly_say_full_is_a_delta(
    engine, settings, codes, tmp_path, says
):
    """A delta read as full withdraws every re-sent coded event's Condition whose problem row
    it does not carry: an IsDelta the reader does not know is taken as a delta."""
    nhs = next(NHS)
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    delta = write_systmone(tmp_path / "d", [s1_patient("1", nhs)], [s1_code("10", "1")])
    row = {"FileName": "SRCode.csv", "IsDelta": says, "DateExtractFrom": "01 Jan 2005",
           "DateExtractTo": "01 Dec 2026"}  # fmt: skip
    write_csv(delta / "SRManifest.csv", list(row), [row], "cp1252")
    assert run(engine, settings, codes, delta).deleted == 0
    assert statuses(engine, "systmone|Y00001|SRCode|10")["Condition"] == "active"


def test_an_extract_missing_a_file_its_manifest_lists_is_refused(engine, settings, codes, tmp_path):
    """A full extract whose manifest lists SRProblem.csv, which never arrived, would read it
    as empty and take every problem as removed: refused, nothing taken in."""
    nhs = next(NHS)
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    (folder / "SRProblem.csv").unlink()
    rows = [
        {"FileName": name, "IsDelta": "N", "DateExtractFrom": "01 Jan 2005",
         "DateExtractTo": "01 Dec 2026"}
        for name in ("SRPatient.csv", "SRCode.csv", "SRProblem.csv")
    ]  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(rows[0]), rows, "cp1252")
    with pytest.raises(ExtractError, match=r"SRManifest\.csv lists SRProblem\.csv"):
        run(engine, settings, codes, folder)
    assert statuses(engine, "systmone|Y00001|SRCode|10")["Condition"] == "active"


def test_a_patient_taken_out_is_no_member_of_a_person(engine, settings, codes, tmp_path):
    """A patient flagged TestPatient after it was taken in is withdrawn, but its records not
    sent again stay: read through its person (by its Patient id), they would still show."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    pid = resource_id("Patient", source_key("systmone", "Y00001", "SRPatient", "1"))
    with engine.connect() as conn:
        assert members_of_patient(conn, pid) is not None
    write_systmone(folder, [s1_patient("1", nhs, TestPatient="Y")])
    run(engine, settings, codes, folder)
    with engine.connect() as conn:
        assert members_of_patient(conn, pid) is None


def _listing(folder: Path, names: tuple[str, ...], delta: str = "N") -> None:
    rows = [
        {"FileName": name, "IsDelta": delta, "DateExtractFrom": "01 Jan 2005",
         "DateExtractTo": "01 Dec 2026"}
        for name in names
    ]  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(rows[0]), rows, "cp1252")


def test_a_listed_file_is_read_whatever_the_case_of_its_name(engine, settings, codes, tmp_path):
    """A manifest listing (and an exporter writing) srproblem.csv: read as SRProblem.csv (not
    read, a full extract would withdraw every problem), and the run says so."""
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    (folder / "SRProblem.csv").rename(folder / "srproblem.csv")
    _listing(folder, ("SRPatient.csv", "SRCode.csv", "srproblem.csv"))
    again = run(engine, settings, codes, folder)
    assert "x: srproblem.csv read as SRProblem.csv" in again.notes
    assert statuses(engine, "systmone|Y00001|SRCode|10")["Condition"] == "active"


def test_a_delta_may_list_a_file_it_did_not_send(engine, settings, codes, tmp_path):
    """A delta listing SRProblem.csv with no changed problem rows (so no file) changed none:
    refusing it would stop the feed."""
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, folder)
    delta = write_systmone(tmp_path / "d", [], [s1_code("10", "1", NumericValue="7")])
    _listing(delta, ("SRCode.csv", "SRProblem.csv"), delta="Y")
    run(engine, settings, codes, delta)
    assert statuses(engine, "systmone|Y00001|SRCode|10")["Condition"] == "active"


def test_the_same_extract_with_rows_reordered_changes_nothing(engine, settings, codes, tmp_path):
    """Two open addresses (and two open registrations) starting the same day: the last one
    the file listed won, so the same extract in another order made a new Patient version."""

    def address(row_id: str, line: str) -> dict[str, str]:
        return {"RowIdentifier": row_id, "IDPatient": "1", "AddressLine1": line,
                "AddressLine2": "", "AddressLine3": "", "AddressLine4": "", "AddressLine5": "",
                "PostCode": "BO9 1RH", "DateEvent": "01 Jan 2020", "DateTo": "",
                "AddressType": "Home", "RemovedData": "0"}  # fmt: skip

    number = next(NHS)
    registrations = [s1_registration("90", "5001"), s1_registration("91", "5002")]
    addresses = [address("70", "1 Old Street"), address("71", "2 New Road")]
    organisations = [{"ID": "5001", "Name": "A", "NationalId": "Y00001"},
                     {"ID": "5002", "Name": "B", "NationalId": "Y00002"}]  # fmt: skip
    for i, step in enumerate((1, -1)):
        folder = write_systmone(tmp_path / f"s{i}", [s1_patient("1", number)],
                                registrations=registrations[::step],
                                organisations=organisations)  # fmt: skip
        write_csv(folder / "SRPatientAddressHistory.csv",
                  S1_HEADERS["SRPatientAddressHistory"], addresses[::step], "cp1252")  # fmt: skip
        summary = run(engine, settings, codes, folder)
    assert summary.updated == 0


def test_a_replay_waiting_for_an_ingest_does_not_overwrite_what_it_took_in(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A replay read its items, then waited for the ingest lock; the ingest that held it took
    in the source's own fix (140) and closed the item, and the replay then stored the stale
    quarantined row (130) over it. Items are read again under the lock."""
    nhs = next(NHS)
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, folder)
    bad = s1_code("10", "1", NumericValue="130", DateEvent="31 Feb 2024")
    write_systmone(folder, [s1_patient("1", nhs)], [bad])
    run(engine, settings, codes, folder)
    [item] = list_items(engine)
    run_records = quarantine.run_records

    def after_the_ingest(*args: object, **kwargs: object) -> object:
        write_systmone(folder, [s1_patient("1", nhs)], [s1_code("10", "1", NumericValue="140")])
        run(engine, settings, codes, folder)
        return run_records(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(quarantine, "run_records", after_the_ingest)
    done = replay(engine, settings, codes, [item.id], {"DateEvent": "01 Mar 2024 10:10:00"})
    with engine.connect() as conn:
        body = conn.execute(
            select(Resource.body).where(Resource.resource_type == "Observation")
        ).scalar_one()
        status = conn.execute(
            select(QuarantineItem.status).where(QuarantineItem.id == item.id)
        ).scalar_one()
    assert orjson.loads(body)["valueQuantity"]["value"] == 140 and status == "superseded"
    assert done.notes == [f"item {item.id}: closed or changed by an ingest meanwhile; not replayed"]


@pytest.mark.parametrize("column", ["RemovedData", "IDOrganisationVisibleTo"])
def test_an_extract_without_a_removal_or_visibility_column_is_refused(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, column: str
) -> None:
    """With the header spelled 'Removeddata' a deleted row stayed active, and without
    IDOrganisationVisibleTo a row visible to its practice alone was shared; the only trace was
    an 'extra columns ignored' note."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")])
    path = folder / "SRCode.csv"
    header, rest = path.read_text(encoding="cp1252").split("\n", 1)
    path.write_text(f"{header.replace(column, column.lower())}\n{rest}", encoding="cp1252")
    with pytest.raises(ExtractError, match=f"missing required column {column}"):
        run(engine, settings, codes, folder)
