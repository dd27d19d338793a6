"""EMIS-style (EMIS Web partner extract) CSV files, UTF-8, every field quoted.

Conventions this writer follows, which the EMIS adapter reads back:

- Dates are ``yyyy-MM-dd``, times ``HH:mm:ss``; GUIDs are upper case in braces; booleans are
  ``True``/``False``. ``Admin_Patient.csv`` and ``CareRecord_Observation.csv`` start with a
  UTF-8 byte-order mark (some exports add one), the other files do not.
- ``Admin_Organisation``'s first row is the practice that owns the extract (``ODSCode``).
- ``NHSNumberStatus`` uses the UK Core verification codes: ``01`` present and verified, ``02``
  present but not traced, ``03`` trace required (used here when the number is missing).
- ``EffectiveDatePrecision`` is ``YMD``, ``YM`` or ``Y``; the date is always written in full
  (``2019-03-14`` with ``Y`` means "some time in 2019").
- Clinical rows carry a made-up ``CodeId``, resolved through ``Coding_ClinicalCode`` (term,
  Read v2 term id with its two-character term code, SNOMED concept) or ``Coding_DrugCode``
  (term, dm+d product). ``ObservationType`` is ``Observation``, ``Value``, ``Problem``,
  ``Allergy`` or ``Family history``; a problem's details are in ``CareRecord_Problem``.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from adapters.synth import catalogue as cat
from adapters.synth import names
from adapters.synth.clinical import Event, Record
from adapters.synth.people import Person
from adapters.synth.tables import Tables, guid

STYLE = "emis"
PRACTICE = cat.EMIS_PRACTICE
_TAIL = ("Deleted", "ProcessingId")
SCHEMA: dict[str, tuple[str, ...]] = {
    "Admin_Organisation": (
        "OrganisationGuid",
        "CDB",
        "OrganisationName",
        "ODSCode",
        "ParentOrganisationGuid",
        "CCGOrganisationGuid",
        "OrganisationType",
        "OpenDate",
        "CloseDate",
        "ProcessingId",
    ),
    "Admin_UserInRole": (
        "UserInRoleGuid",
        "OrganisationGuid",
        "Title",
        "GivenName",
        "Surname",
        "JobCategoryCode",
        "JobCategoryName",
        "ContractStartDate",
        "ContractEndDate",
        "ProcessingId",
    ),
    "Admin_Patient": (
        "PatientGuid",
        "OrganisationGuid",
        "UsualGpUserInRoleGuid",
        "Sex",
        "DateOfBirth",
        "DateOfDeath",
        "Title",
        "GivenName",
        "MiddleNames",
        "Surname",
        "DateOfRegistration",
        "NhsNumber",
        "PatientTypeDescription",
        "DummyType",
        "HouseNameFlatNumber",
        "NumberAndStreet",
        "Village",
        "Town",
        "County",
        "Postcode",
        "ResidentialInstituteCode",
        "NHSNumberStatus",
        "CarerName",
        "CarerRelation",
        "PersonGuid",
        "DateOfDeactivation",
        "SpineSensitive",
        "IsConfidential",
        "EmailAddress",
        "HomePhone",
        "MobilePhone",
        *_TAIL,
    ),
    "CareRecord_Consultation": (
        "ConsultationGuid",
        "PatientGuid",
        "OrganisationGuid",
        "EffectiveDate",
        "EffectiveDatePrecision",
        "EnteredDate",
        "EnteredTime",
        "ClinicianUserInRoleGuid",
        "EnteredByUserInRoleGuid",
        "ConsultationSourceTerm",
        "Complete",
        "IsConfidential",
        *_TAIL,
    ),
    "CareRecord_Observation": (
        "ObservationGuid",
        "PatientGuid",
        "OrganisationGuid",
        "EffectiveDate",
        "EffectiveDatePrecision",
        "EnteredDate",
        "EnteredTime",
        "ClinicianUserInRoleGuid",
        "EnteredByUserInRoleGuid",
        "ParentObservationGuid",
        "CodeId",
        "ProblemGuid",
        "ConsultationGuid",
        "Value",
        "NumericUnit",
        "ObservationType",
        "NumericRangeLow",
        "NumericRangeHigh",
        "IsConfidential",
        *_TAIL,
    ),
    "CareRecord_Problem": (
        "ObservationGuid",
        "PatientGuid",
        "OrganisationGuid",
        "ParentProblemObservationGuid",
        "EndDate",
        "ProblemStatusDescription",
        "SignificanceDescription",
        *_TAIL,
    ),
    "Prescribing_DrugRecord": (
        "DrugRecordGuid",
        "PatientGuid",
        "OrganisationGuid",
        "EffectiveDate",
        "EffectiveDatePrecision",
        "EnteredDate",
        "ClinicianUserInRoleGuid",
        "CodeId",
        "Dosage",
        "Quantity",
        "QuantityUnit",
        "ProblemObservationGuid",
        "PrescriptionType",
        "IsActive",
        "CancellationDate",
        "NumberOfIssues",
        "NumberOfIssuesAuthorised",
        "IsConfidential",
        *_TAIL,
    ),
    "Prescribing_IssueRecord": (
        "IssueRecordGuid",
        "PatientGuid",
        "OrganisationGuid",
        "DrugRecordGuid",
        "EffectiveDate",
        "EffectiveDatePrecision",
        "EnteredDate",
        "ClinicianUserInRoleGuid",
        "CodeId",
        "Dosage",
        "Quantity",
        "QuantityUnit",
        "CourseDurationInDays",
        "IsConfidential",
        *_TAIL,
    ),
    "Coding_ClinicalCode": (
        "CodeId",
        "Term",
        "ReadTermId",
        "SnomedCTConceptId",
        "EmisCodeCategoryDescription",
        "ProcessingId",
    ),
    "Coding_DrugCode": ("CodeId", "Term", "DmdProductCodeId", "ProcessingId"),
}
_CLINICIANS = (
    ("Dr", "Helen", "Archer"),
    ("Dr", "Richard", "Locke"),
    ("Dr", "Tim", "Hathaway"),
    ("Dr", "Ruairi", "Donovan"),
)
_ALLERGIES = frozenset(c.key for c, _ in cat.ALLERGY_CODES)
_RANGES = {cat.HBA1C.key: ("20", "42")}


def _tf(flag: bool) -> str:
    return "True" if flag else "False"


def _clock(minute_of_day: int) -> str:
    hours, minutes = divmod(minute_of_day, 60)
    return f"{hours:02d}:{minutes:02d}:00"


def _kind(event: Event) -> str:
    if event.problem:
        return "Problem"
    if event.concept.key in _ALLERGIES:
        return "Allergy"
    if event.family_history:
        return "Family history"
    return "Value" if event.concept.numeric else "Observation"


class EmisExtract:
    """Writes EMIS-style rows for each person registered at the EMIS practice."""

    def __init__(self, stack: ExitStack, folder: Path, rng: random.Random) -> None:
        self._rng = rng
        self.tables = Tables(
            stack,
            folder,
            SCHEMA,
            encoding="utf-8",
            bom=("Admin_Patient", "CareRecord_Observation"),
            quote_all=True,
        )
        self.org_guid = guid(rng)
        icb_guid = guid(rng)
        for org_guid, org, kind, parent in (
            (self.org_guid, PRACTICE, "General Practice", icb_guid),
            (icb_guid, cat.ICB, "Integrated Care Board", ""),
        ):
            self.tables.write(
                "Admin_Organisation",
                {
                    "OrganisationGuid": org_guid,
                    "CDB": str(rng.randint(10000, 99999)),
                    "OrganisationName": org.name,
                    "ODSCode": org.ods,
                    "ParentOrganisationGuid": parent,
                    "CCGOrganisationGuid": parent,
                    "OrganisationType": kind,
                    "OpenDate": "1998-04-01",
                    "CloseDate": "",
                    "ProcessingId": "1",
                },
            )
        self.users = [guid(rng) for _ in _CLINICIANS]
        for user, (title, given, surname) in zip(self.users, _CLINICIANS, strict=True):
            self.tables.write(
                "Admin_UserInRole",
                {
                    "UserInRoleGuid": user,
                    "OrganisationGuid": self.org_guid,
                    "Title": title,
                    "GivenName": given,
                    "Surname": surname,
                    "JobCategoryCode": "R0260",
                    "JobCategoryName": "General Medical Practitioner",
                    "ContractStartDate": "2004-04-01",
                    "ContractEndDate": "",
                    "ProcessingId": "1",
                },
            )
        for concept in cat.ALL_CONCEPTS:
            if concept.key in cat.EMIS_CODE_IDS:
                self.tables.write(
                    "Coding_ClinicalCode",
                    {
                        "CodeId": str(cat.EMIS_CODE_IDS[concept.key]),
                        "Term": concept.read2_term or concept.snomed_term or "",
                        "ReadTermId": concept.read2 or "",
                        "SnomedCTConceptId": concept.snomed or "",
                        "EmisCodeCategoryDescription": "Clinical",
                        "ProcessingId": "1",
                    },
                )
        for drug in cat.DRUGS.values():
            self.tables.write(
                "Coding_DrugCode",
                {
                    "CodeId": str(drug.emis_code_id),
                    "Term": drug.name,
                    "DmdProductCodeId": drug.dmd,
                    "ProcessingId": "1",
                },
            )

    def _common(self, patient: str) -> dict[str, str]:
        return {"PatientGuid": patient, "OrganisationGuid": self.org_guid, "ProcessingId": "1"}

    def add(self, person: Person, record: Record) -> str:
        """Write the person's rows; return the truth key of their Admin_Patient row."""
        rng = self._rng
        view = person.views[STYLE]
        reg = person.registration(STYLE)
        patient = guid(rng)
        carer = next((c for c in record.contacts if c.carer), None)
        address = view.address
        flat = address.house.startswith("Flat")
        status = ("01" if view.nhs_verified else "02") if view.nhs else "03"
        self.tables.write(
            "Admin_Patient",
            {
                **self._common(patient),
                "UsualGpUserInRoleGuid": rng.choice(self.users),
                "Sex": view.sex,
                "DateOfBirth": view.dob.isoformat(),
                "DateOfDeath": view.dod.isoformat() if view.dod else "",
                "Title": view.title,
                "GivenName": view.first,
                "MiddleNames": view.middle,
                "Surname": view.surname,
                "DateOfRegistration": reg.start.isoformat(),
                "NhsNumber": view.nhs,
                "PatientTypeDescription": "Regular",
                "DummyType": "False",
                "HouseNameFlatNumber": address.house if flat else "",
                "NumberAndStreet": address.street if flat else address.line1,
                "Village": address.locality,
                "Town": address.town,
                "County": names.COUNTY,
                "Postcode": address.postcode,
                "ResidentialInstituteCode": person.care_home.ods if person.care_home else "",
                "NHSNumberStatus": status,
                "CarerName": carer.name if carer else "",
                "CarerRelation": carer.relationship if carer else "",
                "PersonGuid": guid(rng),
                "DateOfDeactivation": reg.end.isoformat() if reg.end else "",
                "SpineSensitive": "False",
                "IsConfidential": "False",
                "EmailAddress": "",
                "HomePhone": names.landline(rng) if rng.random() < 0.7 else "",
                "MobilePhone": names.mobile(rng) if rng.random() < 0.6 else "",
                "Deleted": "False",
            },
        )
        consultations = self._consultations(person, record, patient)
        problems = self._observations(person, record, patient, consultations)
        self._prescribing(person, record, patient, problems)
        return f"{STYLE}|{PRACTICE.ods}|Admin_Patient|{patient}"

    def _consultations(self, person: Person, record: Record, patient: str) -> list[str]:
        guids = []
        for visit in record.visits:
            consultation = guid(self._rng)
            guids.append(consultation)
            if not person.holds(STYLE, visit.when):
                continue
            clinician = self.users[visit.clinician]
            self.tables.write(
                "CareRecord_Consultation",
                {
                    **self._common(patient),
                    "ConsultationGuid": consultation,
                    "EffectiveDate": visit.when.isoformat(),
                    "EffectiveDatePrecision": "YMD",
                    "EnteredDate": visit.when.isoformat(),
                    "EnteredTime": _clock(visit.minute_of_day),
                    "ClinicianUserInRoleGuid": clinician,
                    "EnteredByUserInRoleGuid": clinician,
                    "ConsultationSourceTerm": visit.kind,
                    "Complete": "True",
                    "IsConfidential": _tf(visit.confidential),
                    "Deleted": "False",
                },
            )
        return guids

    def _observations(
        self, person: Person, record: Record, patient: str, consultations: list[str]
    ) -> dict[int, str]:
        """Write observations and problems; return problem event index → observation GUID."""
        rng = self._rng
        guids = [guid(rng) for _ in record.events]
        problems: dict[int, str] = {}
        systolic_at: dict[int, str] = {}
        for index, event in enumerate(record.events):
            concept = event.concept
            if not self._codes(person, event):
                continue
            visit = record.visits[event.visit] if event.visit is not None else None
            clinician = self.users[visit.clinician] if visit else self.users[0]
            if concept is cat.SYSTOLIC and event.visit is not None:
                systolic_at[event.visit] = guids[index]
            parent = ""
            if concept is cat.DIASTOLIC and event.visit is not None:
                parent = systolic_at.get(event.visit, "")
            low, high = _RANGES.get(concept.key, ("", ""))
            self.tables.write(
                "CareRecord_Observation",
                {
                    **self._common(patient),
                    "ObservationGuid": guids[index],
                    "EffectiveDate": event.when.isoformat(),
                    "EffectiveDatePrecision": event.precision,
                    "EnteredDate": (
                        event.when + timedelta(days=rng.choice((0, 0, 0, 1, 3)))
                    ).isoformat(),
                    "EnteredTime": _clock(visit.minute_of_day if visit else 9 * 60),
                    "ClinicianUserInRoleGuid": clinician,
                    "EnteredByUserInRoleGuid": clinician,
                    "ParentObservationGuid": parent,
                    "CodeId": str(cat.EMIS_CODE_IDS[concept.key]),
                    "ProblemGuid": guids[event.problem_of] if event.problem_of is not None else "",
                    "ConsultationGuid": consultations[event.visit]
                    if event.visit is not None
                    else "",
                    "Value": event.value,
                    "NumericUnit": concept.unit or "",
                    "ObservationType": _kind(event),
                    "NumericRangeLow": low,
                    "NumericRangeHigh": high,
                    "IsConfidential": _tf(event.confidential),
                    "Deleted": _tf(event.deleted),
                },
            )
            if event.problem:
                problems[index] = guids[index]
                self.tables.write(
                    "CareRecord_Problem",
                    {
                        **self._common(patient),
                        "ObservationGuid": guids[index],
                        "ParentProblemObservationGuid": "",
                        "EndDate": event.ended.isoformat() if event.ended else "",
                        "ProblemStatusDescription": "Past" if event.ended else "Active",
                        "SignificanceDescription": "Significant Problem"
                        if event.significant
                        else "Minor Problem",
                        "Deleted": "False",
                    },
                )
        return problems

    def _codes(self, person: Person, event: Event) -> bool:
        return (
            event.only in (None, STYLE)
            and event.concept.available_in(STYLE)
            and person.holds(STYLE, event.when)
        )

    def _prescribing(
        self, person: Person, record: Record, patient: str, problems: dict[int, str]
    ) -> None:
        rng = self._rng
        for course in record.courses:
            issues = [d for d in course.issues if person.holds(STYLE, d)]
            if not issues:
                continue
            drug = course.drug
            clinician = rng.choice(self.users)
            record_guid = guid(rng)
            left = person.registration(STYLE).end
            active = course.repeat and course.cancelled is None and left is None
            common = {
                **self._common(patient),
                "EffectiveDatePrecision": "YMD",
                "ClinicianUserInRoleGuid": clinician,
                "CodeId": str(drug.emis_code_id),
                "Dosage": drug.dosage,
                "Quantity": str(drug.quantity),
                "QuantityUnit": drug.unit,
                "IsConfidential": "False",
                "Deleted": "False",
            }
            self.tables.write(
                "Prescribing_DrugRecord",
                {
                    **common,
                    "DrugRecordGuid": record_guid,
                    "EffectiveDate": course.start.isoformat(),
                    "EnteredDate": course.start.isoformat(),
                    "ProblemObservationGuid": problems.get(course.problem_of, "")
                    if course.problem_of is not None
                    else "",
                    "PrescriptionType": "Repeat" if course.repeat else "Acute",
                    "IsActive": _tf(active),
                    "CancellationDate": course.cancelled.isoformat() if course.cancelled else "",
                    "NumberOfIssues": str(len(issues)),
                    "NumberOfIssuesAuthorised": str(max(len(issues), 6) if course.repeat else 1),
                },
            )
            for issued in issues:
                self.tables.write(
                    "Prescribing_IssueRecord",
                    {
                        **common,
                        "IssueRecordGuid": guid(rng),
                        "DrugRecordGuid": record_guid,
                        "EffectiveDate": issued.isoformat(),
                        "EnteredDate": issued.isoformat(),
                        "CourseDurationInDays": "28" if course.repeat else "7",
                    },
                )
