"""The last touches every mapped resource gets, whatever adapter made it (pure).

``meta.source`` names the source record; sensitive codes anywhere in the resource, or in the
records it names or belongs to (``_pointed_codings``), add the legally restricted labels (so a
sensitive code under a non-sensitive parent, or a topic titled with a sensitive problem, is
still caught);
a row the source deleted is marked ``entered-in-error`` in the way its type allows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any
from urllib.parse import quote

from adapters import labels
from adapters.base import SourceRef
from adapters.codes import CodeMaps

_EIE = "entered-in-error"
#: What ``quote(..., safe="")`` leaves as it is: most row ids, which then skip quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_STATUS_TYPES = {
    "Observation",
    "MedicationStatement",
    "MedicationRequest",
    "Flag",
    "EpisodeOfCare",
    "Encounter",
    "ServiceRequest",
    "Task",
    "Consent",
    "CarePlan",
    "CareTeam",
    "List",
    "DocumentReference",
    "Immunization",
    "DiagnosticReport",
    "Procedure",
    "Composition",
}
_VERIFICATION = {
    "Condition": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    "AllergyIntolerance": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
}


@lru_cache(maxsize=1024)
def _source_table_uri(canonical_base: str, system: str, org: str, table: str) -> str:
    """Cached: every row of a table shares this prefix, so only the row id is quoted per row."""
    parts = "/".join(quote(p, safe="") for p in (system, org, table))
    return f"{canonical_base}source/{parts}/"


def source_uri(ref: SourceRef, canonical_base: str) -> str:
    table = _source_table_uri(canonical_base, ref.system, ref.org, ref.table)
    row = ref.row_id
    return table + (row if _UNRESERVED.fullmatch(row) else quote(row, safe=""))


def sensitive_labels(
    resource: dict[str, Any],
    codes: CodeMaps,
    canonical_base: str,
    pointed: Sequence[Sequence[str]] = (),
) -> list[str]:
    """Categories of the legally restricted codes found anywhere in the resource or ``pointed``."""
    own = ((str(c["system"]), c["code"]) for c in labels.codings(resource))
    found = sorted(
        {
            cat
            for system, code in chain(own, pointed)
            if (cat := codes.sensitive_category(system, code)) is not None
        }
    )
    if found:
        labels.add_labels(
            resource,
            labels.confidential_labels(canonical_base, *(f"sensitive-{cat}" for cat in found)),
        )
    return found


def mark_entered_in_error(resource: dict[str, Any]) -> None:
    rtype = resource["resourceType"]
    if rtype in _STATUS_TYPES:
        resource["status"] = _EIE
    elif rtype in _VERIFICATION:
        resource["verificationStatus"] = {
            "coding": [{"system": _VERIFICATION[rtype], "code": _EIE}]
        }
        resource.pop("clinicalStatus", None)
    elif rtype in ("Patient", "RelatedPerson", "Organization", "Practitioner"):
        resource["active"] = False


def entered_in_error(resource: dict[str, Any]) -> str | None:
    """The element by which the resource says itself that it was entered in error, as
    :func:`mark_entered_in_error` would mark it (``status`` or ``verificationStatus``), or
    None: a source that withdraws a record by re-sending it so (GP Connect) withdraws it as one
    that deletes the row does."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):  # a message not yet judged may hold anything here
        return None
    if rtype in _STATUS_TYPES:
        return "status" if resource.get("status") == _EIE else None
    if rtype in _VERIFICATION:
        status = resource.get("verificationStatus")
        codings = status.get("coding", []) if isinstance(status, dict) else []
        marked = any(isinstance(c, dict) and c.get("code") == _EIE for c in codings)
        return "verificationStatus" if marked else None
    return None


def finish(
    resource: dict[str, Any],
    ref: SourceRef,
    codes: CodeMaps,
    canonical_base: str,
    deleted: bool,
    pointed: Sequence[Sequence[str]] = (),
) -> None:
    resource.setdefault("meta", {})["source"] = source_uri(ref, canonical_base)
    sensitive_labels(resource, codes, canonical_base, pointed)
    if deleted:
        mark_entered_in_error(resource)
