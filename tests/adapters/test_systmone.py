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


def test_without_a_manifest_only_an_open_course_is_active(tmp_path, codes):
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))])
    write_csv(
        folder / "SRPrimaryCareMedication.csv",
        MEDS,
        [med("1", "05 Jul 2099"), med("3", "")],
        "cp1252",
    )
    assert statuses(folder, codes) == {"1": "completed", "3": "active"}
