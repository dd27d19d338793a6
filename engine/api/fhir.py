"""The read-only FHIR API: every route reads through ``engine.api.records`` and nothing else.

A read of something the user may not see answers 404 exactly as a read of something that does
not exist; a search answers an empty searchset. Writes answer 405: the shared record is a view
of the sources, which stay the place to change a record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from adapters.values import nhs_number_valid
from audit import RequestContext
from consent import Request as Asked
from consent import Who
from engine.api.bundle import searchset
from engine.api.capability import SEARCH_TYPES, capability_statement
from engine.api.deps import current_user, request_context, services, target
from engine.api.errors import (
    ALLOW_READS,
    FhirError,
    Problem,
    echoed,
    fhir_response,
    not_found,
)
from engine.api.handling import fhir_request
from engine.api.openapi import Bundle, CapabilityStatement, OperationOutcome, Resource, answers
from engine.api.records import Page, find_patients, person_record, resource_record
from engine.identity.features import NHS_SYSTEM
from engine.validate import is_resource_type

router = APIRouter(prefix="/fhir", dependencies=[Depends(fhir_request)])
User = Annotated[Who, Depends(current_user)]
Context = Annotated[RequestContext, Depends(request_context)]
MAX_COUNT = 1000
DEFAULT_COUNT = 100
PROVENANCE = "Provenance:target"
Count = Annotated[
    int, Query(alias="_count", ge=0, le=MAX_COUNT, description="Page size; 0 is the total only")
]
Summary = Annotated[
    Literal["count", "false"] | None,
    Query(alias="_summary", description="count: the total only, no entries"),
]
Offset = Annotated[int, Query(alias="_offset", ge=0, description="Items to skip (next links)")]
#: The R4 ``instant`` pattern (https://hl7.org/fhir/R4/datatypes.html#instant).
_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


#: Paths under ``/fhir`` answered by POST only (``engine.api.transfer``).
_POST_ONLY = frozenset({"$process-message"})


def _post_only() -> FhirError:
    return FhirError(405, Problem("not-supported", "Use POST"), headers={"Allow": "POST"})


def _base(request: Request) -> str:
    """The configured public base, never the request's Host header: a link built from that
    would point wherever the client (or someone who poisons a cache) said."""
    return services(request).settings.public_base_url + "/fhir"


def _since(raw: str | None) -> datetime | None:
    """A FHIR instant only: ``fromisoformat`` alone also takes week dates, the basic format, a
    space for the T, no seconds and offsets past 14:00, none of which a FHIR client sends."""
    if raw is None:
        return None
    # A '+' typed into a URL arrives as a space, which an instant never holds.
    text = raw.replace(" ", "+")
    value: datetime | None = None
    if _INSTANT.fullmatch(text):
        # A leap second (:60) is past every instant of its minute: since the next minute.
        leap = text[17:19] == "60"
        try:
            given = datetime.fromisoformat(text[:17] + "59" + text[19:] if leap else text)
            # In UTC, as the store compares it; near year 1 or 9999 there is none (overflow).
            value = (given + timedelta(seconds=leap)).astimezone(UTC)
        except (ValueError, OverflowError):
            value = None
    if value is None:
        raise FhirError(
            400, Problem("invalid", "_since must be an instant with a time zone", "_since")
        )
    return value


def _paging(count: int, summary: str | None) -> tuple[int, dict[str, str]]:
    """The page size, 0 for the total alone (``_summary=count``, or ``_count=0``, which FHIR
    R4 reads as the same), and what the self link says was applied."""
    if summary == "count" or count == 0:
        return 0, {"_summary": "count"}
    return count, {}


def _types(raw: str | None) -> frozenset[str]:
    if not raw:
        return frozenset()
    types = frozenset(t.strip() for t in raw.split(",") if t.strip())
    unknown = sorted(t for t in types if not is_resource_type(t))
    if unknown:
        raise FhirError(
            400,
            Problem("invalid", f"_type names no resource type: {echoed(unknown[0])}", "_type"),
        )
    return types


@router.get("/metadata", responses=answers(CapabilityStatement))
def metadata(request: Request) -> Response:
    readable = services(request).reader.policy.readable
    return fhir_response(capability_statement(_base(request), readable))


@router.get("/Patient", responses=answers(Bundle))
def search_patients(
    request: Request, who: User, ctx: Context, identifier: str | None = None
) -> Response:
    system, sep, value = (identifier or "").partition("|")
    if not sep or system != NHS_SYSTEM or not value:
        raise FhirError(
            400,
            Problem("required", f"identifier={NHS_SYSTEM}|<NHS number> is required", "identifier"),
        )
    if not nhs_number_valid(value):
        raise FhirError(
            400, Problem("value", "The NHS number fails the modulus-11 check", "identifier")
        )
    found = find_patients(services(request).reader, who, ctx, value, f"identifier={identifier}")
    params = {"identifier": identifier or ""}
    return fhir_response(searchset(_base(request), "/Patient", params, found, len(found)))


@router.get("/Patient/{patient_id}/$everything", responses=answers(Bundle))
def everything(
    request: Request,
    who: User,
    ctx: Context,
    patient_id: str,
    type_: Annotated[
        str | None, Query(alias="_type", description="Resource types, comma-separated")
    ] = None,
    since: Annotated[
        str | None, Query(alias="_since", description="An instant with a time zone")
    ] = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
    summary: Summary = None,
    revinclude: Annotated[
        str | None,
        Query(alias="_revinclude", description="Provenance:target adds each item's Provenance"),
    ] = None,
) -> Response:
    if revinclude not in (None, PROVENANCE):
        raise FhirError(
            400, Problem("not-supported", f"_revinclude supports {PROVENANCE} only", "_revinclude")
        )
    asked = Asked("everything", _types(type_))
    count, counted = _paging(count, summary)
    page = Page(_since(since), offset, count, provenance=revinclude is not None)
    released = person_record(
        services(request).reader, who, ctx, patient_id, asked, page, target(request)
    )
    if not released.decision.permit:
        raise not_found()
    params = {
        k: v for k, v in (("_type", type_), ("_since", since), ("_revinclude", revinclude)) if v
    } | counted
    doc = searchset(
        _base(request), f"/Patient/{patient_id}/$everything", params,
        released.items, released.total, offset, count,
        included=released.included,
    )  # fmt: skip
    return fhir_response(doc)


def _read_one(request: Request, who: Who, ctx: Context, rtype: str, rid: str) -> Response:
    released = resource_record(services(request).reader, who, ctx, rtype, rid, target(request))
    match = next((i for i in released.items if i.id == rid), None)
    if not released.decision.permit or match is None:
        raise not_found()
    return fhir_response(orjson.Fragment(match.json))


@router.get("/Patient/{patient_id}", responses=answers(Resource))
def read_patient(request: Request, who: User, ctx: Context, patient_id: str) -> Response:
    return _read_one(request, who, ctx, "Patient", patient_id)


@router.get("/{resource_type}", responses=answers(Bundle))
def search_type(
    request: Request,
    who: User,
    ctx: Context,
    resource_type: str,
    patient: str | None = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
    summary: Summary = None,
) -> Response:
    if resource_type in _POST_ONLY:
        raise _post_only()
    if resource_type not in SEARCH_TYPES:
        raise FhirError(404, Problem("not-supported", f"No search on {echoed(resource_type)}"))
    if not patient:
        raise FhirError(400, Problem("required", "patient is required", "patient"))
    # ``Patient/<id>``, or this server's own absolute form of it (an entry's ``fullUrl``).
    patient_id = patient.removeprefix(_base(request) + "/").removeprefix("Patient/")
    asked = Asked("search", frozenset({resource_type}))
    count, counted = _paging(count, summary)
    page = Page(offset=offset, count=count)
    released = person_record(
        services(request).reader, who, ctx, patient_id, asked, page, target(request)
    )
    shown = released.items if released.decision.permit else ()
    total = released.total if released.decision.permit else 0
    params = {"patient": patient} | counted
    doc = searchset(_base(request), f"/{resource_type}", params, shown, total, offset, count)
    return fhir_response(doc)


@router.get("/{resource_type}/{resource_id}", responses=answers(Resource))
def read_resource(
    request: Request, who: User, ctx: Context, resource_type: str, resource_id: str
) -> Response:
    """Any R4 type is read through the decision and the audit, one no profile may see
    (Provenance, say) too: the decision refuses it (``profile.types``), and the attempt is in
    the trail, or answered 503 when the trail cannot take it. A name that is no R4 type is
    no resource's address: 404, as an unknown route is; so is an AuditEvent's (the trail's
    entries are searched at ``/fhir/AuditEvent``, by IG officers, and no person's record holds
    one: following a search entry's fullUrl is no refused look at a record)."""
    if not is_resource_type(resource_type) or resource_type == "AuditEvent":
        raise not_found()
    return _read_one(request, who, ctx, resource_type, resource_id)


@router.get("/{path:path}", include_in_schema=False)
def unknown(path: str) -> Response:
    """A GET no route above answers is 404 (405 where only POST is answered): without this,
    the write routes below (which match every path) would make Starlette answer 405 for it.
    Routers under ``/fhir`` are included before this one, so nothing of theirs is shadowed."""
    if path in _POST_ONLY:
        raise _post_only()
    raise not_found()


@router.get("", include_in_schema=False)
def base() -> Response:
    """``GET /fhir`` is 404 like any GET no route answers (no redirect to ``/fhir/``: its
    Location would be built from the client's Host header); without this route the base's
    write routes below would make Starlette answer 405 for it."""
    raise not_found()


def writes(path: str) -> Response:
    if path in _POST_ONLY:
        raise _post_only()
    return base_writes()


def base_writes() -> Response:
    """A write to ``/fhir`` itself (FHIR's transaction or batch endpoint for POST) is refused
    as every other write is: 405 with an OperationOutcome, not 404."""
    raise FhirError(
        405,
        Problem("not-supported", "The shared care record is read-only: change the source record"),
        headers={"Allow": ALLOW_READS},
    )


# One route per method, so each write has its own operation id in the OpenAPI document.
_REFUSED: dict[int | str, dict[str, Any]] = {405: {"model": OperationOutcome}}
_REFUSED["4XX"] = _REFUSED[405]
for _method in ("POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/{path:path}", writes, methods=[_method], name=f"write_{_method.lower()}",
        status_code=405, responses=_REFUSED,
    )  # fmt: skip
    router.add_api_route(
        "", base_writes, methods=[_method], name=f"base_{_method.lower()}",
        status_code=405, include_in_schema=False,
    )  # fmt: skip
