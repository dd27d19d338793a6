"""Names shared by reading and mapping: the source system, identifier systems, reference form."""

from __future__ import annotations

import re

#: ``SourceRef.system`` of every GP Connect record, and the adapter's kind.
SYSTEM = "gpconnect"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
#: A relative reference ``Type/id`` (optionally ``/_history/v``), as GP Connect writes them.
RELATIVE_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/([^/\s]+)(?:/_history/[^/\s]+)?")
#: An absolute reference: a server's base, then ``Type/id`` as above (FHIR allows it anywhere).
ABSOLUTE_REFERENCE = re.compile(r"https?://\S+?/" + RELATIVE_REFERENCE.pattern)


def named(reference: str) -> tuple[str, str] | None:
    """The ``(type, id)`` a relative or absolute reference names."""
    m = RELATIVE_REFERENCE.fullmatch(reference) or ABSOLUTE_REFERENCE.fullmatch(reference)
    return (m.group(1), m.group(2)) if m else None
