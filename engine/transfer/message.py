"""The red-bag message: its codes, how one is built, and how its header is read.

One builder serves every sender scr has (the web form, ``scr transfer send`` callers, the bench
and the tests), so there is one shape to validate. See docs/red-bag.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any, Literal

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
HEADINGS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-RecordStandardHeadings"
LOINC = "http://loinc.org"
#: scr's own code systems, named under the deployment's canonical base and matched by path.
EVENTS = "CodeSystem/scr-message-event"
SECTIONS = "CodeSystem/scr-transfer-section"
DOCUMENT_TYPES = "CodeSystem/scr-document-type"
Event = Literal["care-home-transfer", "hospital-discharge", "transfer-acknowledgement"]
#: Who may send each event, and to which kind of organisation: an acknowledgement goes back
#: from the hospital to the care home that sent the transfer, as a discharge does.
ROUTES: dict[str, tuple[str, str]] = {
    "care-home-transfer": ("care-home", "hospital"),
    "hospital-discharge": ("hospital", "care-home"),
    "transfer-acknowledgement": ("hospital", "care-home"),
}
#: The sections a message must carry, by event (UK Core record headings unless scr's own). An
#: acknowledgement says only that the transfer arrived: it carries no clinical content, so
#: no section is required of it (the builder sends none).
REQUIRED: dict[str, tuple[str, ...]] = {
    "care-home-transfer": (
        "person-demographics", "reason-for-handover", "observations",
        "allergies-and-adverse-reaction", "medications-and-medical-devices",
        "advance-decisions-about-treatment", "person-completing-record",
    ),
    "hospital-discharge": (
        "discharge-details", "medications-and-medical-devices", "plan-and-requested-actions",
    ),
    "transfer-acknowledgement": (),
}  # fmt: skip
#: Sections with no UK Core heading (reference §5.3), coded in scr's own system.
OWN_SECTIONS = frozenset({"infection-status", "belongings", "about-me", "baseline-observations"})
#: Each event's Composition type: (code system, code, display). No LOINC document type is a
#: receipt with no clinical content (its note and summary types all carry some), so an
#: acknowledgement is typed in scr's own system, under the canonical base like its sections.
_TYPES = {
    "care-home-transfer": (LOINC, "18761-7", "Transfer summary note"),
    "hospital-discharge": (LOINC, "18842-5", "Discharge summary"),
    "transfer-acknowledgement": (DOCUMENT_TYPES, "transfer-acknowledgement",
                                 "Transfer acknowledgement"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Section:
    code: str
    title: str
    text: str = ""
    resources: Sequence[dict[str, Any]] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Header:
    """What routing needs from a message whose shape has been checked."""

    id: str
    event: str
    sender: str
    destination: str
    focus: str


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _org(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": code}}


def _narrative(text: str) -> dict[str, str]:
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{escape(text) or "-"}</div>'
    return {"status": "generated", "div": div}


def build(
    event: Event,
    *,
    sender: str,
    destination: str,
    patient: dict[str, Any],
    patient_url: str,
    sections: Sequence[Section],
    author: str,
    now: datetime,
    base: str,
    header_id: str | None = None,
    transfer_id: str | None = None,
) -> dict[str, Any]:
    """An unsigned message Bundle; ``transfer_id`` names the transfer a discharge closes or an
    acknowledgement acknowledges.

    The section resources refer to the Patient by ``patient_url``, its ``fullUrl``.
    """
    header_url, composition_url = urn(), urn()
    entries: list[dict[str, Any]] = [{"fullUrl": patient_url, "resource": patient}]
    composed = []
    for s in sections:
        refs = []
        for resource in s.resources:
            url = urn()
            entries.append({"fullUrl": url, "resource": resource})
            refs.append({"reference": url})
        system = base + SECTIONS if s.code in OWN_SECTIONS else HEADINGS
        composed.append(
            {"title": s.title, "code": {"coding": [{"system": system, "code": s.code}]},
             "text": _narrative(s.text)} | ({"entry": refs} if refs else {})
        )  # fmt: skip
    system, code, display = _TYPES[event]
    system = base + system if system == DOCUMENT_TYPES else system
    composition: dict[str, Any] = {
        "resourceType": "Composition", "status": "final",
        "type": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": patient_url}, "date": now.isoformat(),
        "author": [{"display": author}], "title": display,
    } | ({"section": composed} if composed else {})  # fmt: skip
    if transfer_id is not None:
        composition["relatesTo"] = [
            {"code": "appends", "targetIdentifier": {"system": "urn:ietf:rfc:3986",
                                                     "value": f"urn:uuid:{transfer_id}"}}
        ]  # fmt: skip
    header = {
        "resourceType": "MessageHeader", "id": header_id or str(uuid.uuid4()),
        "eventCoding": {"system": base + EVENTS, "code": event},
        "source": {"name": sender, "endpoint": f"urn:ods:{sender}"},
        "destination": [{"endpoint": f"urn:ods:{destination}", "receiver": _org(destination)}],
        "sender": _org(sender), "author": {"display": author},
        "focus": [{"reference": composition_url}],
    }  # fmt: skip
    return {
        "resourceType": "Bundle", "type": "message", "timestamp": now.isoformat(),
        "entry": [{"fullUrl": header_url, "resource": header},
                  {"fullUrl": composition_url, "resource": composition}, *entries],
    }  # fmt: skip


def header_of(bundle: dict[str, Any]) -> Header:
    """The header of a Bundle that passed the schema."""
    h = bundle["entry"][0]["resource"]
    return Header(
        id=h["id"],
        event=h["eventCoding"]["code"],
        sender=h["sender"]["identifier"]["value"],
        destination=h["destination"][0]["receiver"]["identifier"]["value"],
        focus=h["focus"][0]["reference"],
    )


def response(request: Header, response_id: str, now: datetime, base: str) -> dict[str, Any]:
    """The ``ok`` response message to an accepted ``request``."""
    header = {
        "resourceType": "MessageHeader", "id": response_id,
        "eventCoding": {"system": base + EVENTS, "code": request.event},
        "source": {"name": "scr", "endpoint": base},
        "destination": [{"endpoint": f"urn:ods:{request.sender}",
                         "receiver": _org(request.sender)}],
        "response": {"identifier": request.id, "code": "ok"},
    }  # fmt: skip
    return {
        "resourceType": "Bundle", "id": response_id, "type": "message",
        "timestamp": now.isoformat(),
        "entry": [{"fullUrl": f"urn:uuid:{response_id}", "resource": header}],
    }  # fmt: skip
