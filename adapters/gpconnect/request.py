"""What a GP Connect ``$gpc.getstructuredrecord`` request consists of (no I/O here).

The ``Parameters`` body, the ``Ssp-*`` headers' values and the cross-organisation audit JWT
(reference §2.1 and §2.3), and the errors a provider's answer can raise.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.base import ExtractError
from adapters.gpconnect.constants import NHS_NUMBER, ODS

INTERACTION = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
FHIR_JSON = "application/fhir+json;charset=utf-8"

#: Every clinical area, no filters: a shared care record wants the whole record. (Filters are
#: left out because several are forbidden in combination with consultations and problems.)
ALL_AREAS: tuple[dict[str, Any], ...] = (
    {
        "name": "includeAllergies",
        "part": [{"name": "includeResolvedAllergies", "valueBoolean": True}],
    },
    {
        "name": "includeMedication",
        "part": [{"name": "includePrescriptionIssues", "valueBoolean": True}],
    },
    {"name": "includeConsultations"},
    {"name": "includeProblems"},
    {"name": "includeImmunisations"},
    {"name": "includeUncategorisedData"},
    {"name": "includeInvestigations"},
    {"name": "includeReferrals"},
    {"name": "includeDiaryEntries"},
)


class GpConnectError(ExtractError):
    """A GP Connect endpoint could not be used (network, HTTP error, a response not a record)."""


class OperationOutcomeError(GpConnectError):
    """The provider answered with an OperationOutcome (PATIENT_NOT_FOUND, NO_PATIENT_CONSENT...)."""

    def __init__(self, url: str, status: int, outcome: Mapping[str, Any]) -> None:
        self.codes = outcome_codes(outcome)
        texts = [
            str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code"))
            for i in outcome.get("issue", [])
            if isinstance(i, dict)
        ]
        super().__init__(
            f"{url}: HTTP {status} OperationOutcome {', '.join(self.codes) or '(no code)'}"
            f" - {'; '.join(texts)}"
        )


def outcome_codes(outcome: Mapping[str, Any]) -> list[str]:
    """The Spine error codes (``PATIENT_NOT_FOUND`` ...) in an OperationOutcome."""
    return [
        str(c.get("code"))
        for i in outcome.get("issue", [])
        if isinstance(i, dict)
        for c in i.get("details", {}).get("coding", [])
        if isinstance(c, dict)
    ]


def describe(doc: Any) -> str:
    """What a JSON document that is not a structured record is, for a quarantine reason."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return "JSON without a resourceType"
    rtype = doc["resourceType"]
    if rtype == "OperationOutcome":
        return f"OperationOutcome ({', '.join(outcome_codes(doc)) or 'no code'})"
    if rtype == "Binary":
        return f"Binary ({doc.get('contentType', 'no content type')})"
    return str(rtype)


@dataclass(frozen=True)
class Consumer:
    """Who is asking: the consumer system (``Ssp-From``) and the real logged-on user.

    GP Connect requires the audit claims to name the person using the consumer system, never a
    generic system user; ``UNK`` is the documented value for SDS ids when there is no smartcard.
    """

    asid: str
    system_url: str
    ods_code: str
    organisation_name: str
    user_id: str
    family: str
    given: str
    sds_user_id: str = "UNK"
    sds_role_profile_id: str = "UNK"
    device_model: str = "scr"
    device_version: str = "0.1.0"
    reason_for_request: str = "directcare"


def _b64(doc: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode("ascii")


def audit_jwt(consumer: Consumer, audience: str, now: float) -> str:
    """The cross-organisation audit JWT, unsigned (``alg: none``) as GP Connect specifies."""
    issued = int(now)
    claims = {
        "iss": consumer.system_url,
        "sub": consumer.user_id,
        "aud": audience,
        "exp": issued + 300,
        "iat": issued,
        "reason_for_request": consumer.reason_for_request,
        "requested_scope": "patient/*.read",
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": f"{consumer.system_url}/Id/device", "value": consumer.asid}],
            "model": consumer.device_model,
            "version": consumer.device_version,
        },
        "requesting_organization": {
            "resourceType": "Organization",
            "identifier": [{"system": ODS, "value": consumer.ods_code}],
            "name": consumer.organisation_name,
        },
        "requesting_practitioner": {
            "resourceType": "Practitioner",
            "id": consumer.user_id,
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": consumer.sds_user_id},
                {
                    "system": "https://fhir.nhs.uk/Id/sds-role-profile-id",
                    "value": consumer.sds_role_profile_id,
                },
                {"system": f"{consumer.system_url}/Id/user-id", "value": consumer.user_id},
            ],
            "name": [{"family": consumer.family, "given": [consumer.given]}],
        },
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def parameters(nhs_number: str, areas: Sequence[Mapping[str, Any]] = ALL_AREAS) -> dict[str, Any]:
    """The ``Parameters`` body of ``$gpc.getstructuredrecord`` for one patient."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "patientNHSNumber",
                "valueIdentifier": {"system": NHS_NUMBER, "value": nhs_number},
            },
            *areas,
        ],
    }
