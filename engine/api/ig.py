"""``GET /fhir/AuditEvent``: the trail searched by IG officers as BALP-shaped AuditEvents.

Parameters follow FHIR's AuditEvent search: ``patient`` (``Patient/<id>`` or an id, as the
API serves Patients, or an NHS number; a Patient is resolved to its person now, and the trail,
which holds person ids, is searched under every id that person's records have had while they
had it, as the access report is; an id no Patient has is taken as a person id), ``agent``
(user id; a ``system|`` prefix is ignored), ``date`` (repeatable, with ``ge``/``gt``/``le``/
``lt``/``eq`` prefixes, a day or an instant with a time zone), ``outcome`` (``0`` success,
``4`` refused), ``purpose`` (a v3-ActReason code). Pages are keyset (``_cursor``), newest
first. Everyone but the ``ig-officer`` profile gets 403, audited. Each event names the person
by the Patient id the API serves for them (``engine.identity.served_patient``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from adapters.values import nhs_number_valid
from audit import RequestContext
from audit.export import audit_event
from audit.search import MAX_PAGE, Filters, SearchError, search
from consent import Who
from engine.api.deps import Services, current_user, request_context, services
from engine.api.errors import FhirError, Problem, fhir_response
from engine.api.handling import fhir_request
from engine.api.openapi import Bundle, answers
from engine.api.records import person_of_patient
from engine.identity import patient_lookup
from engine.ig.gate import NotIgOfficer, admit, decided
from engine.ig.people import held_by

router = APIRouter(prefix="/fhir", dependencies=[Depends(fhir_request)])
User = Annotated[Who, Depends(current_user)]
Context = Annotated[RequestContext, Depends(request_context)]
_OUTCOMES = {"0": "permit", "4": "deny"}
_PREFIXES = ("ge", "gt", "le", "lt", "eq")
DEFAULT_COUNT = 100
#: Longer than any cursor the search hands out (a time and a sequence number, in base64).
MAX_CURSOR = 200
#: ``_count`` and ``_cursor`` are declared as text and checked after the IG gate, so anyone
#: but an IG officer gets the audited 403 whatever they send: these say what is accepted.
COUNT = f"Entries per page, a whole number from 1 to {MAX_PAGE} (default {DEFAULT_COUNT})"
CURSOR = "Where the next page starts: as given in the previous page's next link"


def _invalid(field: str, text: str) -> FhirError:
    return FhirError(400, Problem("invalid", f"{field}: {text}", field))


def dates(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """FHIR ``date`` parameters as a half-open ``[since, until)`` range."""
    since: datetime | None = None
    until: datetime | None = None
    for raw in values:
        prefix, text = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
        try:
            if len(text) == 10:
                start = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
                end = start + timedelta(days=1)
            else:
                start = datetime.fromisoformat(text)
                if start.tzinfo is None:
                    raise ValueError
                start = start.astimezone(UTC)
                end = start + timedelta(microseconds=1)
        except (ValueError, OverflowError):  # overflow: an instant too near year 1 or 9999
            raise _invalid("date", "a day (YYYY-MM-DD) or an instant with a time zone") from None
        low = {"ge": start, "gt": end, "eq": start}.get(prefix)
        high = {"le": end, "lt": start, "eq": end}.get(prefix)
        if low is not None:
            since = max(since, low) if since else low
        if high is not None:
            until = min(until, high) if until else high
    return since, until


def filters(
    patient: str | None,
    agent: str | None,
    date_values: list[str],
    outcome: str | None,
    purpose: str | None,
) -> Filters:
    person = patient.removeprefix("Patient/").rsplit("|", 1)[-1] if patient else None
    nhs = person if person and person.isdigit() else None
    if nhs is not None and not nhs_number_valid(nhs):
        raise _invalid("patient", "not a valid NHS number")
    if outcome is not None and outcome not in _OUTCOMES:
        raise _invalid("outcome", "0 (success) or 4 (refused)")
    since, until = dates(date_values)
    try:
        return Filters(
            patient_id=None if nhs else person,
            nhs_number=nhs,
            user_id=agent.rsplit("|", 1)[-1] if agent else None,
            purpose=purpose.rsplit("|", 1)[-1] if purpose else None,
            outcome=_OUTCOMES[outcome] if outcome else None,
            since=since,
            until=until,
        )
    except SearchError as exc:
        field = {"patient_id": "patient", "nhs_number": "patient", "user_id": "agent"}
        name = str(exc).split(":", 1)[0]
        raise _invalid(field.get(name, name), str(exc).split(": ", 1)[1]) from None


def _count(text: str | None) -> int:
    """``_count`` as a page size: taken as text and read here, after nothing but the gate's
    own check could refuse the request (FastAPI would answer a bad one 400 before the gate)."""
    if text is None:
        return DEFAULT_COUNT
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= MAX_PAGE):
        raise _invalid("_count", f"a whole number from 1 to {MAX_PAGE}")
    return int(text)


def _admit(svc: Services, who: Who, ctx: RequestContext, asked: str, f: Filters) -> None:
    """The IG gate, audited, before anything else is answered; 403 for anyone else."""
    try:
        admit(svc.audit, decided(who, ctx, "ig-view", asked, policy=svc.policy,
                                 now=datetime.now(UTC), patient_id=f.patient_id,
                                 nhs_number=f.nhs_number))  # fmt: skip
    except NotIgOfficer as exc:
        why = exc.why or "The audit trail is for information governance officers"
        raise FhirError(403, Problem("forbidden", why)) from None


@router.get("/AuditEvent", responses=answers(Bundle))
def audit_events(
    request: Request,
    who: User,
    ctx: Context,
    patient: str | None = None,
    agent: str | None = None,
    date: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads it, never mutated
    outcome: str | None = None,
    purpose: str | None = None,
    count_text: Annotated[str | None, Query(alias="_count", description=COUNT)] = None,
    cursor: Annotated[str | None, Query(alias="_cursor", description=CURSOR)] = None,
) -> Response:
    svc = services(request)
    try:
        f = filters(patient, agent, date, outcome, purpose)
        count = _count(count_text)
        if cursor is not None and len(cursor) > MAX_CURSOR:
            raise _invalid("_cursor", "not a cursor this search handed out")
    except FhirError:  # the gate first: anyone else gets the same 403 whatever they sent
        _admit(svc, who, ctx, "AuditEvent", Filters())
        raise
    person = person_of_patient(svc.reader, f.patient_id) if f.patient_id is not None else None
    if person is not None:  # the person whose Patient it is: the trail names people
        f = replace(f, patient_id=person)
    _admit(svc, who, ctx, "AuditEvent?" + f.as_query(), f)
    if person is not None:
        f = replace(f, patient_id=None, people=held_by(svc.engine, person))
    try:
        page = search(svc.engine, f, after=cursor, limit=count)
    except SearchError as exc:
        raise _invalid("_cursor", str(exc)) from None
    base = svc.settings.public_base_url + "/fhir"  # never the client's Host header
    params: dict[str, Any] = {
        k: v
        for k, v in (
            ("patient", patient),
            ("agent", agent),
            ("outcome", outcome),
            ("purpose", purpose),
        )
        if v
    }
    query = [*params.items(), *(("date", d) for d in date), ("_count", count)]
    here = [*query, ("_cursor", cursor)] if cursor else query
    links = [{"relation": "self", "url": f"{base}/AuditEvent?{urlencode(here)}"}]
    if page.next_cursor:
        after = [*query, ("_cursor", page.next_cursor)]
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(after)}"})
    canonical = svc.settings.canonical_base
    patient_of = patient_lookup(svc.engine)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/scr-audit-{e['seq']}",
                "resource": audit_event(e, canonical, patient_of),
                "search": {"mode": "match"},
            }
            for e in page.entries
        ],
    }
    return fhir_response(bundle)
