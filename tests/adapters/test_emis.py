"""The EMIS-style adapter: a tiny synthetic extract through the whole pipeline, and pure mapping."""

from __future__ import annotations

from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from adapters import labels
from adapters.base import CorrectionRefused, ExtractError, MapContext, SourceRecord, SourceRef
from adapters.codes import READ2, SNOMED, CodeMaps, Target, read_v2_code
from adapters.emis import EmisAdapter
from adapters.emis.read import value_fields
from engine.canonical import dumps, loads
from engine.ingest import RunSummary, ingest
from engine.models import QuarantineItem, Resource
from engine.quarantine import replay
from engine.settings import Settings
from engine.validate import validate_resource
from tests.factories import invalid_nhs_number, nhs_numbers, write_csv

ODS = "Y90099"
NHS_OK, NHS_CONF, NHS_SPINE = islice(nhs_numbers(999_100_000), 3)
TRUE, FALSE = "True", "False"


def guid(n: int) -> str:
    return "{" + f"{n:08X}-5A1E-4C0D-9E55-0000000000{n:02X}" + "}"


ORG, GP = guid(1), guid(2)
P_OK, P_CONF, P_BAD, P_SPINE = guid(10), guid(11), guid(12), guid(13)
#: Cited by an observation but in no Admin_Patient row (nor the store).
P_MISSING = guid(14)
CONSULT = guid(20)
O_BP, O_ASTHMA, O_ALLERGY, O_SMOKER = guid(30), guid(31), guid(32), guid(33)
O_UNKNOWN, O_DELETED, O_CONF, O_ORPHAN = guid(34), guid(35), guid(36), guid(37)
DRUG, ISSUE = guid(40), guid(41)
SYSTOLIC, ASTHMA, PENICILLIN, SMOKER = "1200001", "1200002", "1200003", "1200004"
UNKNOWN_CODE, SALBUTAMOL = "1299999", "40106"


def patient(pid: str, nhs: str, **over: str) -> dict[str, str]:
    return {
        "PatientGuid": pid,
        "OrganisationGuid": ORG,
        "Title": "Ms",
        "GivenName": "Ada Jane",
        "Surname": "Testperson",
        "Sex": "F",
        "DateOfBirth": "1961-04-02",
        "NhsNumber": nhs,
        "NHSNumberStatus": "01",
        "HouseNameFlatNumber": "Flat 2",
        "NumberAndStreet": "1 Test Lane",
        "Town": "Felpersham",
        "Postcode": "ZZ99 3AA",
        "DateOfRegistration": "2001-05-01",
        "SpineSensitive": FALSE,
        "IsConfidential": FALSE,
        "Deleted": FALSE,
        **over,
    }


def observation(oid: str, pid: str, code: str, **over: str) -> dict[str, str]:
    return {
        "ObservationGuid": oid,
        "PatientGuid": pid,
        "EffectiveDate": "2024-03-01",
        "EffectiveDatePrecision": "YMD",
        "CodeId": code,
        "ObservationType": "Observation",
        "ConsultationGuid": CONSULT,
        "IsConfidential": FALSE,
        "Deleted": FALSE,
        **over,
    }


def default_tables() -> dict[str, list[dict[str, str]]]:
    return {
        "Admin_Organisation": [
            {
                "OrganisationGuid": ORG,
                "OrganisationName": "Felpersham Test Practice",
                "ODSCode": ODS,
            }
        ],
        "Admin_UserInRole": [
            {
                "UserInRoleGuid": GP,
                "OrganisationGuid": ORG,
                "Title": "Dr",
                "GivenName": "Rob",
                "Surname": "Testdoctor",
                "JobCategoryCode": "R0260",
                "JobCategoryName": "General Medical Practitioner",
            }
        ],
        "Admin_Patient": [
            patient(P_OK, NHS_OK, CarerName="Sam Testperson", CarerRelation="Son"),
            patient(P_CONF, NHS_CONF, IsConfidential=TRUE),
            patient(P_BAD, invalid_nhs_number()),
            patient(P_SPINE, NHS_SPINE, SpineSensitive=TRUE, DateOfRegistration=""),
        ],
        "CareRecord_Consultation": [
            {
                "ConsultationGuid": CONSULT,
                "PatientGuid": P_OK,
                "OrganisationGuid": ORG,
                "EffectiveDate": "2024-03-01",
                "ClinicianUserInRoleGuid": GP,
                "ConsultationSourceTerm": "Main Surgery",
                "IsConfidential": FALSE,
                "Deleted": FALSE,
            }
        ],
        "CareRecord_Observation": [
            observation(
                O_BP,
                P_OK,
                SYSTOLIC,
                Value="135",
                NumericUnit="mmHg",
                NumericRangeLow="90",
                NumericRangeHigh="140",
            ),
            observation(O_ASTHMA, P_OK, ASTHMA, EffectiveDate="2010-06-15"),
            observation(O_ALLERGY, P_OK, PENICILLIN, ObservationType="Allergy"),
            observation(
                O_SMOKER, P_OK, SMOKER, EffectiveDate="2019-01-01", EffectiveDatePrecision="Y"
            ),
            observation(O_UNKNOWN, P_OK, UNKNOWN_CODE),
            observation(O_DELETED, P_OK, SYSTOLIC, Value="120", Deleted=TRUE),
            observation(O_CONF, P_OK, SYSTOLIC, Value="150", IsConfidential=TRUE),
            observation(O_ORPHAN, P_MISSING, SYSTOLIC, Value="128"),
        ],
        "CareRecord_Problem": [
            {
                "ObservationGuid": O_ASTHMA,
                "EndDate": "",
                "ProblemStatusDescription": "Active Problem",
                "SignificanceDescription": "Significant Problem",
            }
        ],
        "Prescribing_DrugRecord": [
            {
                "DrugRecordGuid": DRUG,
                "PatientGuid": P_OK,
                "CodeId": SALBUTAMOL,
                "EffectiveDate": "2024-03-01",
                "EffectiveDatePrecision": "YMD",
                "Dosage": "Two puffs when required",
                "Quantity": "1",
                "QuantityUnit": "inhaler",
                "PrescriptionType": "Repeat",
                "IsActive": TRUE,
                "IsConfidential": TRUE,
                "Deleted": FALSE,
            }
        ],
        # As few columns as the spec promises: patient and drug come from the drug record.
        "Prescribing_IssueRecord": [
            {
                "IssueRecordGuid": ISSUE,
                "DrugRecordGuid": DRUG,
                "EffectiveDate": "2024-03-02",
                "Quantity": "1",
            }
        ],
        "Coding_ClinicalCode": [
            {
                "CodeId": SYSTOLIC,
                "Term": "O/E - Systolic BP reading",
                "ReadTermId": "2469.00",
                "SnomedCTConceptId": "163030003",
            },
            {
                "CodeId": ASTHMA,
                "Term": "Asthma",
                "ReadTermId": "H33..00",
                "SnomedCTConceptId": "195967001",
            },
            {
                "CodeId": PENICILLIN,
                "Term": "Allergy to penicillin",
                "ReadTermId": "14L1.00",
                "SnomedCTConceptId": "91936005",
            },
            {
                "CodeId": SMOKER,
                "Term": "Smoker",
                "ReadTermId": "EMISNQSM1",
                "SnomedCTConceptId": "77176002",
            },
        ],
        "Coding_DrugCode": [
            {
                "CodeId": SALBUTAMOL,
                "Term": "Salbutamol 100micrograms/dose inhaler CFC free",
                "DmdProductCodeId": "320139002",
            }
        ],
    }


def write_extract(folder: Path, tables: dict[str, list[dict[str, str]]]) -> Path:
    """One CSV per table, its columns those the rows use; the required files carry a BOM."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        header = list(dict.fromkeys(column for row in rows for column in row))
        encoding = "utf-8-sig" if table in ("Admin_Organisation", "Admin_Patient") else "utf-8"
        write_csv(folder / f"{table}.csv", header, rows, encoding)
    return folder


def run(engine: Engine, settings: Settings, codes: CodeMaps, folder: Path) -> RunSummary:
    return ingest(engine, settings, codes, EmisAdapter(), str(folder))


def stored(engine: Engine) -> dict[str, Resource]:
    """Current resources by their source row id (type-qualified, as one row may give several)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Resource)).all()
    return {f"{r.resource_type}:{r.source_key.split('|')[3]}": r for r in rows}


def body(row: Resource) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(row.body)
    return doc


def quarantine(engine: Engine) -> dict[str, QuarantineItem]:
    with engine.connect() as conn:
        rows = conn.execute(select(QuarantineItem)).all()
    return {r.source_key.split("|")[3]: r for r in rows}


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    return write_extract(tmp_path / "emis", default_tables())


def test_extract_loads_valid_r4_and_quarantines_what_it_must(engine, settings, codes, extract):
    summary = run(engine, settings, codes, extract)
    # org 1, practitioner + role 2, patients 4+3+1 (P_BAD without its number), encounter 1,
    # observations 5, meds 2; quarantined: an unknown code, P_BAD's number, an orphan
    assert (summary.read, summary.created, summary.deleted, summary.quarantined) == (17, 19, 1, 3)
    rows = stored(engine)
    assert all(validate_resource(body(r)) == [] for r in rows.values())
    assert {r.source_org for r in rows.values()} == {ODS}
    assert f"Patient:{P_OK}" in rows  # the row id is the GUID as written, braces included
    assert rows[f"Patient:{P_OK}"].source_key == f"emis|{ODS}|Admin_Patient|{P_OK}"


def test_rerun_changes_nothing_and_a_changed_row_makes_version_2(engine, settings, codes, extract):
    run(engine, settings, codes, extract)
    again = run(engine, settings, codes, extract)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 20)
    tables = default_tables()
    tables["CareRecord_Observation"][0]["Value"] = "142"
    write_extract(extract, tables)
    changed = run(engine, settings, codes, extract)
    assert (changed.created, changed.updated) == (0, 1)
    bp = stored(engine)[f"Observation:{O_BP}"]
    assert bp.version_id == 2
    assert body(bp)["valueQuantity"] == {"value": 142, "unit": "mmHg"}


def test_resources_carry_the_source_meaning(engine, settings, codes, extract):
    run(engine, settings, codes, extract)
    rows = stored(engine)
    bp = body(rows[f"Observation:{O_BP}"])
    assert {(c["system"], c["code"]) for c in bp["code"]["coding"]} >= {
        ("https://fhir.hl7.org.uk/Id/egton-codes", SYSTOLIC),
        (SNOMED, "163030003"),
        (READ2, "2469."),
    }
    assert bp["referenceRange"] == [
        {"low": {"value": 90, "unit": "mmHg"}, "high": {"value": 140, "unit": "mmHg"}}
    ]
    encounter = rows[f"Encounter:{CONSULT}"]
    assert bp["encounter"]["reference"] == f"Encounter/{encounter.id}"
    asthma = body(rows[f"Condition:{O_ASTHMA}"])
    assert asthma["clinicalStatus"]["coding"][0]["code"] == "active"
    assert asthma["category"][0]["coding"][0]["code"] == "problem-list-item"
    assert asthma["extension"][0]["valueString"] == "Significant Problem"
    assert f"AllergyIntolerance:{O_ALLERGY}" in rows
    smoker = body(rows[f"Observation:{O_SMOKER}"])
    assert smoker["effectiveDateTime"] == "2019"
    assert ("https://fhir.hl7.org.uk/Id/egton-codes", "EMISNQSM1") in {
        (c["system"], c["code"]) for c in smoker["code"]["coding"]
    }
    pat = body(rows[f"Patient:{P_OK}"])
    nhs = pat["identifier"][0]
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    org_id = rows[f"Organization:{ORG}"].id
    assert pat["generalPractitioner"] == [{"reference": f"Organization/{org_id}"}]
    assert pat["address"][0]["line"] == ["Flat 2", "1 Test Lane"]
    carer = body(rows[f"RelatedPerson:{P_OK}"])
    assert carer["name"] == [{"text": "Sam Testperson"}]
    assert carer["relationship"][0]["coding"][0]["code"] == "IC", "a carer, as the council says"
    assert body(rows[f"EpisodeOfCare:{P_OK}"])["period"] == {"start": "2001-05-01"}
    assert f"EpisodeOfCare:{P_SPINE}" not in rows
    role = body(rows[f"PractitionerRole:{GP}"])
    assert role["code"][0]["coding"][0]["code"] == "R0260"


def test_medication_issue_is_joined_to_its_course(engine, settings, codes, extract):
    run(engine, settings, codes, extract)
    rows = stored(engine)
    course = body(rows[f"MedicationStatement:{DRUG}"])
    issue = body(rows[f"MedicationRequest:{ISSUE}"])
    assert course["status"] == "active"
    assert course["note"] == [{"text": "1 inhaler"}]
    dmd = ("https://dmd.nhs.uk", "320139002")
    assert dmd in {(c["system"], c["code"]) for c in course["medicationCodeableConcept"]["coding"]}
    assert dmd in {(c["system"], c["code"]) for c in issue["medicationCodeableConcept"]["coding"]}
    assert issue["intent"] == "order"
    assert issue["groupIdentifier"]["value"] == DRUG
    assert DRUG in {i["value"] for i in course["identifier"]}
    assert issue["subject"] == course["subject"]
    assert rows[f"MedicationRequest:{ISSUE}"].patient_id == rows[f"Patient:{P_OK}"].id
    # the course is confidential, so its issue is too
    assert "source-confidential" in rows[f"MedicationRequest:{ISSUE}"].labels.split()


def test_an_issue_naming_another_patient_than_its_course_is_held(engine, settings, codes, tmp_path):
    """One person's prescription must not be stored on another's course, with that course's
    groupIdentifier and labels: the issue is held, naming PatientGuid, until corrected."""
    tables = default_tables()
    tables["Prescribing_IssueRecord"][0]["PatientGuid"] = P_CONF  # the course is P_OK's
    run(engine, settings, codes, write_extract(tmp_path / "emis", tables))
    assert f"MedicationRequest:{ISSUE}" not in stored(engine)
    item = quarantine(engine)[ISSUE]
    assert item.field == "PatientGuid" and "another patient than its course" in item.reason
    fixed = replay(engine, settings, codes, ids=[item.id], corrections={"PatientGuid": P_OK})
    assert fixed.created == 1
    issue = stored(engine)[f"MedicationRequest:{ISSUE}"]
    assert issue.patient_id == stored(engine)[f"Patient:{P_OK}"].id


def _labels_of_a_course_for(engine, settings, codes, folder, problem, *clinical_codes):
    """Labels of a course (and its issue) prescribed for the problem observation ``problem``,
    and of the default course (for asthma, its issue), after an ingest."""
    tables = default_tables()
    tables["Coding_ClinicalCode"].extend(clinical_codes)
    tables["CareRecord_Observation"].append(problem)
    tables["CareRecord_Problem"].append(
        {"ObservationGuid": problem["ObservationGuid"], "EndDate": "",
         "ProblemStatusDescription": "Active Problem", "SignificanceDescription": "Significant"}
    )  # fmt: skip
    course = tables["Prescribing_DrugRecord"][0] | {"IsConfidential": FALSE}
    drug, issue = guid(42), guid(43)
    tables["Prescribing_DrugRecord"] = [
        course | {"ProblemObservationGuid": O_ASTHMA},
        course | {"DrugRecordGuid": drug, "ProblemObservationGuid": problem["ObservationGuid"]},
    ]
    tables["Prescribing_IssueRecord"].append(
        tables["Prescribing_IssueRecord"][0] | {"IssueRecordGuid": issue, "DrugRecordGuid": drug}
    )
    run(engine, settings, codes, write_extract(folder, tables))
    rows = stored(engine)
    keys = {"course": f"MedicationStatement:{drug}", "issue": f"MedicationRequest:{issue}",
            "asthma course": f"MedicationStatement:{DRUG}",
            "asthma issue": f"MedicationRequest:{ISSUE}"}  # fmt: skip
    return {name: set(rows[key].labels.split()) for name, key in keys.items()}


def test_a_medicine_for_a_sensitive_problem_is_labelled_with_it(engine, settings, codes, tmp_path):
    """It names the problem (reasonReference), and its drug may say as much: both are withheld."""
    syphilis = {"CodeId": "1200005", "Term": "Syphilis", "ReadTermId": "A94..00",
                "SnomedCTConceptId": "76272004"}  # fmt: skip
    problem = observation(guid(38), P_OK, "1200005")
    found = _labels_of_a_course_for(engine, settings, codes, tmp_path / "e", problem, syphilis)
    assert {name for name, labels in found.items() if "sensitive-sti" in labels} == {
        "course",
        "issue",
    }


def test_a_medicine_for_a_confidential_problem_is_confidential(engine, settings, codes, tmp_path):
    problem = observation(guid(38), P_OK, SMOKER, IsConfidential=TRUE)
    found = _labels_of_a_course_for(engine, settings, codes, tmp_path / "e", problem)
    assert {name for name, labels in found.items() if "source-confidential" in labels} == {
        "course",
        "issue",
    }


def _labels_under(engine, settings, codes, folder, problem, *clinical_codes):
    """Labels of an observation recorded under the problem ``problem`` (``ProblemGuid``), the
    problem's own row coming after it in the file, and of the blood pressure beside it."""
    tables = default_tables()
    tables["Coding_ClinicalCode"].extend(clinical_codes)
    under = observation(guid(44), P_OK, SMOKER, ProblemGuid=problem["ObservationGuid"])
    tables["CareRecord_Observation"][:0] = [under]
    tables["CareRecord_Observation"].append(problem)
    tables["CareRecord_Problem"].append(
        {"ObservationGuid": problem["ObservationGuid"], "EndDate": "",
         "ProblemStatusDescription": "Active Problem", "SignificanceDescription": "Significant"}
    )  # fmt: skip
    summary = run(engine, settings, codes, write_extract(folder, tables))
    assert not [n for n in summary.notes if "ProblemGuid" in n]  # read, not ignored
    rows = stored(engine)
    return (
        set(rows[f"Observation:{guid(44)}"].labels.split()),
        set(rows[f"Observation:{O_BP}"].labels.split()),
    )


def test_an_entry_under_a_sensitive_problem_is_labelled_with_it(engine, settings, codes, tmp_path):
    """Recorded under the problem, it says as much as the problem: withheld with it."""
    syphilis = {"CodeId": "1200005", "Term": "Syphilis", "ReadTermId": "A94..00",
                "SnomedCTConceptId": "76272004"}  # fmt: skip
    problem = observation(guid(38), P_OK, "1200005")
    under, beside = _labels_under(engine, settings, codes, tmp_path / "e", problem, syphilis)
    assert "sensitive-sti" in under
    assert beside == set()


def test_an_entry_under_a_confidential_problem_is_confidential(engine, settings, codes, tmp_path):
    problem = observation(guid(38), P_OK, ASTHMA, IsConfidential=TRUE)
    under, beside = _labels_under(engine, settings, codes, tmp_path / "e", problem)
    assert "source-confidential" in under
    assert beside == set()


def test_entries_of_a_confidential_consultation_are_confidential(engine, settings, codes, tmp_path):
    """What was written in a consultation the practice made confidential says as much as the
    visit: it is withheld with the visit, not shared while only the Encounter is."""
    tables = default_tables()
    tables["CareRecord_Consultation"][0]["IsConfidential"] = TRUE
    tables["Prescribing_DrugRecord"][0]["IsConfidential"] = FALSE
    tables["Prescribing_IssueRecord"][0]["ConsultationGuid"] = CONSULT
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    rows = stored(engine)
    for key in (f"Encounter:{CONSULT}", f"Observation:{O_BP}", f"MedicationRequest:{ISSUE}"):
        assert "source-confidential" in rows[key].labels.split(), key
    assert rows[f"MedicationStatement:{DRUG}"].labels == ""


def test_records_for_a_problem_an_earlier_extract_brought_take_its_labels(
    engine, settings, codes, tmp_path
):
    """A delta extract: a result under, and a course for, a sensitive problem stored last month,
    the issues of that course and of one stored then, are withheld with the problem; an issue
    of a confidential course stored then is confidential. Nothing else is labelled."""
    syphilis = {"CodeId": "1200005", "Term": "Syphilis", "ReadTermId": "A94..00",
                "SnomedCTConceptId": "76272004"}  # fmt: skip
    problem = guid(38)
    first = default_tables()
    first["Coding_ClinicalCode"].append(syphilis)
    first["CareRecord_Observation"].append(observation(problem, P_OK, "1200005"))
    first["CareRecord_Problem"].append(
        {"ObservationGuid": problem, "EndDate": "",
         "ProblemStatusDescription": "Active Problem", "SignificanceDescription": "Significant"}
    )  # fmt: skip
    course = first["Prescribing_DrugRecord"][0] | {"IsConfidential": FALSE}
    first["Prescribing_DrugRecord"].append(
        course | {"DrugRecordGuid": guid(42), "ProblemObservationGuid": problem}
    )
    run(engine, settings, codes, write_extract(tmp_path / "first", first))

    # A delta's issues carry their patient and drug: their courses are not in it.
    issue = first["Prescribing_IssueRecord"][0] | {"PatientGuid": P_OK, "CodeId": SALBUTAMOL}
    delta = {
        table: first[table]
        for table in (
            "Admin_Organisation",
            "Admin_Patient",
            "Coding_ClinicalCode",
            "Coding_DrugCode",
        )
    }
    delta["CareRecord_Observation"] = [
        observation(guid(44), P_OK, SMOKER, ProblemGuid=problem),
        observation(guid(49), P_OK, SMOKER),
    ]
    delta["Prescribing_DrugRecord"] = [
        course | {"DrugRecordGuid": guid(45), "ProblemObservationGuid": problem}
    ]
    delta["Prescribing_IssueRecord"] = [
        issue | {"IssueRecordGuid": guid(46), "DrugRecordGuid": guid(45)},
        issue | {"IssueRecordGuid": guid(47), "DrugRecordGuid": guid(42)},
        issue | {"IssueRecordGuid": guid(48), "DrugRecordGuid": DRUG},
    ]
    run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    rows = stored(engine)
    found = {
        key: set(rows[key].labels.split())
        for key in (
            f"Observation:{guid(44)}",
            f"Observation:{guid(49)}",
            f"MedicationStatement:{guid(45)}",
            f"MedicationRequest:{guid(46)}",
            f"MedicationRequest:{guid(47)}",
            f"MedicationRequest:{guid(48)}",
        )
    }
    sti = {key for key, labels in found.items() if "sensitive-sti" in labels}
    assert sti == {
        f"Observation:{guid(44)}",
        f"MedicationStatement:{guid(45)}",
        f"MedicationRequest:{guid(46)}",
        f"MedicationRequest:{guid(47)}",
    }
    assert found[f"MedicationRequest:{guid(48)}"] == {"source-confidential"}
    assert found[f"Observation:{guid(49)}"] == set()


def test_deleted_and_confidential_rows(engine, settings, codes, extract):
    run(engine, settings, codes, extract)
    rows = stored(engine)
    deleted = rows[f"Observation:{O_DELETED}"]
    assert deleted.status == "entered-in-error"
    assert body(deleted)["status"] == "entered-in-error"
    assert "source-confidential" in rows[f"Observation:{O_CONF}"].labels.split()
    assert rows[f"Observation:{O_BP}"].labels == ""
    conf = rows[f"Patient:{P_CONF}"].labels.split()
    assert "source-confidential" in conf and "restricted-person" not in conf
    assert {"source-confidential", "restricted-person"} <= set(
        rows[f"Patient:{P_SPINE}"].labels.split()
    )


def test_a_deleted_entry_is_applied_without_its_code_row(engine, settings, codes, tmp_path):
    """A delta deleting an observation need not send its code again: quarantining the deletion
    as an unknown code would leave the entry the practice deleted active and shared."""
    run(engine, settings, codes, write_extract(tmp_path / "emis", default_tables()))
    delta = default_tables()
    bp = [o for o in delta["CareRecord_Observation"] if o["ObservationGuid"] == O_BP]
    delta["CareRecord_Observation"] = [o | {"Deleted": TRUE} for o in bp]
    delta["Coding_ClinicalCode"] = [
        c for c in delta["Coding_ClinicalCode"] if c["CodeId"] != SYSTOLIC
    ]
    summary = run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    assert summary.deleted == 1 and O_BP not in quarantine(engine)
    bp = stored(engine)[f"Observation:{O_BP}"]
    assert bp.status == "entered-in-error" and body(bp)["status"] == "entered-in-error"
    assert body(bp)["valueQuantity"]["value"] == 135  # the stored body: what was withdrawn


def _without_carer(tables: dict[str, list[dict[str, str]]], **over: str) -> None:
    for p in tables["Admin_Patient"]:
        if p["PatientGuid"] == P_OK:
            p.update(CarerName="", CarerRelation="", **over)


def _problem_deleted(tables: dict[str, list[dict[str, str]]]) -> None:
    tables["CareRecord_Problem"][0]["Deleted"] = TRUE


@pytest.mark.parametrize(
    ("change", "withdrawn", "kept"),
    [
        (_without_carer, f"RelatedPerson:{P_OK}", f"Patient:{P_OK}"),
        (partial(_without_carer, Deleted=TRUE), f"RelatedPerson:{P_OK}", None),
        (_problem_deleted, f"Condition:{O_ASTHMA}", f"Observation:{O_ASTHMA}"),
    ],
    ids=["carer-blanked", "patient-deleted", "problem-deleted"],
)
def test_what_a_row_no_longer_yields_is_withdrawn(
    engine, settings, codes, extract, change, withdrawn, kept
):
    """A carer blanked out of the patient row, or a problem deleted from under its entry, stops
    the row yielding a resource: left active, a former carer would still be listed and a
    withdrawn problem still shared."""
    run(engine, settings, codes, extract)
    tables = default_tables()
    change(tables)
    write_extract(extract, tables)
    run(engine, settings, codes, extract)
    rows = stored(engine)
    assert rows[withdrawn].status == "entered-in-error"
    assert kept is None or rows[kept].status == "active"
    again = run(engine, settings, codes, extract)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_unknown_code_and_invalid_nhs_number_are_quarantined(engine, settings, codes, extract):
    run(engine, settings, codes, extract)
    items = quarantine(engine)
    assert set(items) == {O_UNKNOWN, P_BAD, O_ORPHAN}
    assert items[O_UNKNOWN].field == "CodeId"
    assert UNKNOWN_CODE in items[O_UNKNOWN].reason
    assert items[P_BAD].field == "NhsNumber"
    assert (items[P_BAD].file, items[P_BAD].line) == ("Admin_Patient.csv", 4)
    assert items[O_ORPHAN].field == "patient"
    assert "patient" in items[O_ORPHAN].reason


def test_bom_files_read_and_unknown_files_are_noted(extract):
    (extract / "Appointment_Slot.csv").write_text("SlotGuid\n", encoding="utf-8")
    adapter = EmisAdapter()
    records = list(adapter.read(str(extract)))
    assert records[0].ref == SourceRef("emis", ODS, "Admin_Organisation", ORG)
    assert records[0].fields["OrganisationGuid"] == ORG
    assert any("Appointment_Slot.csv" in n for n in adapter.notes)


def test_missing_required_column_names_file_and_column(tmp_path):
    tables = default_tables()
    for row in tables["Admin_Patient"]:
        del row["DateOfBirth"]
    folder = write_extract(tmp_path / "emis", tables)
    with pytest.raises(ExtractError, match=r"Admin_Patient\.csv.*DateOfBirth"):
        list(EmisAdapter().read(str(folder)))


def test_missing_required_file_and_absent_optional_files(tmp_path):
    tables = default_tables()
    only_required = {t: tables[t] for t in ("Admin_Organisation", "Admin_Patient")}
    assert len(list(EmisAdapter().read(str(write_extract(tmp_path / "a", only_required))))) == 5
    del tables["Admin_Patient"]
    with pytest.raises(ExtractError, match=r"Admin_Patient\.csv"):
        list(EmisAdapter().read(str(write_extract(tmp_path / "b", tables))))


def _record(table: str, row_id: str, **fields: str) -> SourceRecord:
    return SourceRecord(SourceRef("emis", ODS, table, row_id), f"{table}.csv", 2, fields)


def test_map_is_pure_and_translates_read_v2_when_emis_gives_no_snomed():
    codes = CodeMaps()
    codes.add(READ2, SNOMED, "test", [("H33..", Target("195967001", "Asthma"))])
    rec = _record(
        "CareRecord_Observation",
        O_ASTHMA,
        PatientGuid=P_OK,
        CodeId=ASTHMA,
        EffectiveDate="2010-06",
        EffectiveDatePrecision="YM",
        ObservationType="Observation",
        _Term="Asthma",
        _ReadCode="H33..",
    )
    outcome = EmisAdapter().map(rec, MapContext(codes=codes))
    assert outcome.ok
    (mapped,) = outcome.resources
    obs = mapped.resource
    assert obs["effectiveDateTime"] == "2010-06"
    assert {"system": SNOMED, "code": "195967001", "display": "Asthma"} in obs["code"]["coding"]
    assert mapped.patient_key == f"emis|{ODS}|Admin_Patient|{P_OK}"
    assert EmisAdapter().map(rec, MapContext(codes=CodeMaps())).issues[0].field == "CodeId"


def test_allergy_wins_over_problem_and_a_past_or_ended_one_is_inactive():
    base = {
        "PatientGuid": P_OK,
        "CodeId": PENICILLIN,
        "EffectiveDate": "2020-01-01",
        "EffectiveDatePrecision": "YMD",
        "_SnomedCTConceptId": "91936005",
        "_IsProblem": "True",
        "_ProblemStatus": "Past Problem",
    }
    ctx = MapContext(codes=CodeMaps())
    allergy = EmisAdapter().map(
        _record("CareRecord_Observation", O_ALLERGY, ObservationType="Allergy", **base), ctx
    )
    assert [m.resource["resourceType"] for m in allergy.resources] == ["AllergyIntolerance"]
    past = allergy.resources[0].resource
    assert past["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert "verificationStatus" not in past, "the source does not say it was confirmed"
    ended = EmisAdapter().map(
        _record("CareRecord_Observation", O_ALLERGY, ObservationType="Allergy",
                **base | {"_ProblemStatus": "Active Problem", "_ProblemEndDate": "2021-05-01"}),
        ctx,
    ).resources[0].resource  # fmt: skip
    assert ended["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert ended["extension"][0]["extension"] == [{"url": "endDate", "valueDateTime": "2021-05-01"}]
    current = EmisAdapter().map(
        _record("CareRecord_Observation", O_ALLERGY, ObservationType="Allergy",
                **base | {"_ProblemStatus": "Active Problem"}),
        ctx,
    ).resources[0].resource  # fmt: skip
    assert current["clinicalStatus"]["coding"][0]["code"] == "active"
    assert "extension" not in current
    problem = EmisAdapter().map(
        _record("CareRecord_Observation", O_ASTHMA, ObservationType="Observation", **base), ctx
    )
    (condition,) = problem.resources
    assert condition.resource["clinicalStatus"]["coding"][0]["code"] == "inactive"


@pytest.mark.parametrize(
    ("term_id", "read"),
    [
        ("H33..00", "H33.."),
        ("TJ00300", "TJ003"),
        ("SN58200", "SN582"),
        ("G20..", "G20.."),
        ("EMISNQAC724", None),
        ("HMPNQHO5", None),
        ("", None),
    ],
)
def test_read_term_id_is_split_from_emis_local_ids(term_id: str, read: str | None):
    assert read_v2_code(term_id) == read


def test_value_is_numeric_or_text():
    assert value_fields(" 4.5 ") == value_fields("135") == {"_ValueIsNumeric": "True"}
    assert value_fields("trace") == value_fields("") == {}


def _value_observation(value: str, **extra: str) -> dict[str, Any]:
    """An EMIS blood pressure row with ``value``, mapped."""
    rec = _record(
        "CareRecord_Observation",
        O_BP,
        PatientGuid=P_OK,
        CodeId=SYSTOLIC,
        EffectiveDate="2024-03-01",
        EffectiveDatePrecision="YMD",
        ObservationType="Value",
        Value=value,
        _SnomedCTConceptId="163030003",
        **extra,
        **value_fields(value),
    )
    (mapped,) = EmisAdapter().map(rec, MapContext(codes=CodeMaps())).resources
    return mapped.resource


@pytest.mark.parametrize(("value", "comparator", "number"), [("<5", "<", 5), (">= 90", ">=", 90)])
def test_a_censored_result_keeps_its_comparator_and_unit(value, comparator, number):
    observation = _value_observation(value, NumericUnit="mmol/L")
    assert observation["valueQuantity"] == {
        "value": number,
        "comparator": comparator,
        "unit": "mmol/L",
    }
    assert value_fields("<trace") == {}


@pytest.mark.parametrize(
    "value", ["5.10", "120.0", "0.80", "<5.0", "99999999999999999999", "1E+300"]
)
def test_a_result_keeps_the_precision_it_was_written_with(engine, settings, codes, tmp_path, value):
    """FHIR decimals keep their precision: stored, served and rewritten as written (a whole
    number past 64 bits, which stopped the run, too)."""
    tables = default_tables()
    tables["CareRecord_Observation"][0]["Value"] = value
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    bp = stored(engine)[f"Observation:{O_BP}"]
    quantity = loads(bp.body)["valueQuantity"]
    assert str(quantity["value"]) == value.lstrip("<")
    assert dumps(loads(bp.body)) == bp.body


def test_a_value_that_is_not_a_number_is_kept_as_text():
    observation = _value_observation("not recorded", NumericRangeLow="90")
    assert observation["valueString"] == "not recorded"
    assert "valueQuantity" not in observation and "referenceRange" not in observation


def test_an_issue_row_with_its_own_patient_and_code_uses_them():
    rec = _record(
        "Prescribing_IssueRecord",
        ISSUE,
        PatientGuid=P_CONF,
        CodeId=UNKNOWN_CODE,
        DrugRecordGuid=DRUG,
        EffectiveDate="2024-03-02",
        _PatientGuid=P_CONF,
        _CodeId=UNKNOWN_CODE,
    )
    outcome = EmisAdapter().map(rec, MapContext(codes=CodeMaps()))
    assert outcome.issues[0].field == "CodeId"  # no dm+d for an unknown drug
    drug = {"CodeId": SALBUTAMOL, "_CodeId": SALBUTAMOL, "_DmdProductCodeId": "320139002"}
    known = _record("Prescribing_IssueRecord", ISSUE, **{**rec.fields, **drug})
    (mapped,) = EmisAdapter().map(known, MapContext(codes=CodeMaps())).resources
    assert mapped.patient_key == f"emis|{ODS}|Admin_Patient|{P_CONF}"
    assert len(mapped.resource["medicationCodeableConcept"]["coding"]) == 2


def test_a_record_with_a_bad_byte_keeps_its_joins_for_replay(engine, settings, codes, tmp_path):
    """The reader's joins (drug, problem code) go to quarantine with the row: a replay with the
    byte corrected then maps the medicine, and labels it with its problem, as the ingest would."""
    tables = default_tables()
    tables["Coding_ClinicalCode"].append(
        {"CodeId": "1200005", "Term": "Syphilis", "ReadTermId": "A94..00",
         "SnomedCTConceptId": "76272004"}
    )  # fmt: skip
    problem = guid(38)
    tables["CareRecord_Observation"].append(observation(problem, P_OK, "1200005"))
    tables["CareRecord_Problem"].append(
        {"ObservationGuid": problem, "EndDate": "", "ProblemStatusDescription": "Active Problem",
         "SignificanceDescription": "Significant"}
    )  # fmt: skip
    tables["Prescribing_DrugRecord"][0] |= {"ProblemObservationGuid": problem, "Dosage": "BAD"}
    folder = write_extract(tmp_path / "emis", tables)
    path = folder / "Prescribing_DrugRecord.csv"
    path.write_bytes(path.read_bytes().replace(b"BAD", b"One \xff daily"))
    run(engine, settings, codes, folder)
    item = quarantine(engine)[DRUG]
    assert item.field == "Dosage"
    fixed = replay(engine, settings, codes, ids=[item.id], corrections={"Dosage": "One daily"})
    assert fixed.quarantined == 0 and fixed.created == 1
    assert "sensitive-sti" in stored(engine)[f"MedicationStatement:{DRUG}"].labels.split()


def test_records_joining_a_code_row_that_cannot_be_read_are_held_naming_it(
    engine, settings, codes, tmp_path
):
    """A coding row with a bad byte was dropped without trace, so the records citing its code
    lost their term and SNOMED concept: taken in as something else, or held for the wrong
    reason."""
    tables = default_tables()
    folder = write_extract(tmp_path / "emis", tables)
    path = folder / "Coding_ClinicalCode.csv"
    systolic = next(c for c in tables["Coding_ClinicalCode"] if c["CodeId"] == SYSTOLIC)
    term = systolic["Term"].encode()
    path.write_bytes(path.read_bytes().replace(term, term[:3] + b"\xff" + term[4:]))
    summary = run(engine, settings, codes, folder)
    assert any(n.startswith("Coding_ClinicalCode.csv, line 2: Term: ") for n in summary.notes)
    item = quarantine(engine)[O_BP]
    assert item.field == "_JoinedRowProblem" and "Coding_ClinicalCode.csv, line 2" in item.reason
    assert f"Observation:{O_BP}" not in stored(engine)


def test_a_corrected_value_is_read_as_a_number_again(engine, settings, codes, tmp_path):
    """A result quarantined for its date, with its value mistyped, corrected on replay, is a
    quantity with its unit: whether the value is a number is worked out from the corrected
    value, not kept from the mistyped one (which would store the number as text)."""
    tables = default_tables()
    tables["CareRecord_Observation"][0] |= {"EffectiveDate": "soon", "Value": "13O"}
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    item = quarantine(engine)[O_BP]
    fix = {"EffectiveDate": "2024-03-01", "Value": "130"}
    assert replay(engine, settings, codes, ids=[item.id], corrections=fix).quarantined == 0
    value = body(stored(engine)[f"Observation:{O_BP}"])["valueQuantity"]
    assert (value["value"], value["unit"]) == (130, "mmHg")


def test_a_correction_to_a_joined_code_is_refused(engine, settings, codes, tmp_path):
    """The term and SNOMED concept of a code are joined from Coding_ClinicalCode when the
    extract is read: a replay cannot look a corrected code up, so it is refused."""
    tables = default_tables()
    tables["CareRecord_Observation"][0]["EffectiveDate"] = "soon"
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    item = quarantine(engine)[O_BP]
    with pytest.raises(CorrectionRefused, match="CodeId: the reader joins Coding_ClinicalCode"):
        replay(engine, settings, codes, ids=[item.id], corrections={"CodeId": ASTHMA})


def test_a_record_kept_before_it_named_its_consultation_takes_its_labels_on_replay(
    engine, settings, codes, tmp_path
):
    """An observation from a confidential consultation, quarantined before the reader named
    consultations, would be replayed unlabelled: replay names what the row's own columns name
    (its consultation), so it takes the stored consultation's confidentiality."""
    tables = default_tables()
    tables["CareRecord_Consultation"][0]["IsConfidential"] = TRUE
    tables["CareRecord_Observation"][0]["EffectiveDate"] = "2024-02-31"
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    item = quarantine(engine)[O_BP]
    record = dict(item.record)
    record["fields"] = {
        k: v for k, v in record["fields"].items()
        if k not in ("_ConsultationIsConfidential", "_pointed_records", "_met_records")
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            update(QuarantineItem).where(QuarantineItem.id == item.id).values(record=record)
        )
    replay(engine, settings, codes, ids=[item.id], corrections={"EffectiveDate": "2024-02-28"})
    assert "source-confidential" in stored(engine)[f"Observation:{O_BP}"].labels.split()


def test_an_entry_sent_again_without_its_problem_row_stays_a_problem(
    engine, settings, codes, extract
):
    """An EMIS extract may be a delta: an entry sent again without its problem row is not
    thereby no longer a problem, so the Condition it made stays."""
    run(engine, settings, codes, extract)
    tables = default_tables()
    del tables["CareRecord_Problem"]
    (extract / "CareRecord_Problem.csv").unlink()
    write_extract(extract, tables)
    assert run(engine, settings, codes, extract).deleted == 0
    assert stored(engine)[f"Condition:{O_ASTHMA}"].status == "active"


def test_an_issue_naming_another_patients_stored_course_is_held(engine, settings, codes, tmp_path):
    """In a later extract without the course row, an issue naming another patient than its
    stored course would land on that patient carrying the course's groupIdentifier and
    labels: held, naming the course."""
    run(engine, settings, codes, write_extract(tmp_path / "e1", default_tables()))
    tables = default_tables()
    issue = dict(tables["Prescribing_IssueRecord"][0], IssueRecordGuid=guid(42))
    issue |= {"PatientGuid": P_CONF, "CodeId": SALBUTAMOL}  # the course is P_OK's
    tables["Prescribing_IssueRecord"] = [issue]
    del tables["Prescribing_DrugRecord"]
    run(engine, settings, codes, write_extract(tmp_path / "e2", tables))
    assert f"MedicationRequest:{guid(42)}" not in stored(engine)
    held = quarantine(engine)[guid(42)]
    assert "a record of another patient" in held.reason and DRUG in held.reason


def _confidential(engine: Engine, rtype: str, row_id: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            select(Resource).where(
                Resource.resource_type == rtype, Resource.source_key.endswith("|" + row_id)
            )
        ).first()
    assert row is not None, (rtype, row_id)
    return labels.SOURCE_CONFIDENTIAL in labels.label_codes(body(row))


def test_a_consultation_listed_twice_is_confidential_if_either_copy_says_so(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """The visit kept (the first copy) was confidential, but what was written in it took the
    second copy's flag, quarantined as a duplicate, and was taken in unlabelled."""
    tables = default_tables()
    [consult] = tables["CareRecord_Consultation"]
    consult["IsConfidential"] = TRUE
    tables["CareRecord_Consultation"] = [consult, dict(consult, IsConfidential=FALSE)]
    run(engine, settings, codes, write_extract(tmp_path / "e", tables))
    assert _confidential(engine, "Encounter", CONSULT)
    assert _confidential(engine, "Observation", O_BP)


def test_what_was_written_in_a_consultation_read_with_a_problem_is_labelled(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A confidential visit's row cut short before IsConfidential: what was written in it was
    taken in unlabelled. A row read with a problem may have lost its flag, so it counts."""
    tables = default_tables()
    tables["CareRecord_Consultation"][0]["IsConfidential"] = TRUE
    folder = write_extract(tmp_path / "e", tables)
    path = folder / "CareRecord_Consultation.csv"
    header, row = path.read_text().splitlines()[:2]
    path.write_text(f"{header}\r\n{','.join(row.split(',')[:-2])}\r\n")
    assert run(engine, settings, codes, folder).quarantined >= 1
    assert _confidential(engine, "Observation", O_BP)


@pytest.mark.parametrize(
    ("table", "column"),
    [("CareRecord_Observation", "IsConfidential"), ("CareRecord_Consultation", "Deleted"),
     ("Prescribing_DrugRecord", "IsConfidential"), ("Admin_Patient", "Deleted")],
)  # fmt: skip
def test_an_extract_without_a_confidentiality_or_deletion_column_is_refused(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, table: str, column: str
) -> None:
    """With the header spelled 'Isconfidential' every row was taken in as not confidential,
    and with 'deleted' none as deleted; the only trace was an 'extra columns ignored' note."""
    tables = default_tables()
    tables[table] = [{(k.lower() if k == column else k): v for k, v in row.items()}
                     for row in tables[table]]  # fmt: skip
    with pytest.raises(ExtractError, match=f"missing required column {column}"):
        run(engine, settings, codes, write_extract(tmp_path / "e", tables))
