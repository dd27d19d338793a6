"""SystmOne-style (TPP Strategic Reporting) extract: SR*.csv files in Windows-1252.

Conventions this writer follows, which the SystmOne adapter reads back:

- Dates are ``dd MMM yyyy`` (``01 Mar 2024``), date-times ``dd MMM yyyy HH:mm:ss``, with
  English month abbreviations whatever the machine's locale.
- Every clinical row has ``RowIdentifier``, ``IDPatient``, ``IDOrganisation`` (the recording
  organisation's internal ID), ``IDOrganisationVisibleTo`` and ``RemovedData`` (``0``/``1``).
- ``IDOrganisationVisibleTo`` is blank for a row shared normally with every organisation on
  the shared record. It is set to the recording organisation's ID for a row private to that
  organisation (a "confidential item"), which other organisations must not see.
- ``SROrganisation``'s first row is the practice that owns the extract (``NationalId`` = ODS);
  later rows are other organisations that record into the shared record.
- ``Gender`` is ``M``/``F``/``U``; ``NHSNumber`` is 10 digits or blank; ``SpineMatched``
  ``Y``/``N`` means the number was verified against the Spine or not. Flags are ``Y``/``N``.
- ``SRCode`` rows carry ``CTV3Code``/``CTV3Text`` and usually ``SNOMEDCode``/``SNOMEDText``;
  some carry CTV3 only, so the CTV3→SNOMED map is needed to code them.
- ``SRDrugSensitivity.IDDrugCode`` is a (made-up) Multilex product id, as in real TPP extracts;
  the extra column ``DrugName``, which real extracts lack, names it (a real one is named from
  the medication rows' ``IDMultiLexProduct`` when the practice has prescribed it).
  ``SRPrimaryCareMedication`` has one row per issue; issues of one repeat share
  ``IDRepeatTemplate``.
"""

from __future__ import annotations

import itertools
import random
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

from adapters.synth import catalogue as cat
from adapters.synth import names
from adapters.synth.clinical import Event, Record
from adapters.synth.people import Person
from adapters.synth.rates import EXTRACT_DATE, HISTORY_START
from adapters.synth.tables import Tables

STYLE = "systmone"
ENCODING = "cp1252"
PRACTICE = cat.SYSTMONE_PRACTICE
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CLINICAL = (
    "RowIdentifier",
    "IDPatient",
    "IDOrganisation",
    "IDOrganisationVisibleTo",
    "RemovedData",
)
SCHEMA: dict[str, tuple[str, ...]] = {
    "SRManifest": ("FileName", "IsDelta", "DateExtractFrom", "DateExtractTo"),
    "SROrganisation": ("ID", "Name", "NationalId"),
    "SRPatient": (
        "RowIdentifier",
        "IDOrganisationVisibleTo",
        "Title",
        "FirstName",
        "MiddleNames",
        "Surname",
        "PreviousSurname",
        "NHSNumber",
        "DateBirth",
        "DateDeath",
        "Gender",
        "TestPatient",
        "SpineMatched",
        "IDOrganisation",
        "IDOrganisationRegisteredAt",
        "RemovedData",
    ),
    "SRPatientAddressHistory": (
        *_CLINICAL,
        "DateEvent",
        "AddressType",
        "AddressLine1",
        "AddressLine2",
        "AddressLine3",
        "AddressLine4",
        "AddressLine5",
        "PostCode",
        "DateTo",
    ),
    "SRPatientRegistration": (
        *_CLINICAL,
        "DateRegistration",
        "DateDeregistration",
        "RegistrationStatus",
    ),
    "SRPatientRelationship": (
        *_CLINICAL,
        "DateEvent",
        "RelationshipType",
        "PersonalGuardianOrProxy",
        "NextOfKin",
        "CaresForPatient",
        "PrincipalCarerForPatient",
        "KeyHolder",
        "RelationshipWithName",
        "RelationshipWithTelephone",
    ),
    "SRCode": (
        *_CLINICAL,
        "DateEventRecorded",
        "DateEvent",
        "IDProfileEnteredBy",
        "IDDoneBy",
        "IDOrganisationDoneAt",
        "CTV3Code",
        "CTV3Text",
        "SNOMEDCode",
        "SNOMEDText",
        "NumericComparator",
        "IsNumeric",
        "NumericValue",
        "NumericUnit",
        "EpisodeType",
        "IDEvent",
        "IDOrganisationRegisteredAt",
    ),
    "SRProblem": (
        *_CLINICAL,
        "DateEventRecorded",
        "DateEvent",
        "IDCode",
        "CTV3Code",
        "DateEnd",
        "Severity",
    ),
    "SRPrimaryCareMedication": (
        *_CLINICAL,
        "DateEventRecorded",
        "DateEvent",
        "IDMultiLexProduct",
        "IDMultiLexDMD",
        "NameOfMedication",
        "DateMedicationStart",
        "DateMedicationEnd",
        "MedicationDosage",
        "MedicationQuantity",
        "IsRepeatMedication",
        "IsOtherMedication",
        "IsHospitalMedication",
        "IDRepeatTemplate",
    ),
    "SRDrugSensitivity": (
        *_CLINICAL,
        "DateEventRecorded",
        "DateStarted",
        "DateEnded",
        "IDDrugCode",
        "DrugName",
        "FormulationSpecific",
    ),
    "SRSpecialNotes": (
        *_CLINICAL,
        "DateEventRecorded",
        "DateStart",
        "DateExpired",
        "DateDeleted",
        "Type",
        "Note",
    ),
}
_ORGS = (PRACTICE, cat.HOSPITAL, cat.COMMUNITY)
#: Staff profile IDs of the practice's clinicians (by the visit's clinician index).
_PROFILES = (7001, 7002, 7003, 7004)


def tpp_date(d: date) -> str:
    return f"{d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d}"


def tpp_datetime(d: date, minute_of_day: int, second: int = 0) -> str:
    hours, minutes = divmod(minute_of_day, 60)
    return f"{tpp_date(d)} {hours:02d}:{minutes:02d}:{second:02d}"


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


class SystmOneExtract:
    """Writes SystmOne-style rows for each person registered at the SystmOne practice."""

    def __init__(self, stack: ExitStack, folder: Path, rng: random.Random) -> None:
        self._rng = rng
        self.tables = Tables(stack, folder, SCHEMA, encoding=ENCODING)
        self._ids = {
            name: itertools.count(1_000_001 + i * 10_000_000) for i, name in enumerate(SCHEMA)
        }
        self._events = itertools.count(900_000_001)
        self._templates = itertools.count(300_001)
        for name in SCHEMA:
            self.tables.write(
                "SRManifest",
                {
                    "FileName": f"{name}.csv",
                    "IsDelta": "N",
                    "DateExtractFrom": tpp_datetime(HISTORY_START, 0),
                    "DateExtractTo": tpp_datetime(EXTRACT_DATE, 23 * 60 + 59, 59),
                },
            )
        for org in _ORGS:
            self.tables.write(
                "SROrganisation", {"ID": str(org.tpp_id), "Name": org.name, "NationalId": org.ods}
            )

    def _row_id(self, table: str) -> str:
        return str(next(self._ids[table]))

    def _base(
        self,
        table: str,
        patient: str,
        *,
        org: int = PRACTICE.tpp_id,
        private: bool = False,
        removed: bool = False,
    ) -> dict[str, str]:
        return {
            "RowIdentifier": self._row_id(table),
            "IDPatient": patient,
            "IDOrganisation": str(org),
            "IDOrganisationVisibleTo": str(org) if private else "",
            "RemovedData": "1" if removed else "0",
        }

    def add(self, person: Person, record: Record) -> str:
        """Write the person's rows; return the truth key of their SRPatient row."""
        view = person.views[STYLE]
        patient = self._row_id("SRPatient")
        self.tables.write(
            "SRPatient",
            {
                "RowIdentifier": patient,
                "IDOrganisationVisibleTo": "",
                "Title": view.title,
                "FirstName": view.first,
                "MiddleNames": view.middle,
                "Surname": view.surname,
                "PreviousSurname": view.previous_surname,
                "NHSNumber": view.nhs,
                "DateBirth": tpp_date(view.dob),
                "DateDeath": tpp_date(view.dod) if view.dod else "",
                "Gender": view.sex,
                "TestPatient": "N",
                "SpineMatched": _yn(bool(view.nhs) and view.nhs_verified),
                "IDOrganisation": str(PRACTICE.tpp_id),
                "IDOrganisationRegisteredAt": str(PRACTICE.tpp_id),
                "RemovedData": "0",
            },
        )
        self._registration(person, patient)
        self._addresses(person, patient)
        for contact in record.contacts:
            self.tables.write(
                "SRPatientRelationship",
                {
                    **self._base("SRPatientRelationship", patient),
                    "DateEvent": tpp_date(person.registration(STYLE).start),
                    "RelationshipType": contact.relationship,
                    "PersonalGuardianOrProxy": "N",
                    "NextOfKin": _yn(contact.next_of_kin),
                    "CaresForPatient": _yn(contact.carer),
                    "PrincipalCarerForPatient": _yn(contact.carer and contact.next_of_kin),
                    "KeyHolder": _yn(contact.key_holder),
                    "RelationshipWithName": contact.name,
                    "RelationshipWithTelephone": contact.phone,
                },
            )
        self._journal(person, record, patient)
        self._medication(person, record, patient)
        for note in record.notes:
            if person.holds(STYLE, note.start):
                self.tables.write(
                    "SRSpecialNotes",
                    {
                        **self._base("SRSpecialNotes", patient),
                        "DateEventRecorded": tpp_datetime(note.start, 10 * 60),
                        "DateStart": tpp_date(note.start),
                        "DateExpired": tpp_date(note.expires) if note.expires else "",
                        "Type": note.kind,
                        "Note": note.text,
                    },
                )
        return f"{STYLE}|{PRACTICE.ods}|SRPatient|{patient}"

    def _registration(self, person: Person, patient: str) -> None:
        reg = person.registration(STYLE)
        self.tables.write(
            "SRPatientRegistration",
            {
                **self._base("SRPatientRegistration", patient),
                "DateRegistration": tpp_date(reg.start),
                "DateDeregistration": tpp_date(reg.end) if reg.end else "",
                "RegistrationStatus": "GMS",
            },
        )

    def _addresses(self, person: Person, patient: str) -> None:
        view = person.views[STYLE]
        since = person.registration(STYLE).start
        spells: list[tuple[names.Address, date, date | None]] = [(view.address, since, None)]
        moved = person.moved_home_on
        if person.old_address and view.address != person.old_address and moved:
            first = min(since, moved - timedelta(days=365))
            spells = [(person.old_address, first, moved), (view.address, moved, None)]
        for address, start, end in spells:
            self.tables.write(
                "SRPatientAddressHistory",
                {
                    **self._base("SRPatientAddressHistory", patient),
                    "DateEvent": tpp_date(start),
                    "AddressType": "Home",
                    "AddressLine1": address.line1,
                    "AddressLine2": address.locality,
                    "AddressLine3": address.town,
                    "AddressLine4": names.COUNTY,
                    "AddressLine5": "",
                    "PostCode": address.postcode,
                    "DateTo": tpp_date(end) if end else "",
                },
            )

    def _journal(self, person: Person, record: Record, patient: str) -> None:
        event_ids = [str(next(self._events)) for _ in record.visits]
        for event in record.events:
            if not self._codes(person, event):
                continue
            org = cat.COMMUNITY.tpp_id if event.shared else PRACTICE.tpp_id
            if event.visit is None:
                minute, profile, visit_id = 600, _PROFILES[0], str(next(self._events))
            else:
                visit = record.visits[event.visit]
                minute, profile = visit.minute_of_day, _PROFILES[visit.clinician]
                visit_id = event_ids[event.visit]
            when = tpp_datetime(event.when, minute, self._rng.randrange(60))
            concept = event.concept
            snomed = concept.snomed if concept.snomed and not event.ctv3_only else ""
            row = {
                **self._base(
                    "SRCode", patient, org=org, private=event.confidential, removed=event.deleted
                ),
                "DateEventRecorded": when,
                "DateEvent": when,
                "IDProfileEnteredBy": str(profile),
                "IDDoneBy": str(profile),
                "IDOrganisationDoneAt": str(org),
                "CTV3Code": concept.ctv3 or "",
                "CTV3Text": concept.ctv3_term or "",
                "SNOMEDCode": snomed,
                "SNOMEDText": (concept.snomed_term or "") if snomed else "",
                "IsNumeric": _yn(concept.numeric),
                "NumericValue": event.value,
                "NumericUnit": concept.unit or "",
                "EpisodeType": "First" if event.problem else "",
                "IDEvent": visit_id,
                "IDOrganisationRegisteredAt": str(PRACTICE.tpp_id),
            }
            self.tables.write("SRCode", row)
            if event.problem:
                self.tables.write(
                    "SRProblem",
                    {
                        **self._base("SRProblem", patient, org=org, private=event.confidential),
                        "DateEventRecorded": when,
                        "DateEvent": when,
                        "IDCode": row["RowIdentifier"],
                        "CTV3Code": concept.ctv3 or "",
                        "DateEnd": tpp_date(event.ended) if event.ended else "",
                        "Severity": "Major" if event.significant else "Minor",
                    },
                )
        for event in record.events:
            drug = cat.DRUGS.get(event.allergy_drug or "")
            if drug and event.only is None and person.holds(STYLE, event.when):
                self.tables.write(
                    "SRDrugSensitivity",
                    {
                        **self._base("SRDrugSensitivity", patient),
                        "DateEventRecorded": tpp_datetime(event.when, 11 * 60),
                        "DateStarted": tpp_date(event.when),
                        "DateEnded": "",
                        "IDDrugCode": drug.multilex_id,
                        "DrugName": drug.name,
                        "FormulationSpecific": "N",
                    },
                )

    def _codes(self, person: Person, event: Event) -> bool:
        return (
            event.only in (None, STYLE)
            and event.concept.available_in(STYLE)
            and person.holds(STYLE, event.when)
        )

    def _medication(self, person: Person, record: Record, patient: str) -> None:
        for course in record.courses:
            issues = [d for d in course.issues if person.holds(STYLE, d)]
            if not issues:
                continue
            template = str(next(self._templates)) if course.repeat else ""
            course_days = 28 if course.repeat else 7
            drug = course.drug
            for issued in issues:
                self.tables.write(
                    "SRPrimaryCareMedication",
                    {
                        **self._base("SRPrimaryCareMedication", patient),
                        "DateEventRecorded": tpp_datetime(issued, 9 * 60 + 30),
                        "DateEvent": tpp_date(issued),
                        "IDMultiLexProduct": drug.multilex_id,
                        "IDMultiLexDMD": drug.dmd,
                        "NameOfMedication": drug.name,
                        "DateMedicationStart": tpp_date(issued),
                        "DateMedicationEnd": tpp_date(issued + timedelta(days=course_days)),
                        "MedicationDosage": drug.dosage,
                        "MedicationQuantity": f"{drug.quantity} {drug.unit}",
                        "IsRepeatMedication": _yn(course.repeat),
                        "IsOtherMedication": "N",
                        "IsHospitalMedication": "N",
                        "IDRepeatTemplate": template,
                    },
                )
