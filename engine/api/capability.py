"""The CapabilityStatement: what this server really does, and nothing it does not."""

from __future__ import annotations

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
    {"name": "_count", "type": "number", "documentation": "Page size, 1 to 1000 (default 100)"},
    {"name": "_offset", "type": "number", "documentation": "Items to skip, from a next link"},
]


def capability_statement(base: str) -> dict[str, Any]:
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
                "documentation": "The combined record; _type, _since, _count and _offset",
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
                "documentation": "Read-only. Every read is decided by the access policy and "
                "audited before it is answered; writes answer 405.",
                "security": {
                    "description": "Bearer JWT with CIS2-shaped claims (nhsid_nrbac_roles, "
                    "selected_roleid, purpose_of_use, ig_training_date)"
                },
                "resource": [patient, *others],
            }
        ],
    }
