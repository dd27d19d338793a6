"""Council-style (adult social care) CSV files, UTF-8, dates ``yyyy-MM-dd``.

Conventions this writer follows, which the council adapter reads back:

- ``organisation.csv`` has one row: the council's (made-up, GSS-style) code and name.
- ``persons.csv``: ``gender`` is ``M``/``F``/``U``; ``nhs_number`` is 10 digits or blank (often
  blank: councils hold fewer verified numbers); ``address`` is one line; ``restricted`` is
  ``true``/``false``.
- ``events.csv`` uses the Adult Social Care Client Level Data defined values for
  ``event_type``, ``service_type``, ``delivery_mechanism``, ``primary_support_reason`` and
  ``event_outcome`` exactly as the CLD return spells them.
- ``warnings.csv`` uses the Interweave flag categories (``RTO``, ``RTS``, ``RSO``, ``SGC``,
  ``OTH``) and codes (``DOLS``, ``MAPPA``, ``MARAC``, ``NVU``, ``MANHAN``, ``EOL``).
- ``legal.csv`` kinds are ``DoLS``, ``LPA-health-welfare``, ``Court-deputy``, ``MHA-s117``;
  ``status`` is lower case (``requested``, ``authorised``, ``registered``, ``appointed``,
  ``active``). ``contacts.csv`` flags are ``true``/``false``.
- ``placements.csv`` names the care home by its ODS-style code.
"""

from __future__ import annotations

import itertools
import random
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

from adapters.synth import catalogue as cat
from adapters.synth import names
from adapters.synth.clinical import Record
from adapters.synth.people import Person
from adapters.synth.rates import EXTRACT_DATE, LEGAL_RATE, OTHER_WARNING_RATE
from adapters.synth.tables import Tables

STYLE = "council"
SCHEMA: dict[str, tuple[str, ...]] = {
    "organisation": ("code", "name"),
    "persons": (
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
    ),
    "events": (
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
    ),
    "warnings": (
        "warning_id",
        "person_id",
        "category",
        "code",
        "start_date",
        "review_date",
        "end_date",
        "narrative",
    ),
    "contacts": (
        "contact_id",
        "person_id",
        "name",
        "relationship",
        "is_unpaid_carer",
        "is_key_worker",
        "role",
        "team",
        "phone",
    ),
    "legal": ("person_id", "kind", "status", "start_date", "end_date"),
    "placements": ("person_id", "care_home_ods", "start_date", "end_date"),
}
_TEAMS = (
    "Older People's Team North",
    "Older People's Team South",
    "Hospital Discharge Team",
    "Learning Disabilities Team",
    "Community Mental Health Team",
)
_WORKERS = ("Usha Franks", "Alistair Lloyd", "Lilian Bellamy", "Jim Lloyd", "Fallon Rogers")
_COMMUNITY_SERVICES = (
    (
        "Long Term Support: Community",
        "Home Support",
        "CASSR Commissioned support",
        "Borsetshire Home Care Ltd",
    ),
    ("Long Term Support: Community", "Direct Payment", "Direct Payment", ""),
    (
        "Short Term Support: ST-Max",
        "Reablement",
        "CASSR Commissioned support",
        "Borsetshire Reablement Service",
    ),
    (
        "Long Term Support: Community",
        "Day Support",
        "CASSR Managed Personal Budget",
        "Ambridge Day Centre",
    ),
)
_OTHER_WARNINGS = (
    ("OTH", "MANHAN", "Two carers needed for transfers; hoist in bedroom."),
    ("RTO", "NVU", "Do not visit alone: verbal aggression towards staff."),
    ("OTH", "EOL", "Receiving end of life care at home."),
    ("RSO", "MAPPA", "Subject to MAPPA arrangements: contact the named officer first."),
)
_LEGAL = (
    ("LPA-health-welfare", "registered"),
    ("Court-deputy", "appointed"),
    ("MHA-s117", "active"),
)
_DEFAULT_REASON = "Physical Support: Personal care support"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


class CouncilExtract:
    """Writes council rows for each person known to the council."""

    def __init__(self, stack: ExitStack, folder: Path, rng: random.Random) -> None:
        self._rng = rng
        self.tables = Tables(stack, folder, SCHEMA, encoding="utf-8", line_end="\n")
        self.tables.write("organisation", {"code": cat.COUNCIL.ods, "name": cat.COUNCIL.name})
        self._people = itertools.count(400_001)
        self._ids = {name: itertools.count(1) for name in ("events", "warnings", "contacts")}

    def _id(self, table: str) -> str:
        return str(next(self._ids[table]))

    def add(self, person: Person, record: Record) -> str:
        """Write the person's rows; return the truth key of their persons row."""
        rng = self._rng
        view = person.views[STYLE]
        pid = str(next(self._people))
        team = rng.choice(_TEAMS[:3] if person.age >= 65 else _TEAMS[2:])
        self.tables.write(
            "persons",
            {
                "person_id": pid,
                "first_name": view.first,
                "last_name": view.surname,
                "date_of_birth": view.dob.isoformat(),
                "date_of_death": _iso(view.dod),
                "gender": view.sex,
                "nhs_number": view.nhs,
                "address": view.address.one_line(),
                "postcode": view.address.postcode,
                "restricted": _flag(person.restricted),
                "allocated_team": team,
            },
        )
        reasons = [
            c.council_reason
            for c in cat.CONDITIONS
            if c.council_reason and any(e.problem and e.concept is c.concept for e in record.events)
        ]
        reason = reasons[0] if reasons else _DEFAULT_REASON
        end = person.truth.dod or EXTRACT_DATE
        first_contact = (person.care_home_since or end) - timedelta(days=rng.randint(120, 2500))
        self._events(person, pid, reason, first_contact, end)
        self._warnings(person, pid, first_contact, end)
        self._contacts(record, pid, team)
        self._legal(person, pid, first_contact, end)
        if person.care_home and person.care_home_since:
            self.tables.write(
                "placements",
                {
                    "person_id": pid,
                    "care_home_ods": person.care_home.ods,
                    "start_date": person.care_home_since.isoformat(),
                    "end_date": _iso(view.dod),
                },
            )
        return f"{STYLE}|{cat.COUNCIL.ods}|persons|{pid}"

    def _event(
        self,
        pid: str,
        kind: str,
        start: date,
        end: date | None,
        outcome: str,
        reason: str,
        **service: str,
    ) -> None:
        self.tables.write(
            "events",
            {
                "event_id": self._id("events"),
                "person_id": pid,
                "event_type": kind,
                "event_start_date": start.isoformat(),
                "event_end_date": _iso(end),
                "primary_support_reason": reason,
                "event_outcome": outcome,
                **service,
            },
        )

    def _events(self, person: Person, pid: str, reason: str, start: date, end: date) -> None:
        rng = self._rng
        assessed = start + timedelta(days=rng.randint(3, 30))
        self._event(pid, "Request", start, start, "Progress to Assessment", reason)
        if rng.random() < 0.1:
            self._event(
                pid,
                "Assessment",
                assessed,
                assessed,
                "NFA - Information & Advice / Signposting only",
                reason,
            )
            return
        self._event(
            pid,
            "Assessment",
            assessed,
            assessed + timedelta(days=14),
            "Progress to Support Planning / Services",
            reason,
        )
        begins = assessed + timedelta(days=rng.randint(15, 45))
        if person.care_home and person.care_home_since:
            nursing = person.care_home.ods == "VXA02"
            service_type = f"Long Term Support: {'Nursing' if nursing else 'Residential'} Care"
            self._event(
                pid,
                "Service",
                person.care_home_since,
                person.truth.dod,
                "Provision of service",
                reason,
                service_type=service_type,
                service_component="Long Term Nursing Care"
                if nursing
                else "Long Term Residential Care",
                delivery_mechanism="CASSR Commissioned support",
                provider_name=person.care_home.name,
                planned_units_per_week="1",
            )
        else:
            service_type, component, mechanism, provider = rng.choice(_COMMUNITY_SERVICES)
            stopped, outcome = person.truth.dod, "NFA - Deceased"
            if stopped is None:
                reablement = component == "Reablement"
                stopped = begins + timedelta(days=42) if reablement else None
                outcome = "Service Ended As Planned" if reablement else "Provision of service"
            self._event(
                pid,
                "Service",
                begins,
                stopped,
                outcome,
                reason,
                service_type=service_type,
                service_component=component,
                delivery_mechanism=mechanism,
                provider_name=provider,
                planned_units_per_week=str(rng.choice((3, 7, 10, 14, 21))),
            )
        review = begins + timedelta(days=rng.randint(180, 400))
        if review < end:
            self._event(
                pid,
                "Review",
                review,
                review + timedelta(days=7),
                "Progress to Re-assessment / Unplanned Review",
                reason,
            )

    def _warnings(self, person: Person, pid: str, start: date, end: date) -> None:
        rng = self._rng
        found: list[tuple[str, str, str]] = []
        if person.safeguarding:
            found.append(
                (
                    "SGC",
                    "MARAC",
                    "Domestic abuse concern: MARAC referral made; see safeguarding file.",
                )
            )
        if rng.random() < OTHER_WARNING_RATE:
            found.append(rng.choice(_OTHER_WARNINGS))
        for category, code, narrative in found:
            begins = start + timedelta(days=rng.randint(0, max(0, (end - start).days)))
            self.tables.write(
                "warnings",
                {
                    "warning_id": self._id("warnings"),
                    "person_id": pid,
                    "category": category,
                    "code": code,
                    "start_date": begins.isoformat(),
                    "review_date": (begins + timedelta(days=180)).isoformat(),
                    "end_date": "",
                    "narrative": narrative,
                },
            )

    def _contacts(self, record: Record, pid: str, team: str) -> None:
        rng = self._rng
        for contact in record.contacts:
            self.tables.write(
                "contacts",
                {
                    "contact_id": self._id("contacts"),
                    "person_id": pid,
                    "name": contact.name,
                    "relationship": contact.relationship,
                    "is_unpaid_carer": _flag(contact.carer),
                    "is_key_worker": "false",
                    "role": "",
                    "team": "",
                    "phone": contact.phone,
                },
            )
        self.tables.write(
            "contacts",
            {
                "contact_id": self._id("contacts"),
                "person_id": pid,
                "name": rng.choice(_WORKERS),
                "relationship": "",
                "is_unpaid_carer": "false",
                "is_key_worker": "true",
                "role": "Social Worker",
                "team": team,
                "phone": names.landline(rng),
            },
        )

    def _legal(self, person: Person, pid: str, start: date, end: date) -> None:
        rng = self._rng
        found: list[tuple[str, str]] = []
        if person.care_home and rng.random() < 0.5:
            found.append(("DoLS", rng.choice(("requested", "authorised"))))
        if rng.random() < LEGAL_RATE:
            found.append(rng.choice(_LEGAL))
        for kind, status in found:
            begins = start + timedelta(days=rng.randint(0, max(0, (end - start).days)))
            self.tables.write(
                "legal",
                {
                    "person_id": pid,
                    "kind": kind,
                    "status": status,
                    "start_date": begins.isoformat(),
                    "end_date": (begins + timedelta(days=365)).isoformat()
                    if kind == "DoLS"
                    else "",
                },
            )
