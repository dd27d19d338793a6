"""What ``/openapi.json`` says the API answers, so a client or a fuzzer can hold it to that.

Every answer is ``application/fhir+json`` and every error an OperationOutcome: FastAPI's own
``422 HTTPValidationError`` is never sent (invalid input is a 400 OperationOutcome), so each
route declares ``4XX`` instead, which also keeps FastAPI from adding the 422. Operation ids are
the route functions' names, which are unique, rather than FastAPI's path-derived ones.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from engine.api.errors import FHIR_JSON


class FhirJSONResponse(JSONResponse):
    """Only names the media type in the document; routes build their responses themselves."""

    media_type = FHIR_JSON


def operation_id(route: APIRoute) -> str:
    return route.name


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Issue(_Open):
    severity: Literal["fatal", "error", "warning", "information"]
    code: str
    diagnostics: str | None = None
    expression: list[str] | None = None


class OperationOutcome(_Open):
    resourceType: Literal["OperationOutcome"]
    issue: list[Issue] = Field(min_length=1)


class Resource(_Open):
    resourceType: str
    id: str


class Entry(_Open):
    fullUrl: str
    resource: Resource


class Link(_Open):
    relation: str
    url: str


class Bundle(_Open):
    resourceType: Literal["Bundle"]
    type: Literal["searchset"]
    total: int = Field(ge=0)
    link: list[Link]
    entry: list[Entry]


class CapabilityStatement(_Open):
    resourceType: Literal["CapabilityStatement"]


class Health(BaseModel):
    status: Literal["ok"]


class Explanation(_Open):
    permit: bool
    sections: list[str]
    reasons: list[dict[str, Any]]


class Made(BaseModel):
    """A break-glass grant or a self-claim: the IG review items it made."""

    kind: Literal["break-glass", "self-claim"]
    review_items: list[str]
    note: str


def answers(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The responses of a route that answers ``model``, or an OperationOutcome on an error."""
    return {
        status: {"model": model},
        "4XX": {"model": OperationOutcome, "description": "The request was refused or is wrong"},
        503: {"model": OperationOutcome, "description": "The audit trail is unavailable"},
    }
