"""``scr synth``: deterministic, streamed, spec-shaped sources whose hard cases really occur."""

from __future__ import annotations

import csv
import json
import re
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.codes import CTV3, READ2, SNOMED, load_all
from adapters.synth import catalogue, rates, synthesise
from adapters.values import nhs_number_valid

ENCODINGS = {"systmone": "cp1252", "emis": "utf-8-sig", "council": "utf-8"}
#: Columns sources.md (and the brief) require, per file.
REQUIRED = {
    "systmone": {
        "SRManifest": {"FileName", "IsDelta", "DateExtractFrom", "DateExtractTo"},
        "SROrganisation": {"ID", "Name", "NationalId"},
        "SRPatient": {
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
        },
        "SRPatientAddressHistory": {
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
        },
        "SRPatientRegistration": {
            "IDPatient",
            "IDOrganisation",
            "DateRegistration",
            "DateDeregistration",
            "RegistrationStatus",
        },
        "SRPatientRelationship": {
            "IDPatient",
            "RelationshipType",
            "NextOfKin",
            "CaresForPatient",
            "PrincipalCarerForPatient",
            "KeyHolder",
            "RelationshipWithName",
            "RelationshipWithTelephone",
        },
        "SRCode": {
            "DateEvent",
            "DateEventRecorded",
            "CTV3Code",
            "CTV3Text",
            "SNOMEDCode",
            "SNOMEDText",
            "IsNumeric",
            "NumericComparator",
            "NumericValue",
            "NumericUnit",
            "IDEvent",
        },
        "SRProblem": {"IDCode", "CTV3Code", "DateEnd", "Severity"},
        "SRPrimaryCareMedication": {
            "IDMultiLexDMD",
            "NameOfMedication",
            "DateMedicationStart",
            "DateMedicationEnd",
            "MedicationDosage",
            "MedicationQuantity",
            "IsRepeatMedication",
        },
        "SRDrugSensitivity": {"DateStarted", "DateEnded", "IDDrugCode", "FormulationSpecific"},
        "SRSpecialNotes": {"DateStart", "DateExpired", "Type", "Note"},
    },
    "emis": {
        "Admin_Organisation": {"OrganisationGuid", "OrganisationName", "ODSCode"},
        "Admin_UserInRole": {"UserInRoleGuid", "GivenName", "Surname", "JobCategoryCode"},
        "Admin_Patient": {
            "PatientGuid",
            "OrganisationGuid",
            "Title",
            "GivenName",
            "MiddleNames",
            "Surname",
            "Sex",
            "DateOfBirth",
            "DateOfDeath",
            "NhsNumber",
            "NHSNumberStatus",
            "HouseNameFlatNumber",
            "NumberAndStreet",
            "Town",
            "Postcode",
            "DateOfRegistration",
            "DateOfDeactivation",
            "CarerName",
            "CarerRelation",
            "SpineSensitive",
            "IsConfidential",
            "Deleted",
        },
        "CareRecord_Consultation": {
            "ConsultationGuid",
            "PatientGuid",
            "EffectiveDate",
            "ClinicianUserInRoleGuid",
            "ConsultationSourceTerm",
            "IsConfidential",
            "Deleted",
        },
        "CareRecord_Observation": {
            "ObservationGuid",
            "PatientGuid",
            "EffectiveDate",
            "EffectiveDatePrecision",
            "CodeId",
            "Value",
            "NumericUnit",
            "ObservationType",
            "NumericRangeLow",
            "NumericRangeHigh",
            "ConsultationGuid",
            "ProblemGuid",
            "IsConfidential",
            "Deleted",
        },
        "CareRecord_Problem": {
            "ObservationGuid",
            "EndDate",
            "ProblemStatusDescription",
            "SignificanceDescription",
        },
        "Prescribing_DrugRecord": {
            "DrugRecordGuid",
            "PatientGuid",
            "CodeId",
            "Dosage",
            "Quantity",
            "QuantityUnit",
            "PrescriptionType",
            "IsActive",
            "CancellationDate",
            "IsConfidential",
            "Deleted",
        },
        "Prescribing_IssueRecord": {
            "IssueRecordGuid",
            "DrugRecordGuid",
            "EffectiveDate",
            "Quantity",
        },
        "Coding_ClinicalCode": {"CodeId", "Term", "ReadTermId", "SnomedCTConceptId"},
        "Coding_DrugCode": {"CodeId", "Term", "DmdProductCodeId"},
    },
    "council": {
        "organisation": {"code", "name"},
        "persons": {
            "person_id",
            "first_name",
            "last_name",
            "date_of_birth",
            "date_of_death",
            "gender",
            "nhs_number",
            "address",
            "postcode",
            "restricted",
            "allocated_team",
        },
        "events": {
            "event_id",
            "person_id",
            "event_type",
            "event_start_date",
            "event_end_date",
            "service_type",
            "service_component",
            "delivery_mechanism",
            "primary_support_reason",
            "event_outcome",
            "provider_name",
            "planned_units_per_week",
        },
        "warnings": {
            "warning_id",
            "person_id",
            "category",
            "code",
            "start_date",
            "review_date",
            "end_date",
            "narrative",
        },
        "contacts": {
            "contact_id",
            "person_id",
            "name",
            "relationship",
            "is_unpaid_carer",
            "is_key_worker",
            "role",
            "team",
            "phone",
        },
        "legal": {"person_id", "kind", "status", "start_date", "end_date"},
        "placements": {"person_id", "care_home_ods", "start_date", "end_date"},
    },
}
CLINICAL = {
    "RowIdentifier",
    "IDPatient",
    "IDOrganisation",
    "IDOrganisationVisibleTo",
    "RemovedData",
}
GUID = re.compile(r"^\{[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\}$")
TPP_DATE = re.compile(r"^\d{2} [A-Z][a-z]{2} \d{4}( \d{2}:\d{2}:\d{2})?$")
CLD = {
    "event_type": {"Request", "Assessment", "Service", "Review"},
    "service_type": {
        "",
        "Long Term Support: Community",
        "Long Term Support: Residential Care",
        "Long Term Support: Nursing Care",
        "Long Term Support: Prison",
        "Short Term Support: ST-Max",
        "Short Term Support: Ongoing Low Level",
        "Short Term Support: Other Short Term",
        "Carer Support: Direct to Carer",
        "Carer Support: Support involving the person cared-for",
    },
    "delivery_mechanism": {
        "",
        "Direct Payment",
        "CASSR Managed Personal Budget",
        "CASSR Commissioned support",
    },
    "primary_support_reason": {
        "Physical Support: Access & mobility only",
        "Physical Support: Personal care support",
        "Sensory Support: Support for visual impairment",
        "Sensory Support: Support for hearing impairment",
        "Sensory Support: Support for dual impairment",
        "Support with Memory & Cognition",
        "Learning Disability Support",
        "Mental Health Support",
        "Social Support: Substance misuse support",
        "Social Support: Asylum seeker support",
        "Social Support: Support for Social Isolation/Other",
        "Social Support: Support to Carer",
        "Unknown",
    },
    "event_outcome": {
        "NFA - Information & Advice / Signposting only",
        "NFA - Support declined",
        "NFA - Moved to another LA",
        "NFA - Deceased",
        "NFA - 100% NHS funded care",
        "NFA - Self-funded client (inc. 12wk disregard)",
        "NFA - No services offered: Other reason",
        "NFA - Support ended: Other reason",
        "NFA - Other",
        "Progress to Assessment",
        "Progress to Reablement/ST-Max",
        "Progress to Support Planning / Services",
        "Progress to Re-assessment / Unplanned Review",
        "Progress to financial assessment",
        "Progress to End of Life Care",
        "Admitted to hospital",
        "Provision of service",
        "Service Ended As Planned",
    },
}


def rows(out: Path, style: str, table: str) -> Iterator[dict[str, str]]:
    with (out / style / f"{table}.csv").open(encoding=ENCODINGS[style], newline="") as fh:
        yield from csv.DictReader(fh)


def tpp(raw: str) -> date:
    return datetime.strptime(raw[:11], "%d %b %Y").date()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], dict[str, Any]]:
    out = tmp_path_factory.mktemp("synth") / "out"
    counts = synthesise(200, 7, out)
    return out, counts, json.loads((out / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def owners(run: tuple[Path, dict[str, int], dict[str, Any]]) -> dict[str, str]:
    """Every patient record key → the person it belongs to."""
    return {key: p["person"] for p in run[2]["people"] for key in p["records"]}


@pytest.fixture(scope="module")
def views(run: tuple[Path, dict[str, int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every patient record key → that source's demographics, in one shape."""
    out = run[0]
    found: dict[str, dict[str, Any]] = {}
    postcodes = {
        r["IDPatient"]: r["PostCode"]
        for r in rows(out, "systmone", "SRPatientAddressHistory")
        if not r["DateTo"]
    }
    for r in rows(out, "systmone", "SRPatient"):
        found[f"systmone|Y90011|SRPatient|{r['RowIdentifier']}"] = {
            "first": r["FirstName"],
            "surname": r["Surname"],
            "dob": tpp(r["DateBirth"]),
            "nhs": r["NHSNumber"],
            "verified": r["SpineMatched"] == "Y",
            "postcode": postcodes[r["RowIdentifier"]],
            "id": r["RowIdentifier"],
        }
    for r in rows(out, "emis", "Admin_Patient"):
        found[f"emis|Y90022|Admin_Patient|{r['PatientGuid']}"] = {
            "first": r["GivenName"],
            "surname": r["Surname"],
            "dob": date.fromisoformat(r["DateOfBirth"]),
            "nhs": r["NhsNumber"],
            "verified": r["NHSNumberStatus"] == "01",
            "postcode": r["Postcode"],
            "id": r["PatientGuid"],
        }
    for r in rows(out, "council", "persons"):
        found[f"council|E06000999|persons|{r['person_id']}"] = {
            "first": r["first_name"],
            "surname": r["last_name"],
            "dob": date.fromisoformat(r["date_of_birth"]),
            "nhs": r["nhs_number"],
            "verified": None,
            "postcode": r["postcode"],
            "id": r["person_id"],
            "restricted": r["restricted"] == "true",
        }
    return found


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert synthesise(40, 3, first) == synthesise(40, 3, second)
    synthesise(40, 4, other)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 11 + 10 + 7 + 2  # the three styles, truth.json, organisations.json
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "truth.json").read_bytes() != (other / "truth.json").read_bytes()


def test_required_files_and_columns(run: tuple[Path, dict[str, int], dict[str, Any]]) -> None:
    out, counts, _ = run
    for style, tables in REQUIRED.items():
        for table, columns in tables.items():
            with (out / style / f"{table}.csv").open(encoding=ENCODINGS[style]) as fh:
                header = set(next(csv.reader(fh)))
                written = sum(1 for _ in csv.reader(fh))
            if style == "systmone" and table not in ("SRManifest", "SROrganisation", "SRPatient"):
                columns = columns | CLINICAL
            assert columns <= header, f"{style}/{table}.csv lacks {columns - header}"
            assert counts[f"{style}/{table}.csv"] == written
    assert counts["people"] == 200


def test_systmone_is_windows_1252_with_accents_and_pounds(
    run: tuple[Path, dict[str, int], dict[str, Any]],
) -> None:
    out = run[0]
    text = ""
    for path in sorted((out / "systmone").glob("*.csv")):
        raw = path.read_bytes()
        text += raw.decode("cp1252")
        assert b"\r\n" in raw
    assert "é" in text and "£" in text
    with pytest.raises(UnicodeDecodeError):
        (out / "systmone" / "SRSpecialNotes.csv").read_bytes().decode("utf-8")
    first_org = next(rows(out, "systmone", "SROrganisation"))
    assert first_org["NationalId"] == catalogue.SYSTMONE_PRACTICE.ods
    for r in rows(out, "systmone", "SRPatient"):
        assert r["Gender"] in ("M", "F", "U") and r["SpineMatched"] in ("Y", "N")
        assert TPP_DATE.match(r["DateBirth"]) and not r["DateBirth"][11:]
    for r in rows(out, "systmone", "SRCode"):
        assert TPP_DATE.match(r["DateEvent"]) and r["RemovedData"] in ("0", "1")
        assert r["IDOrganisationVisibleTo"] in ("", r["IDOrganisation"])


def test_emis_formats(run: tuple[Path, dict[str, int], dict[str, Any]]) -> None:
    out = run[0]
    assert (out / "emis" / "Admin_Patient.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert not (out / "emis" / "Coding_DrugCode.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert next(rows(out, "emis", "Admin_Organisation"))["ODSCode"] == "Y90022"
    for r in rows(out, "emis", "Admin_Patient"):
        assert GUID.match(r["PatientGuid"]) and GUID.match(r["OrganisationGuid"])
        assert r["Deleted"] in ("True", "False") and r["Sex"] in ("M", "F", "U")
        assert r["NHSNumberStatus"] in ("01", "02", "03")
        date.fromisoformat(r["DateOfBirth"])
    codes = {r["CodeId"]: r for r in rows(out, "emis", "Coding_ClinicalCode")}
    for r in rows(out, "emis", "CareRecord_Observation"):
        assert r["CodeId"] in codes and r["EffectiveDatePrecision"] in ("YMD", "YM", "Y")
        assert r["ObservationType"] in (
            "Observation",
            "Value",
            "Allergy",
            "Problem",
            "Family history",
        )
        date.fromisoformat(r["EffectiveDate"])
    read_ids = [c["ReadTermId"] for c in codes.values() if c["ReadTermId"]]
    assert read_ids and all(len(c) == 7 for c in read_ids)


def test_council_uses_defined_values(run: tuple[Path, dict[str, int], dict[str, Any]]) -> None:
    out = run[0]
    assert list(rows(out, "council", "organisation")) == [
        {"code": catalogue.COUNCIL.ods, "name": catalogue.COUNCIL.name}
    ]
    events = list(rows(out, "council", "events"))
    assert {e["event_type"] for e in events} == CLD["event_type"]
    for event in events:
        for column, allowed in CLD.items():
            assert event[column] in allowed, (column, event[column])
    for w in rows(out, "council", "warnings"):
        assert w["category"] in ("RTO", "RTS", "RSO", "SGC", "OTH")
        assert w["code"] in ("DOLS", "MAPPA", "MARAC", "NVU", "MANHAN", "EOL")
    for legal in rows(out, "council", "legal"):
        assert legal["kind"] in ("DoLS", "LPA-health-welfare", "Court-deputy", "MHA-s117")
    homes = {h.ods for h in catalogue.CARE_HOMES}
    assert {p["care_home_ods"] for p in rows(out, "council", "placements")} <= homes
    assert {p["restricted"] for p in rows(out, "council", "persons")} == {"true", "false"}


def test_nhs_numbers_are_test_range_or_labelled_mistyped(
    run: tuple[Path, dict[str, int], dict[str, Any]],
    owners: dict[str, str],
    views: dict[str, dict[str, Any]],
) -> None:
    cases = {p["person"]: set(p["cases"]) for p in run[2]["people"]}
    mistyped = set()
    for key, view in views.items():
        number = view["nhs"]
        if not number:
            assert "missing_nhs_number" in cases[owners[key]]
            continue
        assert len(number) == 10 and number.isdigit()
        if not (nhs_number_valid(number) and number.startswith("999")):
            assert "mistyped_nhs_number" in cases[owners[key]], key
            mistyped.add(owners[key])
    assert mistyped
    truths = [p["nhs_number"] for p in run[2]["people"]]
    assert len(set(truths)) == len(truths)
    assert all(nhs_number_valid(n) and n.startswith("999") for n in truths)


def test_truth_keys_name_existing_rows_once(
    run: tuple[Path, dict[str, int], dict[str, Any]], views: dict[str, dict[str, Any]]
) -> None:
    truth = run[2]
    assert truth["seed"] == 7 and truth["patients"] == 200
    assert [p["person"] for p in truth["people"]] == [f"P{i:06d}" for i in range(1, 201)]
    keys = [k for p in truth["people"] for k in p["records"]]
    assert sorted(keys) == sorted(views), "each patient row belongs to exactly one person"
    styles = [k.split("|")[0] for k in keys]
    assert 0.3 < styles.count("council") / 200 < 0.55
    assert min(styles.count("systmone"), styles.count("emis")) > 60
    grouped = {m for groups in truth["cases"].values() for g in groups for m in g}
    labelled = {p["person"] for p in truth["people"] if p["cases"]}
    assert grouped == labelled


def test_every_hard_case_is_present_and_real(
    run: tuple[Path, dict[str, int], dict[str, Any]],
    views: dict[str, dict[str, Any]],
) -> None:
    out, _, truth = run
    assert set(rates.FORCED_CASES) <= set(truth["cases"])
    records = {p["person"]: [views[k] for k in p["records"]] for p in truth["people"]}
    keys = {p["person"]: p["records"] for p in truth["people"]}

    def differs(person: str, field: str) -> bool:
        return len({v[field] for v in records[person]}) > 1

    def pairs(a: str, b: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(va, vb) for va in records[a] for vb in records[b]]

    for a, b in truth["cases"]["twin"]:  # some source holds both at one address, one name
        assert any(
            va["surname"] == vb["surname"]
            and va["postcode"] == vb["postcode"]
            and abs((va["dob"] - vb["dob"]).days) <= 1
            for va, vb in pairs(a, b)
        )
        assert all(va["first"] != vb["first"] for va, vb in pairs(a, b))
    for a, b in truth["cases"]["father_son_same_name"]:
        assert any(
            (va["first"], va["surname"], va["postcode"])
            == (vb["first"], vb["surname"], vb["postcode"])
            for va, vb in pairs(a, b)
        )
        assert all((vb["dob"] - va["dob"]).days > 18 * 365 for va, vb in pairs(a, b))
    checks: dict[str, Callable[[str], bool]] = {
        "name_variant": lambda p: differs(p, "first") or differs(p, "surname"),
        "married_name_change": lambda p: differs(p, "surname"),
        "moved_address": lambda p: differs(p, "postcode"),
        "transposed_dob": lambda p: any(
            (v["dob"].day, v["dob"].month)
            == (w["dob"].month, w["dob"].day)
            != (w["dob"].day, w["dob"].month)
            for v in records[p]
            for w in records[p]
        ),
        "missing_nhs_number": lambda p: any(not v["nhs"] for v in records[p]),
        "unverified_nhs_number": lambda p: any(
            v["verified"] is False and v["nhs"] for v in records[p]
        ),
        "moved_practice": lambda p: {k.split("|")[0] for k in keys[p]} >= {"systmone", "emis"},
        "restricted": lambda p: any(v.get("restricted") for v in records[p]),
    }
    for case, check in checks.items():
        for (person,) in truth["cases"][case]:
            assert check(person), (case, person)

    by_id = {v["id"]: person for person, vs in records.items() for v in vs}
    evidence: dict[str, set[str]] = defaultdict(set)
    codes = {r["CodeId"]: r for r in rows(out, "emis", "Coding_ClinicalCode")}
    for r in rows(out, "systmone", "SRCode"):
        person = by_id[r["IDPatient"]]
        if r["RemovedData"] == "1":
            evidence["deleted_row"].add(person)
        if r["IDOrganisationVisibleTo"]:
            evidence["confidential_item"].add(person)
        if r["CTV3Code"] == catalogue.UNMAPPED.ctv3:
            evidence["unknown_code"].add(person)
        if r["SNOMEDCode"] == catalogue.SYPHILIS.snomed or r["CTV3Code"] == "A97z.":
            evidence["sensitive_code"].add(person)
    for r in rows(out, "emis", "CareRecord_Observation"):
        person = by_id[r["PatientGuid"]]
        if r["Deleted"] == "True":
            evidence["deleted_row"].add(person)
        if r["IsConfidential"] == "True":
            evidence["confidential_item"].add(person)
        if r["EffectiveDatePrecision"] != "YMD":
            evidence["partial_date"].add(person)
        if codes[r["CodeId"]]["SnomedCTConceptId"] == catalogue.SYPHILIS.snomed:
            evidence["sensitive_code"].add(person)
    council = {v["id"]: p for p, vs in records.items() for v in vs}
    for w in rows(out, "council", "warnings"):
        if w["category"] == "SGC":
            evidence["safeguarding"].add(council[w["person_id"]])
    for placement in rows(out, "council", "placements"):
        evidence["care_home"].add(council[placement["person_id"]])
    for case, people in evidence.items():
        assert {g[0] for g in truth["cases"][case]} == people, case


def test_codes_written_are_in_the_shipped_maps(
    run: tuple[Path, dict[str, int], dict[str, Any]],
) -> None:
    out = run[0]
    maps = load_all()
    ctv3_only = 0
    for r in rows(out, "systmone", "SRCode"):
        code, snomed = r["CTV3Code"], r["SNOMEDCode"]
        target = maps.translate(CTV3, code)
        if code == catalogue.UNMAPPED.ctv3:
            assert target is None and not snomed
            continue
        assert target is not None, code
        assert snomed in ("", target.code)
        ctv3_only += not snomed
    assert ctv3_only, "some rows must need the CTV3 map"
    for r in rows(out, "emis", "Coding_ClinicalCode"):
        if r["ReadTermId"]:
            target = maps.translate(READ2, r["ReadTermId"][:5])
            assert target is not None and target.code == r["SnomedCTConceptId"], r
    assert maps.sensitive_category(SNOMED, catalogue.SYPHILIS.snomed or "") == "sti"
    drugs = {r["CodeId"]: r["DmdProductCodeId"] for r in rows(out, "emis", "Coding_DrugCode")}
    dmd = {d.dmd for d in catalogue.DRUGS.values()}
    assert set(drugs.values()) == dmd
    assert {r["IDMultiLexDMD"] for r in rows(out, "systmone", "SRPrimaryCareMedication")} <= dmd


def test_maps_agree_with_the_catalogue() -> None:
    maps = load_all()
    for concept in catalogue.ALL_CONCEPTS:
        if concept.ctv3 and concept.snomed:
            target = maps.translate(CTV3, concept.ctv3)
            assert target is not None and target.code == concept.snomed, concept.key
        if concept.read2 and concept.snomed:
            target = maps.translate(READ2, concept.read2[:5])
            assert target is not None and target.code == concept.snomed, concept.key
    assert maps.translate(CTV3, catalogue.UNMAPPED.ctv3 or "") is None


def test_generation_streams_in_constant_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fewer rows per person keeps this quick; what matters is growth with the population.
    monkeypatch.setattr(rates, "VISITS", (1, 2))
    monkeypatch.setattr(rates, "MEDICATION_COURSES", (1, 2))
    peaks = []
    for n in (100, 1000):
        tracemalloc.start()
        try:
            synthesise(n, 11, tmp_path / str(n))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks
