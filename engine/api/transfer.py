"""Red-bag messages in (``POST /fhir/$process-message``) and transfer status out (``/transfers``).

The body is read as it streams and refused once it passes ``transfer_max_bytes``, so a huge
body costs no more memory than the limit. Transfers are visible only to the two organisations
they join, and then only when the policy decision point permits the user the transfer's person
(``consent.decide``, interaction ``transfer``, over the facts any read gathers: IG training,
purpose of use and the relationship, as for the record itself); any other user gets the 404 a
transfer that does not exist gets. Each view and each step is audited, with the decision,
before it is answered. ``/transfers`` answers JSON to a bearer token only; the
pages (``engine.web.transfers``, at ``/inbox``) call these same functions (docs/red-bag.md,
"Pages", says why they do not share the path).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

import consent
from audit import AuditEntry, RequestContext, append_within, disclose
from audit.entry import Action
from consent import Decision, PatientFacts, Who, decide
from engine.api.deps import Services, current_user, request_context, services
from engine.api.errors import FHIR_JSON, FhirError, Problem, echoed, fhir_response, not_found
from engine.api.handling import fhir_request
from engine.api.openapi import Bundle, answers
from engine.db import durable_write, read_only
from engine.gate import gather_facts
from engine.identity import members_of
from engine.transfer import store
from engine.transfer.parties import acknowledgement, may_see, may_take_part
from engine.transfer.receive import Inbox, receive, refuse
from engine.transfer.rules import UUID, Refused
from engine.transfer.rules import Problem as Issue

router = APIRouter()
#: Each acknowledgement's own audit action: the hospital's receipt, or the care home's return.
STEP_ACTIONS: dict[str, Action] = {
    "acknowledged": "transfer-acknowledge",
    "returned": "transfer-return",
}


class TransferList(BaseModel):
    model_config = ConfigDict(extra="allow")
    transfers: list[dict[str, Any]]


class TransferView(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: str


User = Annotated[Who, Depends(current_user)]
Context = Annotated[RequestContext, Depends(request_context)]


def inbox(svc: Services) -> Inbox:
    return Inbox(svc.engine, svc.audit, svc.settings.canonical_base, svc.policy)


#: The media types a message may be declared as (parameters such as ``charset`` aside).
MESSAGE_TYPES = frozenset({"application/fhir+json", "application/json"})


def _declared_json(request: Request) -> bool:
    """Whether the body is declared as JSON: ``application/fhir+json`` (FHIR's) or
    ``application/json``, with any parameters (``; charset=utf-8``).

    A body declaring no type is refused as one declaring another is: a sender names the format
    of what it sends (FHIR's RESTful API, and FHIR servers such as HAPI, refuse a body with no
    ``Content-Type``), every sender scr ships declares it (``scr transfer send``, the bench),
    and taking an undeclared body as JSON would let a misconfigured care-home system pass
    here and fail at the first other FHIR server it meets."""
    declared = request.headers.get("content-type")
    return declared is not None and declared.split(";")[0].strip().lower() in MESSAGE_TYPES


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


@router.post(
    "/fhir/$process-message", responses=answers(Bundle), dependencies=[Depends(fhir_request)]
)
async def process_message(request: Request, who: User, ctx: Context) -> Response:
    svc = services(request)
    limit = svc.settings.transfer_max_bytes
    try:
        if not _declared_json(request):  # refused before a byte is read, and audited
            said = "A message is sent as application/fhir+json (or application/json), not " + (
                echoed(request.headers.get("content-type", "")) or "a body of no declared type"
            )
            raise await run_in_threadpool(
                refuse, inbox(svc), who, ctx, 415, Issue("not-supported", said)
            )
        raw = await _body(request, limit)
        if raw is None:  # a bad message, as every other (the contract's 422), refused by size
            big = Issue("too-costly", f"The message is larger than {limit:,} bytes", "Bundle")
            raise await run_in_threadpool(refuse, inbox(svc), who, ctx, 422, big)
        answer = await run_in_threadpool(receive, inbox(svc), who, ctx, raw)
    except Refused as exc:
        problems = (Problem(p.code, p.diagnostics, p.expression) for p in exc.problems)
        raise FhirError(exc.status, *problems) from None
    return Response(answer, 200, media_type=FHIR_JSON)


def _audit(
    svc: Services, who: Who, ctx: RequestContext, action: Action, row: store.TransferRow | None,
    query: str | None = None, decision: Decision | None = None,
) -> None:  # fmt: skip
    """Append :func:`_entry` now, on its own: for a view, or a step that was refused."""
    disclose(svc.audit, _entry(who, ctx, action, row, query, decision), None)


def _entry(
    who: Who, ctx: RequestContext, action: Action, row: store.TransferRow | None,
    query: str | None = None, decision: Decision | None = None,
    rules: tuple[str, ...] | None = None, more: tuple[store.TransferRow, ...] = (),
) -> AuditEntry:  # fmt: skip
    """A view or step of ``row`` (and ``more`` of the same person's, for a listing; ``None``:
    none the user may see); ``decision`` is the policy's on the user and the transfer's person,
    whose rules, basis and version it carries. A view counts each transfer disclosed, as the
    record page does."""
    shown = row is not None and (decision is None or decision.permit)
    rules = rules or (("transfer.party",) if shown else ("transfer.none",))
    rows = (row, *more) if row is not None else ()
    viewed = shown and action in ("read", "search")
    return AuditEntry(
        request_id=ctx.request_id, action=action, outcome="permit" if shown else "deny",
        user_id=who.user_id, user_name=who.name, role_code=who.role_code, profile=who.profile,
        org=who.org, purpose=who.purpose,
        rules=rules + (tuple(r.rule_id for r in decision.reasons) if decision else ()),
        policy_version=decision.policy_version if decision else None,
        basis=decision.basis if decision else None,
        patient_id=row.person_id if row else None, nhs_number=row.nhs_number if row else None,
        refs=tuple(f"transfer/{r.id}" for r in rows), query=query,
        disclosed={"transfer": len(rows)} if viewed else {},
        client_address=ctx.client_address, user_agent=ctx.user_agent,
    )  # fmt: skip


def _decision(svc: Services, who: Who, person: str) -> Decision:
    """The policy's decision on ``who`` reading a transfer of ``person``: a transfer holds
    their medicines, allergies and wishes, so it is read as the record is (the hospital's
    relationship comes from the transfer itself, the care home's from the placement)."""

    def facts(conn: Connection) -> PatientFacts:
        return gather_facts(conn, person, members_of(conn, person).patient_ids, svc.policy)

    return decide(who, read_only(svc.engine, facts), who.purpose, consent.Request("transfer"),
                  datetime.now(UTC), svc.policy)  # fmt: skip


def summary(row: store.TransferRow) -> dict[str, Any]:
    return {
        "id": row.id, "care_home": row.care_home, "hospital": row.hospital,
        "nhs_number": row.nhs_number, "status": row.status,
        "updated_at": row.updated_at.isoformat(),
    }  # fmt: skip


def seen(
    svc: Services, who: Who, ctx: RequestContext, transfer_id: str
) -> tuple[store.TransferRow, Decision]:
    """The transfer if ``who`` may see it, audited either way, and the policy's decision that
    lets them (for a step's entry to carry); 404 otherwise."""
    with svc.engine.connect() as conn:
        row = store.transfer(conn, transfer_id) if UUID.fullmatch(transfer_id) else None
    row = row if row is not None and may_see(who, row) else None
    decision = _decision(svc, who, row.person_id) if row is not None else None
    _audit(svc, who, ctx, "read", row, decision=decision)
    if row is None or decision is None or not decision.permit:
        raise not_found()
    return row, decision


def visible(svc: Services, who: Who, ctx: RequestContext, transfer_id: str) -> store.TransferRow:
    """The transfer if ``who`` may see it, audited either way; 404 otherwise."""
    return seen(svc, who, ctx, transfer_id)[0]


def refused_step(
    svc: Services, who: Who, ctx: RequestContext, action: Action, row: store.TransferRow,
    rule: str, decision: Decision,
) -> None:  # fmt: skip
    """Audit a step on ``row`` refused for ``rule`` (out of turn, or not the user's to take),
    with the decision the user saw the transfer under."""
    refused = _entry(who, ctx, action, row, decision=decision, rules=(rule,))
    disclose(svc.audit, replace(refused, outcome="deny"), None)


def listed(svc: Services, who: Who, ctx: RequestContext) -> list[store.TransferRow]:
    """The user's organisation's transfers that the policy lets them read, one audit entry
    per person (a refused one with the policy's refusals), naming each of their transfers."""
    if not may_take_part(who):
        _audit(svc, who, ctx, "search", None, "transfers")
        return []
    with svc.engine.connect() as conn:
        rows = store.transfers_of(conn, who.org)
    by_person: dict[str, list[store.TransferRow]] = {}
    for row in rows:
        by_person.setdefault(row.person_id, []).append(row)
    decisions: dict[str, Decision] = {}
    for person, theirs in by_person.items():  # one entry a person: one refusal, not one a row
        decisions[person] = decision = _decision(svc, who, person)
        first, *more = theirs
        entry = _entry(who, ctx, "search", first, "transfers", decision, more=tuple(more))
        disclose(svc.audit, entry, None)
    shown = [r for r in rows if decisions[r.person_id].permit]
    if not rows:
        _audit(svc, who, ctx, "search", None, "transfers")
    return shown


def detail(svc: Services, row: store.TransferRow) -> dict[str, Any]:
    with svc.engine.connect() as conn:
        steps = store.history(conn, row.id)
        messages = store.messages_of(conn, row.id)
    return summary(row) | {
        "history": [
            {"status": s.status, "org": s.org, "user": s.user_id, "at": s.at.isoformat()}
            for s in steps
        ],
        "messages": [{"event": event, "bundle": orjson.loads(raw)} for event, raw in messages],
    }


def acknowledge(svc: Services, who: Who, ctx: RequestContext, transfer_id: str) -> str:
    """Move the transfer on (``acknowledged`` or ``returned``); 409 when it is not ``who``'s
    turn, including when it moved on between reading it and moving it."""
    row, decision = seen(svc, who, ctx, transfer_id)
    status = acknowledgement(who, row)
    if status is None:  # a second click, or a step for the other side: refused, and audited
        meant = "acknowledged" if who.org == row.hospital else "returned"
        refused_step(svc, who, ctx, STEP_ACTIONS[meant], row, "transfer.out-of-turn", decision)
        raise FhirError(409, Problem("business-rule", f"The transfer is {row.status}: there is "
                                     "nothing for your organisation to acknowledge"))  # fmt: skip
    try:  # the step and its entry commit together, so a step that loses leaves no entry
        with durable_write(svc.engine) as conn:
            store.step(conn, row.id, (row.status,), status, who.org, who.user_id,
                       datetime.now(UTC))  # fmt: skip
            append_within(conn, [_entry(who, ctx, STEP_ACTIONS[status], row, None, decision)])
    except store.Closed as exc:  # moved on since it was read: by a message, or a second click
        refused_step(svc, who, ctx, STEP_ACTIONS[status], row, "transfer.out-of-turn", decision)
        raise FhirError(
            409,
            Problem(
                "business-rule",
                f"The transfer is {exc.status}: there is "
                "nothing for your organisation to acknowledge",
            ),
        ) from None
    return status


@router.get("/transfers", responses=answers(TransferList))
def list_transfers(request: Request, who: User, ctx: Context) -> Response:
    rows = listed(services(request), who, ctx)
    return fhir_response({"transfers": [summary(r) for r in rows]})


@router.get("/transfers/{transfer_id}", responses=answers(TransferView))
def get_transfer(request: Request, who: User, ctx: Context, transfer_id: str) -> Response:
    svc = services(request)
    return fhir_response(detail(svc, visible(svc, who, ctx, transfer_id)))


@router.post("/transfers/{transfer_id}/acknowledge", responses=answers(TransferView))
def acknowledge_transfer(request: Request, who: User, ctx: Context, transfer_id: str) -> Response:
    svc = services(request)
    return fhir_response({"id": transfer_id, "status": acknowledge(svc, who, ctx, transfer_id)})
