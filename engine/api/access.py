"""``/access``: break-glass, a self-claimed relationship, and the explanation of a decision.

A clinician with no relationship finds the person by NHS number here (``patient`` may be an
NHS number or a Patient id), so break-glass works for someone the FHIR search will not show.
The request is judged on the user alone before the person is looked up, so a refusal
answers 403 with the reasons whether or not the person exists; only a user who may make the
request learns that no one holds the number (404) or that several people do (409).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from adapters.values import nhs_number_valid
from audit import RequestContext
from consent import Who, explain
from consent.rules import RELATIONSHIP
from engine.api.deps import current_user, request_context, services
from engine.api.errors import FhirError, Problem, fhir_response, not_found
from engine.api.openapi import Explanation, Made, answers
from engine.api.records import (
    Ambiguous,
    RequestRefused,
    ask,
    explanation,
    people_for,
    person_of_patient,
    unresolved_rules,
)

router = APIRouter(prefix="/access")
User = Annotated[Who, Depends(current_user)]
Context = Annotated[RequestContext, Depends(request_context)]


#: Text that is stored (grants and claims) holds no NUL: PostgreSQL cannot store one.
_TEXT = r"^[^\x00]*$"
#: An NHS number (ten ASCII digits) or a Patient id, both within the FHIR id pattern: '٩٩٩…'
#: is neither, and is refused before it reaches the audit trail as a number no search finds.
PatientRef = Annotated[
    str, Field(pattern=r"^(Patient/)?[A-Za-z0-9.-]{1,64}$", description="NHS number or Patient id")
]


class BreakGlass(BaseModel):
    patient: PatientRef
    reason_code: str = Field(min_length=1, max_length=16, pattern=_TEXT)
    reason_text: str = Field(max_length=2000, pattern=_TEXT)


class Claim(BaseModel):
    patient: PatientRef
    reason: str = Field(max_length=2000, pattern=_TEXT)


def _made(kind: str, ids: list[str], expiry_note: str) -> Response:
    doc: dict[str, Any] = {"kind": kind, "review_items": ids, "note": expiry_note}
    return fhir_response(doc, 201)


def _refused(exc: RequestRefused | Ambiguous) -> FhirError:
    if isinstance(exc, Ambiguous):
        return FhirError(
            409,
            Problem("multiple-matches", "More than one person holds this NHS number: use the "
                    "Patient id of the one you mean", "patient"),
        )  # fmt: skip
    if not exc.refusals:
        return not_found()
    return FhirError(403, *(Problem("forbidden", r.text, r.rule_id) for r in exc.refusals))


@router.post("/break-glass", status_code=201, responses=answers(Made, 201))
def break_glass(request: Request, who: User, ctx: Context, body: BreakGlass) -> Response:
    svc = services(request)
    try:
        item = ask(
            svc.reader, who, ctx, body.patient, body.reason_code, body.reason_text,
            svc.settings.break_glass_minutes,
        )  # fmt: skip
    except (RequestRefused, Ambiguous) as exc:
        raise _refused(exc) from None
    minutes = svc.settings.break_glass_minutes
    return _made(
        "break-glass", [item], f"Use purpose ETREAT or BTG; the grant lasts {minutes} minutes"
    )


@router.post("/relationship", status_code=201, responses=answers(Made, 201))
def relationship(request: Request, who: User, ctx: Context, body: Claim) -> Response:
    svc = services(request)
    try:
        item = ask(svc.reader, who, ctx, body.patient, None, body.reason, 0)
    except (RequestRefused, Ambiguous) as exc:
        raise _refused(exc) from None
    days = svc.policy.self_claim_max_days
    return _made("self-claim", [item], f"The claim lasts {days} days and is reviewed by IG")


@router.get("/explain", responses=answers(Explanation))
def explain_route(request: Request, who: User, ctx: Context, patient: str) -> Response:
    """``patient`` is an NHS number or a Patient id, as for break-glass and self-claim. No one
    holding the number is explained as an unknown Patient id is (over no one, audited under the
    number). Several holding it is 409, as for break-glass, only when the user passes the gates
    about themselves and their purpose; otherwise the refusal is the same either way. The
    entry names ``patient.ambiguous`` or ``patient.unknown`` as break-glass's does."""
    reader = services(request).reader
    if not nhs_number_valid(patient):
        person = person_of_patient(reader, patient.removeprefix("Patient/"))
        return fhir_response(explain(explanation(reader, who, ctx, person)))
    people = people_for(reader, patient)
    person = people[0] if len(people) == 1 else None
    # audited as break-glass and self-claim are: patient.ambiguous or patient.unknown when no
    # one person holds the number, in the entry only (the answer is the same either way)
    decision = explanation(reader, who, ctx, person, patient, unresolved_rules(people))
    if len(people) > 1 and any(r.rule_id == RELATIONSHIP.id for r in decision.refusals):
        raise _refused(Ambiguous(patient))
    return fhir_response(explain(decision))
