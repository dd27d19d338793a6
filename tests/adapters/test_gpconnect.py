"""GP Connect structured-record adapter on small synthetic STU3 bundles (999-range NHS numbers)."""

from __future__ import annotations

import base64
import copy
import importlib
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from adapters import labels
from adapters.base import (
    Adapter,
    CorrectionRefused,
    MapContext,
    MapOutcome,
    SourceRecord,
    SourceRef,
)
from adapters.codes import CodeMaps
from adapters.gpconnect import (
    Consumer,
    GpConnectAdapter,
    GpConnectError,
    OperationOutcomeError,
    pull,
    read,
)
from adapters.gpconnect.convert import map_record
from adapters.gpconnect.maps import GPCONNECT_DIR, load
from adapters.gpconnect.read import records_from_bundle, records_from_bytes
from adapters.schema import MapFileError
from tests.factories import nhs_numbers

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
PRACTICE = "A99999"
NHS = "9990000018"
CTX = MapContext(CodeMaps())
SOURCE_RECORD = "https://fhir.scr.example/Id/source-record"


def organization(rid: str = "org1", ods: str = PRACTICE) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": rid,
        "meta": {"versionId": "1", "profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/x"]},
        "identifier": [{"system": ODS, "value": ods}],
        "name": "Test Practice",
    }


def patient(nhs: str = NHS, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "versionId": "1469448000000",
            "lastUpdated": "2020-01-01T00:00:00+00:00",
            "profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"],
        },
        "identifier": [
            {
                "extension": [
                    {
                        "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                        "Extension-CareConnect-GPC-NHSNumberVerificationStatus-1",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.nhs.uk/STU3/CodeSystem/"
                                    "CareConnect-NHSNumberVerificationStatus-1",
                                    "code": "01",
                                }
                            ]
                        },
                    }
                ],
                "system": NHS_SYSTEM,
                "value": nhs,
            }
        ],
        "name": [{"family": "Testing", "given": ["Tess"]}],
        "gender": "female",
        "birthDate": "1950-02-03",
        "managingOrganization": {"reference": "Organization/org1"},
        **extra,
    }


def bundle(*resources: dict[str, Any], urls: dict[int, str] | None = None) -> dict[str, Any]:
    entries = []
    for i, res in enumerate(resources):
        entry: dict[str, Any] = {"resource": res}
        if urls and i in urls:
            entry["fullUrl"] = urls[i]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def records(doc: dict[str, Any]) -> list[SourceRecord]:
    return list(records_from_bundle(doc, "record.json"))


def outcome(doc: dict[str, Any], table: str, index: int = 0) -> MapOutcome:
    found = [r for r in records(doc) if r.ref.table == table]
    return map_record(found[index], CTX)


def resource(doc: dict[str, Any], table: str, index: int = 0) -> dict[str, Any]:
    out = outcome(doc, table, index)
    assert out.ok, out.issues
    (mapped,) = out.resources
    get_fhir_model_class(mapped.resource["resourceType"]).model_validate(mapped.resource)
    return mapped.resource


def target(table: str, row_id: str, r4_type: str | None = None) -> str:
    r4 = r4_type or table
    return f"{r4}/{SourceRef('gpconnect', PRACTICE, table, row_id).resource_id(r4)}"


def fields_of(out: MapOutcome) -> set[str | None]:
    return {w.field for w in out.warnings}


OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "obs1",
    "status": "final",
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "75367002"}]},
    "subject": {"reference": "Patient/p1"},
    "context": {"reference": "Encounter/enc1"},
    "performer": [{"reference": "Practitioner/gp1"}],
    "effectiveDateTime": "2019-07-01T10:30:00",
    "issued": "2019-01-15T10:30:00",
    "comment": "taken sitting",
}


# --- reading ----------------------------------------------------------------------------


def test_records_come_patient_first_keyed_by_the_practice_ods_code() -> None:
    doc = bundle(organization(), OBSERVATION, patient())
    recs = records(doc)
    assert [r.ref.table for r in recs] == ["Patient", "Organization", "Observation"]
    assert recs[0].ref == SourceRef("gpconnect", PRACTICE, "Patient", NHS)
    assert [r.line for r in recs] == [3, 1, 2]
    assert all(r.file == "record.json" for r in recs)
    assert recs[2].fields["_patient_id"] == NHS
    assert recs[2].fields["_nhs_number"] == NHS
    assert recs[2].fields["resource"]["id"] == "obs1"


def test_practice_found_through_a_general_practitioner_role() -> None:
    role = {
        "resourceType": "PractitionerRole",
        "id": "role1",
        "practitioner": {"reference": "Practitioner/gp1"},
        "organization": {"reference": "Organization/org2"},
    }
    pat = patient(generalPractitioner=[{"reference": "PractitionerRole/role1"}])
    del pat["managingOrganization"]
    recs = records(bundle(pat, role, organization(), organization("org2", "B11111")))
    assert {r.ref.org for r in recs} == {"B11111"}


def test_practice_from_an_identifier_reference_or_the_only_ods_organization() -> None:
    pat = patient(managingOrganization={"identifier": {"system": ODS, "value": "C22222"}})
    assert {r.ref.org for r in records(bundle(pat, organization()))} == {"C22222"}
    lonely = patient()
    del lonely["managingOrganization"]
    recs = records(bundle(lonely, organization()))
    assert {r.ref.org for r in recs} == {PRACTICE}
    assert "Patient.managingOrganization" in fields_of(map_record(recs[0], CTX))


def test_a_quarantined_record_replays_from_json() -> None:
    doc = bundle(patient(), organization(), OBSERVATION, urls={2: "urn:uuid:obs"})
    for rec in records(doc):
        stored = orjson.loads(orjson.dumps(dict(rec.fields)))
        again = SourceRecord(rec.ref, rec.file, rec.line, stored, rec.read_issues)
        assert map_record(again, CTX) == map_record(rec, CTX)


def test_a_record_is_corrected_at_its_source_not_by_column() -> None:
    """A GP Connect record has no columns: a column correction is refused rather than set as
    a field the map never reads; a replay without one maps the record as read."""
    rec = records(bundle(patient(), organization(), OBSERVATION))[0]
    adapter = GpConnectAdapter()
    with pytest.raises(CorrectionRefused, match="resource: a GP Connect record is a FHIR"):
        adapter.correct(rec, {"resource": "{}"}, "2026-12-05")
    assert adapter.correct(rec, {}, "2026-12-05") == rec


def test_unparseable_file_and_bundle_without_patient_go_to_quarantine() -> None:
    (bad,) = records_from_bytes(b'{"resourceType": "Bundle", "entry": [1,]}', "broken.json")
    assert bad.ref == SourceRef("gpconnect", "unknown", "Bundle", "broken.json")
    assert "not valid JSON" in bad.read_issues[0].reason
    assert not map_record(bad, CTX).ok
    (orphan,) = records(bundle(organization(), OBSERVATION))
    assert "no Patient" in orphan.read_issues[0].reason
    outcome_doc = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-found",
                "details": {"coding": [{"code": "PATIENT_NOT_FOUND"}]},
            }
        ],
    }
    (oo,) = records_from_bytes(orjson.dumps(outcome_doc), "oo.json")
    assert oo.read_issues[0].reason == (
        "not a structured record: OperationOutcome (PATIENT_NOT_FOUND)"
    )


def test_a_bundle_that_fails_to_read_is_one_quarantine_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unforeseen failure reading one bundle must neither stop the others nor take part of
    it in."""
    reader = importlib.import_module(
        "adapters.gpconnect.read"
    )  # the package's ``read`` is a function

    def inherited(resources: list[dict[str, Any]], resolve: Any) -> list[Any]:
        if any(r.get("id") == "odd" for r in resources):
            raise ValueError("an odd bundle")
        return [[] for _ in resources]

    monkeypatch.setattr(reader, "inherited_codes", inherited)
    (tmp_path / "a.json").write_bytes(orjson.dumps(bundle(patient(), organization())))
    odd = bundle(patient("9990000026"), organization("odd"))
    (tmp_path / "b.json").write_bytes(orjson.dumps(odd))
    recs = list(read(str(tmp_path)))
    assert [(Path(r.file).name, r.ref.table) for r in recs] == [
        ("a.json", "Patient"),
        ("a.json", "Organization"),
        ("b.json", "Bundle"),
    ]
    assert recs[-1].read_issues[0].reason == "could not be read: ValueError: an odd bundle"


def test_unusable_bundles_of_one_name_in_two_folders_are_two_items(tmp_path: Path) -> None:
    """Named by file name alone, two folders' broken ``record.json`` were one quarantine item,
    the second's reason over the first's."""
    for folder, body in (("practice-a", b'{"resourceType": "Bundle", "entry": ['),
                         ("practice-b", orjson.dumps({"resourceType": "Patient"}))):  # fmt: skip
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "record.json").write_bytes(body)
    keys = {r.ref.key for folder in ("practice-a", "practice-b")
            for r in read(str(tmp_path / folder))}  # fmt: skip
    assert len(keys) == 2


def test_an_entry_without_a_resource_is_quarantined_not_skipped() -> None:
    doc = bundle(patient(), organization())
    doc["entry"].append({"fullUrl": "urn:uuid:nothing"})
    recs = records(doc)
    assert recs[-1].read_issues and recs[-1].ref.table == "Bundle.entry"


def test_folder_read_yields_a_shared_resource_once(tmp_path: Path) -> None:
    first = bundle(patient(), organization())
    second = bundle(patient("9990000026", id="p2"), organization())
    second["entry"][0]["resource"]["id"] = "p2"
    (tmp_path / "a.json").write_bytes(orjson.dumps(first))
    (tmp_path / "b.json").write_bytes(b"\xef\xbb\xbf" + orjson.dumps(second))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "c.JSON").write_bytes(orjson.dumps(bundle(patient("9990000034"), organization())))
    tables = [(Path(r.file).name, r.ref.table) for r in read(str(tmp_path))]
    assert tables == [("a.json", "Patient"), ("a.json", "Organization"), ("b.json", "Patient"),
                      ("c.JSON", "Patient")]  # fmt: skip


# --- mapping ----------------------------------------------------------------------------


def test_patient_converted_to_uk_core() -> None:
    res = resource(bundle(patient(), organization()), "Patient")
    assert res["id"] == SourceRef("gpconnect", PRACTICE, "Patient", NHS).resource_id("Patient")
    assert res["meta"] == {
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]
    }
    nhs, source = res["identifier"]
    assert nhs["value"] == NHS
    (status,) = nhs["extension"]
    assert status["url"] == (
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
    )
    assert status["valueCodeableConcept"]["coding"][0]["system"] == (
        "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
    )
    assert source == {"system": SOURCE_RECORD, "value": f"gpconnect|{PRACTICE}|Patient|{NHS}"}
    assert res["managingOrganization"] == {"reference": target("Organization", "org1")}
    out = outcome(bundle(patient(), organization()), "Patient")
    assert out.resources[0].patient_key == f"gpconnect|{PRACTICE}|Patient|{NHS}"


def test_every_reference_is_rewritten_to_the_target_id() -> None:
    doc = bundle(patient(), organization(), OBSERVATION)
    res = resource(doc, "Observation")
    assert res["subject"] == {"reference": target("Patient", NHS)}
    assert res["encounter"] == {"reference": target("Encounter", "enc1")}
    assert res["performer"] == [{"reference": target("Practitioner", "gp1")}]
    assert outcome(doc, "Observation").resources[0].patient_key == (
        f"gpconnect|{PRACTICE}|Patient|{NHS}"
    )
    assert outcome(doc, "Organization").resources[0].patient_key is None


def _about(subject: dict[str, Any], pat: dict[str, Any] | None = None) -> MapOutcome:
    """The Observation of a bundle whose Patient is ``pat`` (``p1``), naming ``subject``."""
    return outcome(bundle(pat or patient(), organization(), {**OBSERVATION, "subject": subject}),
                   "Observation")  # fmt: skip


def test_an_absolute_reference_to_another_patient_is_refused_as_a_relative_one_is() -> None:
    """An entry about Patient p2 written with the provider's base (FHIR allows it) was filed
    in p1's record: only the relative ``Patient/p2`` was refused."""
    for reference in ("Patient/p2", "https://provider.example/fhir/Patient/p2"):
        (issue,) = _about({"reference": reference}).issues
        assert issue.field == "Observation.subject", reference
    mine = _about({"reference": "https://provider.example/fhir/Patient/p1/_history/2"})
    assert mine.ok, mine.issues
    assert mine.resources[0].resource["subject"] == {"reference": target("Patient", NHS)}


def test_a_subject_giving_another_nhs_number_is_refused() -> None:
    """An entry naming its patient by another person's NHS number (as List entries name it),
    alone or beside a reference to this bundle's Patient, was filed in this patient's record."""
    other = next(n for n in nhs_numbers() if n != NHS)
    theirs = {"system": NHS_SYSTEM, "value": other}
    for subject in ({"identifier": theirs}, {"reference": "Patient/p1", "identifier": theirs}):
        (issue,) = _about(subject).issues
        assert issue.field == "Observation.subject.identifier", subject
    ours = {"system": NHS_SYSTEM, "value": f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"}
    assert _about({"reference": "Patient/p1", "identifier": ours}).ok


def test_a_patient_id_with_spaces_is_found_by_the_references_to_it() -> None:
    """A Patient id padded with spaces (its row id is stripped, its index key was not) made
    every ``Patient/p1`` subject look like another patient: the whole record was refused."""
    padded = {**patient(), "id": " p1 "}
    out = _about({"reference": "Patient/p1"}, padded)
    assert out.ok, out.issues
    assert out.resources[0].resource["subject"] == {"reference": target("Patient", NHS)}


def test_full_urls_and_contained_references() -> None:
    referral = {
        "resourceType": "ReferralRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"},
    }
    ended = {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1103671000000101"}]},
        "subject": {"reference": "Patient/p1"},
        "contained": [
            {
                "resourceType": "AllergyIntolerance",
                "id": "a1",
                "clinicalStatus": "resolved",
                "verificationStatus": "unconfirmed",
                "patient": {"reference": "Patient/p1"},
                "assertedDate": "2016-06-01T12:00:00+01:00",
            }
        ],
        "entry": [
            {"item": {"reference": "#a1"}},
            {"item": {"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}},
        ],
    }
    doc = bundle(
        patient(),
        organization(),
        referral,
        ended,
        urls={
            0: "urn:uuid:11111111-1111-1111-1111-111111111111",
            2: "urn:uuid:22222222-2222-2222-2222-222222222222",
        },
    )
    service = resource(doc, "ReferralRequest")
    assert service["resourceType"] == "ServiceRequest"
    assert service["subject"] == {"reference": target("Patient", NHS)}
    ref_row = "urn:uuid:22222222-2222-2222-2222-222222222222"
    assert service["id"] == SourceRef(
        "gpconnect", PRACTICE, "ReferralRequest", ref_row
    ).resource_id("ServiceRequest")
    lst = resource(doc, "List")
    assert lst["entry"][0]["item"] == {"reference": "#a1"}
    assert lst["entry"][1]["item"] == {
        "reference": target("ReferralRequest", ref_row, "ServiceRequest")
    }
    (allergy,) = lst["contained"]
    assert allergy["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert allergy["recordedDate"] == "2016-06-01T11:00:00+00:00"
    assert lst["title"] == "Ended allergies"


def test_local_times_are_uk_time_converted_to_utc() -> None:
    out = outcome(bundle(patient(), organization(), OBSERVATION), "Observation")
    res = out.resources[0].resource
    assert res["effectiveDateTime"] == "2019-07-01T09:30:00+00:00"  # BST
    assert res["issued"] == "2019-01-15T10:30:00+00:00"  # GMT
    assert {"Observation.effectiveDateTime", "Observation.issued"} <= fields_of(out)
    assert res["note"] == [{"text": "taken sitting"}]


def test_local_times_at_the_clock_changes_are_warned_about() -> None:
    """The autumn hour happened twice (the first, BST, is taken); the spring hour never did
    (read as GMT): each says so, naming the element."""
    twice = OBSERVATION | {"effectiveDateTime": "2026-10-25T01:30:00"}
    out = outcome(bundle(patient(), organization(), twice), "Observation")
    assert out.resources[0].resource["effectiveDateTime"] == "2026-10-25T00:30:00+00:00"
    assert any("happened twice" in w.reason for w in out.warnings)
    skipped = OBSERVATION | {"effectiveDateTime": "2026-03-29T01:30:00"}
    out = outcome(bundle(patient(), organization(), skipped), "Observation")
    assert out.resources[0].resource["effectiveDateTime"] == "2026-03-29T01:30:00+00:00"
    assert any(
        "did not happen" in w.reason and w.field == "Observation.effectiveDateTime"
        for w in out.warnings
    )


def test_nopat_is_kept_and_labelled() -> None:
    obs = copy.deepcopy(OBSERVATION)
    obs["meta"] = {"security": [{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}]}
    res = resource(bundle(patient(), organization(), obs), "Observation")
    security = res["meta"]["security"]
    assert {"system": labels.ACT_CODE, "code": "NOPAT"} in security
    assert labels.restricted() in security
    assert labels.scr_label(labels.NOPAT, CTX.canonical_base) in security
    assert labels.label_codes(res) == {"NOPAT"}


def test_invalid_nhs_number_quarantines_the_patient_only() -> None:
    doc = bundle(patient("9990000019"), organization(), OBSERVATION)
    out = outcome(doc, "Patient")
    assert not out.ok
    assert out.issues[0].field == "Patient.identifier"
    assert "modulus-11" in out.issues[0].reason
    assert outcome(doc, "Observation").ok


def test_unknown_resource_type_is_quarantined() -> None:
    flag = {"resourceType": "Flag", "id": "f1", "status": "active"}
    out = outcome(bundle(patient(), organization(), flag), "Flag")
    assert not out.ok
    assert out.issues[0].field == "resourceType"


def test_binary_and_operation_outcome_give_warnings_not_resources() -> None:
    binary = {"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "content": "eA=="}
    disabled = {
        "resourceType": "OperationOutcome",
        "id": "oo",
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "details": {"coding": [{"code": "NOT_IMPLEMENTED"}]},
                "diagnostics": "includeProblems",
            }
        ],
    }
    doc = bundle(patient(), organization(), binary, disabled)
    for table in ("Binary", "OperationOutcome"):
        out = outcome(doc, table)
        assert out.ok and not out.resources and out.warnings
    assert "includeProblems" in outcome(doc, "OperationOutcome").warnings[0].reason


def test_mapping_is_deterministic() -> None:
    doc = bundle(patient(), organization(), OBSERVATION)
    first = [map_record(r, CTX) for r in records(doc)]
    again = [map_record(r, CTX) for r in records(copy.deepcopy(doc))]
    assert first == again
    assert records(doc)[0].fields["resource"] == patient()


def test_allergy_and_condition_statuses_become_concepts() -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "al1",
        "clinicalStatus": "active",
        "verificationStatus": "unconfirmed",
        "patient": {"reference": "Patient/p1"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/encounter-associatedEncounter",
                "valueReference": {"reference": "Encounter/enc1"},
            }
        ],
    }
    problem = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": "inactive",
        "verificationStatus": "unknown",
        "subject": {"reference": "Patient/p1"},
        "category": [
            {
                "coding": [
                    {
                        "system": "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                "Extension-CareConnect-GPC-ActualProblem-1",
                "valueReference": {"reference": "Observation/obs1"},
            }
        ],
    }
    doc = bundle(patient(), organization(), allergy, problem)
    res = resource(doc, "AllergyIntolerance")
    assert res["clinicalStatus"] == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active",
            }
        ]
    }
    assert res["verificationStatus"]["coding"][0]["code"] == "unconfirmed"
    assert res["encounter"] == {"reference": target("Encounter", "enc1")}
    cond = resource(doc, "Condition")
    assert cond["clinicalStatus"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/condition-clinical"
    )
    assert "verificationStatus" not in cond
    assert cond["category"][0]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/condition-category"
    )
    assert cond["evidence"] == [{"detail": [{"reference": target("Observation", "obs1")}]}]
    assert "Condition.verificationStatus" in fields_of(outcome(doc, "Condition"))


def test_list_warning_codes_are_kept_as_uk_core() -> None:
    lst = {
        "resourceType": "List",
        "id": "l1",
        "status": "current",
        "mode": "snapshot",
        "title": "Medications and medical devices",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "933361000000108"}]},
        "subject": {"reference": "Patient/p1"},
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                "Extension-CareConnect-GPC-ListWarningCode-1",
                "valueCode": code,
            }
            for code in ("confidential-items", "data-in-transit", "data-awaiting-filing")
        ],
        "note": [{"text": "Items excluded due to confidentiality"}],
        "emptyReason": {
            "coding": [{"system": "http://hl7.org/fhir/list-empty-reason", "code": "withheld"}]
        },
    }
    res = resource(bundle(patient(), organization(), lst), "List")
    codes = [
        (
            e["url"],
            e["valueCodeableConcept"]["coding"][0]["system"],
            e["valueCodeableConcept"]["coding"][0]["code"],
        )
        for e in res["extension"]
    ]
    url = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ListWarningCode"
    system = "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListWarningCode"
    assert codes == [
        (url, system, "confidential-items"),
        (url, system, "data-in-transit"),
        (url, system, "data-awaiting-filing"),
    ]
    assert res["emptyReason"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/list-empty-reason"
    )


def test_medication_request_extensions_and_requester() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "plan",
        "medicationReference": {"reference": "Medication/m1"},
        "subject": {"reference": "Patient/p1"},
        "requester": {
            "agent": {"reference": "Practitioner/gp1"},
            "onBehalfOf": {"reference": "Organization/org1"},
        },
        "dosageInstruction": [
            {"text": "one daily", "doseQuantity": {"value": 1, "unit": "tablet"}}
        ],
        "dispenseRequest": {
            "quantity": {
                "value": 28,
                "extension": [
                    {
                        "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                        "Extension-CareConnect-GPC-MedicationQuantityText-1",
                        "valueString": "28 tablets",
                    }
                ],
            },
            "expectedSupplyDuration": {
                "value": 28,
                "system": "http://unitsofmeasure.org",
                "code": ["d"],
            },
        },
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                "Extension-CareConnect-GPC-PrescriptionType-1",
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1",
                            "code": "repeat",
                        }
                    ]
                },
            },
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                "Extension-CareConnect-GPC-MedicationRepeatInformation-1",
                "extension": [
                    {"url": "numberOfRepeatPrescriptionsAllowed", "valueUnsignedInt": 6},
                    {"url": "numberOfRepeatPrescriptionsIssued", "valueUnsignedInt": 2},
                ],
            },
        ],
    }
    doc = bundle(patient(), organization(), request)
    res = resource(doc, "MedicationRequest")
    assert res["requester"] == {"reference": target("Practitioner", "gp1")}
    assert res["courseOfTherapyType"]["coding"][0]["code"] == "continuous"
    assert res["courseOfTherapyType"]["coding"][1]["code"] == "repeat"
    assert res["dispenseRequest"]["numberOfRepeatsAllowed"] == 6
    assert res["dispenseRequest"]["quantity"] == {"value": 28, "unit": "tablets"}
    assert res["dispenseRequest"]["expectedSupplyDuration"]["code"] == "d"
    assert res["extension"] == [
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/"
            "Extension-UKCore-MedicationRepeatInformation",
            "extension": [{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 2}],
        }
    ]
    assert res["dosageInstruction"][0]["doseAndRate"] == [
        {"doseQuantity": {"value": 1, "unit": "tablet"}}
    ]
    warned = fields_of(outcome(doc, "MedicationRequest"))
    assert "MedicationRequest.requester.onBehalfOf" in warned
    assert "MedicationRequest.dispenseRequest.expectedSupplyDuration.code" in warned


def test_immunization_restructured_and_undefined_elements_dropped() -> None:
    immunization = {
        "resourceType": "Immunization",
        "id": "im1",
        "status": "completed",
        "notGiven": True,
        "vaccineCode": {
            "coding": [{"system": "http://hl7.org/fhir/v3/NullFlavor ", "code": "UNK"}]
        },
        "patient": {"reference": "Patient/p1"},
        "date": "2019-06-28",
        "primarySource": True,
        "practitioner": [
            {
                "role": {"coding": [{"system": "http://hl7.org/fhir/v2/0443", "code": "AP"}]},
                "actor": {"reference": "Practitioner/gp1"},
            }
        ],
        "explanation": {"notGivenReason": [{"text": "unwell"}]},
        "vaccinationProtocol": [{"doseSequence": 1, "seriesDoses": 3, "doseStatus": {"text": "x"}}],
    }
    doc = bundle(patient(), organization(), immunization)
    res = resource(doc, "Immunization")
    assert res["status"] == "not-done"
    assert res["occurrenceDateTime"] == "2019-06-28"
    assert res["vaccineCode"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
    )
    assert res["performer"][0]["function"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/v2-0443"
    )
    assert res["protocolApplied"] == [{"doseNumberPositiveInt": 1, "seriesDosesPositiveInt": 3}]
    warned = fields_of(outcome(doc, "Immunization"))
    assert "Immunization.explanation.notGivenReason" in warned
    assert "Immunization.vaccineCode.coding.system" in warned


def test_questionnaire_item_without_link_id_and_encounter_class() -> None:
    answers = {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "item": [{"answer": [{"valueString": "yes"}]}, {"linkId": "b", "text": "kept"}],
    }
    visit = {
        "resourceType": "Encounter",
        "id": "enc1",
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
    }
    doc = bundle(patient(), organization(), answers, visit)
    res = resource(doc, "QuestionnaireResponse")
    assert [i["linkId"] for i in res["item"]] == ["scr-1", "b"]
    assert "QuestionnaireResponse.item.linkId" in fields_of(outcome(doc, "QuestionnaireResponse"))
    enc = resource(doc, "Encounter")
    assert enc["class"]["code"] == "UNK"
    assert "Encounter.class" in fields_of(outcome(doc, "Encounter"))


def test_unknown_stu3_extension_dropped_and_unknown_modifier_blocks() -> None:
    obs = copy.deepcopy(OBSERVATION)
    obs["extension"] = [
        {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-New-1", "valueString": "x"}
    ]
    out = outcome(bundle(patient(), organization(), obs), "Observation")
    assert out.ok and "extension" not in out.resources[0].resource
    assert "Observation.extension" in fields_of(out)
    obs["modifierExtension"] = obs.pop("extension")
    blocked = outcome(bundle(patient(), organization(), obs), "Observation")
    assert not blocked.ok


def test_what_cannot_be_repaired_is_an_issue_naming_the_element() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
    }
    out = outcome(bundle(patient(), organization(), obs), "Observation")
    assert not out.ok
    assert [i.field for i in out.issues] == ["Observation.code"]


def test_adapter_meets_the_protocol() -> None:
    adapter: Adapter = GpConnectAdapter()
    assert adapter.kind == "gpconnect"
    (rec,) = [r for r in records(bundle(patient(), organization())) if r.ref.table == "Patient"]
    assert adapter.map(rec, CTX).ok


def test_mapping_files_are_checked_when_loaded(tmp_path: Path) -> None:
    for path in GPCONNECT_DIR.glob("*.json"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert load(tmp_path).resources["ReferralRequest"].target == "ServiceRequest"
    (tmp_path / "extra.json").write_text(
        json.dumps(
            {
                "version": "1",
                "description": "duplicate",
                "skip": {"Binary": "again"},
            }
        )
    )
    with pytest.raises(MapFileError, match="already defined"):
        load(tmp_path)
    (tmp_path / "extra.json").write_text(
        json.dumps(
            {
                "version": "1",
                "description": "bad",
                "resources": {"Flag": {"target": "Flag"}},
            }
        )
    )
    with pytest.raises(MapFileError, match="patient"):
        load(tmp_path)


# --- pulling ----------------------------------------------------------------------------

CONSUMER = Consumer(
    asid="200000000359",
    system_url="https://scr.example",
    ods_code="RXX01",
    organisation_name="Test Hospital",
    user_id="u123",
    family="Doctor",
    given="Dee",
)
BASE = "https://provider.example/B82617/STU3/1/gpconnect/structured/fhir"


def _claims(authorization: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, claims, signature = authorization.removeprefix("Bearer ").split(".")

    def part(text: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))

    return part(header), part(claims), signature


def test_pull_retries_a_503_then_reads_the_bundle() -> None:
    calls: list[httpx.Request] = []
    doc = bundle(patient(), organization())

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"})
        return httpx.Response(200, json=doc)

    waits: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        got = pull(
            BASE,
            NHS,
            client=client,
            consumer=CONSUMER,
            provider_asid="918999198993",
            sleep=waits.append,
            clock=lambda: 1_700_000_000.0,
        )
    assert got == doc
    assert waits == [2.0]
    assert len(calls) == 2
    request = calls[-1]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/Patient/$gpc.getstructuredrecord"
    assert request.headers["Ssp-From"] == "200000000359"
    assert request.headers["Ssp-To"] == "918999198993"
    assert request.headers["Ssp-InteractionID"] == (
        "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
    )
    assert request.headers["Ssp-TraceID"] != calls[0].headers["Ssp-TraceID"]
    assert request.headers["Accept"].startswith("application/fhir+json")
    assert request.headers["Content-Type"].startswith("application/fhir+json")
    header, claims, signature = _claims(request.headers["Authorization"])
    assert header == {"alg": "none", "typ": "JWT"} and signature == ""
    assert claims["aud"] == BASE and claims["sub"] == "u123"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["reason_for_request"] == "directcare"
    assert claims["requesting_organization"]["identifier"][0]["value"] == "RXX01"
    body = json.loads(request.content)
    assert body["resourceType"] == "Parameters"
    assert body["parameter"][0] == {
        "name": "patientNHSNumber",
        "valueIdentifier": {"system": NHS_SYSTEM, "value": NHS},
    }


def test_pull_raises_on_an_operation_outcome_and_bounds_its_retries() -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-found",
                "details": {
                    "coding": [{"code": "PATIENT_NOT_FOUND", "display": "Patient not found"}]
                },
            }
        ],
    }
    refuse = httpx.MockTransport(lambda request: httpx.Response(404, json=refusal))
    with httpx.Client(transport=refuse) as client, pytest.raises(OperationOutcomeError) as err:
        pull(BASE, NHS, client=client, consumer=CONSUMER, provider_asid="1", sleep=lambda s: None)
    assert err.value.codes == ["PATIENT_NOT_FOUND"]
    calls: list[int] = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429)

    with httpx.Client(transport=httpx.MockTransport(busy)) as client, pytest.raises(GpConnectError):
        pull(
            BASE,
            NHS,
            client=client,
            consumer=CONSUMER,
            provider_asid="1",
            attempts=3,
            sleep=lambda s: None,
        )
    assert len(calls) == 3


def test_read_pulled_yields_records_and_quarantines_refusals() -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "forbidden",
                "details": {"coding": [{"code": "NO_PATIENT_CONSENT"}]},
            }
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        nhs = json.loads(request.content)["parameter"][0]["valueIdentifier"]["value"]
        if nhs == NHS:
            return httpx.Response(200, json=bundle(patient(), organization()))
        return httpx.Response(403, json=refusal)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        recs = list(
            GpConnectAdapter().read_pulled(
                BASE,
                [NHS, "999 000 0026", "1234567890"],
                consumer=CONSUMER,
                provider_asid="1",
                client=client,
            )
        )
    assert [(r.ref.table, bool(r.read_issues)) for r in recs] == [
        ("Patient", False),
        ("Organization", False),
        ("Bundle", True),
        ("Bundle", True),
    ]
    assert "NO_PATIENT_CONSENT" in recs[2].read_issues[0].reason
    assert recs[3].read_issues[0].field == "patientNHSNumber"


def test_an_r4_problem_is_located_by_fhirpath_as_every_other_source_s() -> None:
    """A review item from GP Connect read ``Patient.name.0.family`` where one from any other
    source reads ``Patient.name[0].family``."""
    from adapters.gpconnect.convert import _validate
    from engine.validate import validate_resource

    bad = {"resourceType": "Patient", "name": [{"family": 5}]}
    assert [i.field for i in _validate(bad)] == [i.field for i in validate_resource(bad)]
    assert [i.field for i in _validate(bad)] == ["Patient.name[0].family"]
