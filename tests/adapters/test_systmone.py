"""SystmOne-style specifics that the shared pipeline tests do not cover."""

from __future__ import annotations

from adapters.base import MapContext
from adapters.systmone import SystmOneAdapter
from tests.factories import nhs_numbers, s1_patient, write_csv, write_systmone

MEDS = [
    "RowIdentifier", "IDPatient", "IDOrganisation", "IDOrganisationVisibleTo", "RemovedData",
    "IDMultiLexDMD", "NameOfMedication", "DateMedicationStart", "DateMedicationEnd",
    "MedicationDosage", "MedicationQuantity", "IsRepeatMedication",
]  # fmt: skip


def med(row_id: str, end: str) -> dict[str, str]:
    return {
        "RowIdentifier": row_id, "IDPatient": "1", "IDOrganisation": "5001",
        "IDOrganisationVisibleTo": "", "RemovedData": "0", "IDMultiLexDMD": "323510009",
        "NameOfMedication": "Amoxicillin 500mg capsules", "DateMedicationStart": "01 Jun 2026",
        "DateMedicationEnd": end, "MedicationDosage": "One three times a day",
        "MedicationQuantity": "21 capsule", "IsRepeatMedication": "Y",
    }  # fmt: skip


def statuses(folder, codes) -> dict[str, str]:  # type: ignore[no-untyped-def]
    adapter = SystmOneAdapter()
    ctx = MapContext(codes=codes)
    return {
        r.ref.row_id: adapter.map(r, ctx).resources[0].resource["status"]
        for r in adapter.read(str(folder))
        if r.ref.table == "SRPrimaryCareMedication"
    }


def test_medication_current_at_the_extract_date_is_active(tmp_path, codes):
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    manifest = {"FileName": "SRPatient.csv", "IsDelta": "N", "DateExtractFrom": "01 Jan 2005",
                "DateExtractTo": "30 Jun 2026 23:59:59"}  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(manifest), [manifest], "cp1252")
    write_csv(
        folder / "SRPrimaryCareMedication.csv",
        MEDS,
        [med("1", "05 Jul 2026"), med("2", "10 Jun 2026"), med("3", "")],
        "cp1252",
    )
    assert statuses(folder, codes) == {"1": "active", "2": "completed", "3": "active"}


def test_without_a_manifest_a_course_is_current_until_its_end_date(tmp_path, codes):
    """With no extract date to go by, today is the date: a course ending in 2099 is not over."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    write_csv(
        folder / "SRPrimaryCareMedication.csv",
        MEDS,
        [med("1", "05 Jul 2099"), med("2", "10 Jun 2016"), med("3", "")],
        "cp1252",
    )
    assert statuses(folder, codes) == {"1": "active", "2": "completed", "3": "active"}


SENSITIVITIES = [
    "RowIdentifier", "IDPatient", "IDOrganisation", "IDOrganisationVisibleTo", "RemovedData",
    "DateStarted", "DateEnded", "IDDrugCode", "FormulationSpecific",
]  # fmt: skip
MULTILEX = "https://fhir.hl7.org.uk/Id/multilex-drug-codes"


def allergies(tmp_path, codes, *rows: dict[str, str], products=()):  # type: ignore[no-untyped-def]
    """Each SRDrugSensitivity row's AllergyIntolerance; ``products`` are medication rows giving
    Multilex product ids (IDMultiLexProduct) their names and dm+d codes."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    base = {"IDPatient": "1", "IDOrganisation": "5001", "IDOrganisationVisibleTo": "",
            "RemovedData": "0", "DateStarted": "01 Mar 2019", "DateEnded": "",
            "FormulationSpecific": "N"}  # fmt: skip
    write_csv(folder / "SRDrugSensitivity.csv", SENSITIVITIES, [base | r for r in rows], "cp1252")
    if products:
        meds = [med(f"m{i}", "") | p for i, p in enumerate(products)]
        write_csv(
            folder / "SRPrimaryCareMedication.csv", [*MEDS, "IDMultiLexProduct"], meds, "cp1252"
        )
    adapter, ctx = SystmOneAdapter(), MapContext(codes=codes)
    return {
        r.ref.row_id: adapter.map(r, ctx).resources[0].resource
        for r in adapter.read(str(folder))
        if r.ref.table == "SRDrugSensitivity"
    }


def test_a_drug_sensitivity_is_coded_in_multilex_and_named_where_the_extract_can(tmp_path, codes):
    """IDDrugCode is a Multilex product id, not dm+d. A product the practice has prescribed is
    named (and dm+d coded) from its medication rows; any other says it has no name here."""
    found = allergies(
        tmp_path,
        codes,
        {"RowIdentifier": "a1", "IDDrugCode": "1234567"},
        {"RowIdentifier": "a2", "IDDrugCode": "7654321"},
        products=[{"IDMultiLexProduct": "1234567"}],
    )
    named, unnamed = found["a1"]["code"], found["a2"]["code"]
    assert {(c["system"], c["code"]) for c in named["coding"]} == {
        (MULTILEX, "1234567"),
        ("https://dmd.nhs.uk", "323510009"),
    }
    assert named["text"] == "Amoxicillin 500mg capsules"
    assert [(c["system"], c["code"]) for c in unnamed["coding"]] == [(MULTILEX, "7654321")]
    assert "no name" in unnamed["text"]


def test_an_ended_drug_sensitivity_is_resolved_with_its_end_date(tmp_path, codes):
    """DateEnded is when the sensitivity ended, not the last reaction (lastOccurrence)."""
    found = allergies(
        tmp_path, codes, {"RowIdentifier": "a1", "IDDrugCode": "1", "DateEnded": "01 Jan 2024"}
    )
    allergy = found["a1"]
    assert "lastOccurrence" not in allergy
    assert allergy["clinicalStatus"]["coding"][0]["code"] == "resolved"
    (end,) = allergy["extension"]
    assert (
        end["url"]
        == "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd"
    )
    assert end["extension"] == [{"url": "endDate", "valueDateTime": "2024-01-01"}]


def test_a_carer_is_coded_as_a_carer_not_an_emergency_contact(tmp_path, codes):
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    columns = ["RowIdentifier", "IDPatient", "RelationshipType", "RelationshipWithName",
               "CaresForPatient", "NextOfKin", "KeyHolder"]  # fmt: skip
    row = {"RowIdentifier": "r1", "IDPatient": "1", "RelationshipType": "Daughter",
           "RelationshipWithName": "Pat Smith", "CaresForPatient": "Y", "NextOfKin": "N",
           "KeyHolder": "N"}  # fmt: skip
    write_csv(folder / "SRPatientRelationship.csv", columns, [row], "cp1252")
    adapter, ctx = SystmOneAdapter(), MapContext(codes=codes)
    (rec,) = [r for r in adapter.read(str(folder)) if r.ref.table == "SRPatientRelationship"]
    (related,) = adapter.map(rec, ctx).resources
    codings = [c for r in related.resource["relationship"] for c in r.get("coding", [])]
    assert ("IC", "Informal Carer") in {(c["code"], c.get("display")) for c in codings}
    assert "C" not in {c["code"] for c in codings}, "v2-0131 C is an emergency contact"


def test_an_address_removed_at_source_is_not_the_current_one(tmp_path, codes):
    """RemovedData is read the same way by the joins as by the maps: '1', 'true' or 'y'."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    old = {
        "RowIdentifier": "a1",
        "IDPatient": "1",
        "AddressLine1": "1 Old Lane",
        "PostCode": "AB1 1AA",
        "DateEvent": "01 Jan 2010",
        "DateTo": "",
        "RemovedData": "0",
    }
    removed = old | {"RowIdentifier": "a2", "AddressLine1": "9 Wrong Street",
                     "DateEvent": "01 Jan 2020", "RemovedData": "True"}  # fmt: skip
    write_csv(folder / "SRPatientAddressHistory.csv", list(old), [old, removed], "cp1252")
    adapter, ctx = SystmOneAdapter(), MapContext(codes=codes)
    (rec,) = [r for r in adapter.read(str(folder)) if r.ref.table == "SRPatient"]
    (patient, *_) = adapter.map(rec, ctx).resources
    assert patient.resource["address"][0]["line"] == ["1 Old Lane"]


def test_a_corrected_course_end_is_judged_again_against_the_extract_date(tmp_path, codes):
    """A course whose end date could not be read is not current when read; corrected on replay
    to a date after the extract's, it is active: judged against the extract's own date, which
    the record keeps, not the day of the replay (a later one would make it completed)."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    manifest = {"FileName": "SRPatient.csv", "IsDelta": "N", "DateExtractFrom": "01 Jan 2005",
                "DateExtractTo": "30 Jun 2026 23:59:59"}  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(manifest), [manifest], "cp1252")
    write_csv(folder / "SRPrimaryCareMedication.csv", MEDS, [med("1", "31 Jun 2026")], "cp1252")
    adapter, ctx = SystmOneAdapter(), MapContext(codes=codes)
    [course] = [r for r in adapter.read(str(folder)) if r.ref.table == "SRPrimaryCareMedication"]
    assert adapter.map(course, ctx).issues[0].field == "DateMedicationEnd"
    fixed = adapter.correct(course, {"DateMedicationEnd": "05 Jul 2026"}, today="2026-12-05")
    assert adapter.map(fixed, ctx).resources[0].resource["status"] == "active"
    ended = adapter.correct(course, {"DateMedicationEnd": "10 Jun 2026"}, today="2026-12-05")
    assert adapter.map(ended, ctx).resources[0].resource["status"] == "completed"


def test_a_corrected_drug_name_names_the_sensitivity(tmp_path, codes):
    """A sensitivity's own drug name, corrected, is the name it is shown with."""
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    row = {"RowIdentifier": "a1", "IDPatient": "1", "IDOrganisation": "5001",
           "IDOrganisationVisibleTo": "", "RemovedData": "0", "DateStarted": "01 Mar 2019",
           "DateEnded": "", "FormulationSpecific": "N", "IDDrugCode": "1234567",
           "DrugName": "Penicilin"}  # fmt: skip
    write_csv(folder / "SRDrugSensitivity.csv", [*SENSITIVITIES, "DrugName"], [row], "cp1252")
    adapter, ctx = SystmOneAdapter(), MapContext(codes=codes)
    [sensitivity] = [r for r in adapter.read(str(folder)) if r.ref.table == "SRDrugSensitivity"]
    fixed = adapter.correct(sensitivity, {"DrugName": "Penicillin"}, today="2026-12-05")
    assert adapter.map(fixed, ctx).resources[0].resource["code"]["text"] == "Penicillin"
