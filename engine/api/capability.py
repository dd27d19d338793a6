"""The CapabilityStatement: what this server really does, and nothing it does not."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Types searchable within one patient (interfaces.md); each is also readable by id.
SEARCH_TYPES = frozenset(
    {
        "AllergyIntolerance", "Condition", "MedicationStatement", "MedicationRequest",
        "Observation", "Encounter", "Flag", "EpisodeOfCare", "CarePlan", "RelatedPerson",
        "Consent", "Task", "DocumentReference",
    }
)  # fmt: skip
_PAGING = [
    {"name": "_count", "type": "number", "documentation": "Page size, 0 to 1000 (default 100)"},
    {"name": "_offset", "type": "number", "documentation": "Items to skip, from a next link"},
    {"name": "_summary", "type": "token", "documentation": "count (the total alone) or false"},
]
#: ``GET /fhir/AuditEvent`` (``engine.api.ig``), for IG officers.
_AUDIT_EVENT = {
    "type": "AuditEvent",
    "interaction": [{"code": "search-type"}],
    "documentation": "The audit trail as BALP-shaped AuditEvents, newest first; IG officers only",
    "searchParam": [
        {"name": "patient", "type": "reference", "documentation": "Patient/<id>, id or NHS number"},
        {"name": "agent", "type": "reference", "documentation": "The user id"},
        {"name": "date", "type": "date", "documentation": "Repeatable; ge, gt, le, lt, eq"},
        {"name": "outcome", "type": "token", "documentation": "0 success, 4 refused"},
        {"name": "purpose", "type": "token", "documentation": "A v3-ActReason code"},
        {"name": "_count", "type": "number", "documentation": "Page size, 1 to 500 (default 100)"},
        {"name": "_cursor", "type": "string", "documentation": "From a next link"},
    ],
}
#: ``POST /fhir/$process-message`` (``engine.api.transfer``): red-bag messages.
_PROCESS_MESSAGE = {
    "name": "process-message",
    "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
    "documentation": "Red-bag transfer and discharge messages from care-home and hospital "
    "systems (synchronous)",
}


def capability_statement(base: str, readable: Iterable[str] = ()) -> dict[str, Any]:
    """``readable``: the types some profile may see, each readable by id (an ``$everything``
    entry's ``fullUrl`` answers), searchable too when it is one of :data:`SEARCH_TYPES`."""
    patient = {
        "type": "Patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "documentation": "https://fhir.nhs.uk/Id/nhs-number|<NHS number> only",
            }
        ],
        "operation": [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                "documentation": "The combined record; _type, _since, _count, _offset, "
                "_summary, and _revinclude=Provenance:target for each item's Provenance",
            }
        ],
    }
    others = [
        {
            "type": t,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "type": "reference", "documentation": "Required"},
                *_PAGING,
            ],
        }
        for t in sorted(SEARCH_TYPES)
    ]
    read_only = [
        {"type": t, "interaction": [{"code": "read"}]}
        for t in sorted(set(readable) - SEARCH_TYPES - {"Patient"})
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-01",
        "kind": "instance",
        "software": {"name": "scr"},
        "implementation": {"description": "scr shared care record (read-only)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only, JSON only. Every read is decided by the access "
                "policy and audited before it is answered; writes answer 405. Prefer: "
                "handling=strict refuses parameters a search would otherwise ignore.",
                "security": {
                    "description": "Bearer JWT with CIS2-shaped claims (nhsid_nrbac_roles, "
                    "selected_roleid, purpose_of_use, ig_training_date)"
                },
                "resource": [patient, *others, *read_only, _AUDIT_EVENT],
                "operation": [_PROCESS_MESSAGE],
            }
        ],
    }
