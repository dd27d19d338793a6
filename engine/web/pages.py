"""The web pages: sign-in, the confidentiality notice, and the clinician's combined record.

Server-rendered and usable without JavaScript. Every page reads through the same functions as
the FHIR API (``engine.api.records``), so the page can show no more than the API would, and
every view is audited before it is rendered. Forms carry a CSRF token; the session is the
bearer token in a ``Secure; HttpOnly; SameSite=Strict`` cookie.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from adapters.synth.personas import BY_KEY, PERSONAS
from adapters.values import UK, nhs_number_valid
from consent import NOTICE, Who, explain
from consent import Request as Asked
from consent.requests import reason_problem
from engine.api.access import BreakGlass, Claim
from engine.api.auth import TokenRefused, mint
from engine.api.deps import (
    SESSION_COOKIE,
    context,
    purpose_valid,
    record_login,
    refuse,
    services,
    target,
    user_for,
    who_for,
)
from engine.api.errors import FhirError
from engine.api.records import Ambiguous, Page, RequestRefused, ask, record_by_number
from engine.directory import organisations
from engine.web import session
from engine.web.summary import compose
from engine.web.templating import templates

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
_RECORD = "/record"
#: Where the confidentiality notice may send the user on: the pages that show a person.
_AFTER_NOTICE = (_RECORD + "/", "/inbox", "/ig")


def _page(request: Request, name: str, status: int = 200, **values: Any) -> Response:
    values |= {"csrf": session.csrf_token(request), "notice": NOTICE}
    response = templates.TemplateResponse(request, name, values, status_code=status)
    return session.keep_csrf(request, response)


def _signed_in(request: Request) -> Who | None:
    if SESSION_COOKIE not in request.cookies:
        return None
    try:
        return user_for(request, cookie=True)
    except FhirError:
        return None


def _to(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def to_sign_in(request: Request) -> Response:
    """To the sign-in page, dropping a session cookie that was refused (expired, or its key
    withdrawn): kept, it would be refused, and audited, again on every page."""
    response = _to("/")
    if SESSION_COOKIE in request.cookies:
        session.sign_out(response)
    return response


@router.get("/", response_class=HTMLResponse)
def sign_in_page(request: Request) -> Response:
    dev = services(request).settings.auth_mode == "dev"
    return _page(request, "signin.html", personas=PERSONAS if dev else (), dev=dev)


@router.post("/session")
def sign_in(
    request: Request,
    csrf_token: Field,
    persona: Annotated[str | None, Form()] = None,
    token: Annotated[str | None, Form()] = None,
) -> Response:
    session.check_csrf(request, csrf_token)
    svc = services(request)
    if svc.settings.auth_mode == "dev" and persona in BY_KEY:
        p = BY_KEY[persona]
        token = mint(
            svc.settings, user_id=p.user_id, name=p.name, role_code=p.role_code, org=p.org,
            purpose=p.purpose, minutes=8 * 60, ig_training=date.today() - timedelta(days=60),
        )  # fmt: skip
    # A pasted token keeps the line end `scr token` prints (CRLF from a textarea), or a space:
    # stripped, as the API strips the bearer header.
    token = token.strip() if token else token
    if not token:
        refuse(svc, context(request), "token-refused", None, ("auth.token-missing",), page=True)
        return _page(request, "signin.html", 401, error="Choose who to sign in as", dev=False)
    if len(token) > session.MAX_TOKEN:
        refuse(svc, context(request), "token-refused", None, ("auth.token-too-long",), page=True)
        why = "That token is too long to keep in a browser: ask for one with fewer roles"
        return _page(request, "signin.html", 401, error=why, dev=False)
    try:
        user = svc.verifier.verify_blocking(token)
    except TokenRefused as exc:
        reasons = ("auth.token-invalid", exc.kind)
        refuse(svc, context(request), "token-refused", None, reasons, page=True)
        return _page(request, "signin.html", 401, error="That token is not valid", dev=False)
    who = who_for(svc, user)
    if svc.signouts.signed_out(user.session):
        refuse(svc, context(request), "token-refused", who, ("auth.signed-out",), page=True,
               counted=True)  # fmt: skip
        why = "That token was signed out: sign in with a new one"
        return _page(request, "signin.html", 401, error=why, dev=False)
    record_login(svc, context(request), who)
    response = _to("/ig" if who.profile == "ig-officer" else _RECORD)
    session.sign_in(response, token, user.accepted_until)
    return response


@router.post("/signout")
def sign_out(request: Request, csrf_token: Field) -> Response:
    """The cookie dropped, and its token refused to the pages until it expires
    (``engine.signouts``): a copy of the cookie signs no one in."""
    session.check_csrf(request, csrf_token)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        svc = services(request)
        with contextlib.suppress(TokenRefused):  # nothing signed in, nothing to refuse
            user = svc.verifier.verify_blocking(token)
            until = datetime.fromtimestamp(user.accepted_until, UTC)
            svc.signouts.sign_out(user.session, until)
    response = _to("/")
    session.sign_out(response)
    return response


@router.get(_RECORD, response_class=HTMLResponse)
def find(request: Request, nhs_number: str | None = None) -> Response:
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    if nhs_number:
        digits = nhs_number.replace(" ", "")
        if nhs_number_valid(digits):
            return _to(f"{_RECORD}/{digits}")
        error = "Enter a valid NHS number: 10 digits, with or without spaces"
        return _page(request, "find.html", 400, who=who, typed=nhs_number, error=error)
    return _page(request, "find.html", who=who)


@router.post("/acknowledge")
def acknowledge(request: Request, csrf_token: Field, next_page: Field = _RECORD) -> Response:
    session.check_csrf(request, csrf_token)
    response = _to(next_page if next_page.startswith(_AFTER_NOTICE) else _RECORD)
    session.acknowledge(response)
    return response


def org_names(request: Request) -> dict[str, str]:
    """ODS code → organisation name: pages name organisations, not only their codes."""
    with services(request).engine.connect() as conn:
        return {code: e.name for code, e in organisations(conn).items()}


def notice_first(request: Request, who: Who, here: str) -> Response | None:
    """The confidentiality notice, on any page that shows a person, until it has been
    acknowledged this session; it then leads on to ``here``."""
    if session.acknowledged(request):
        return None
    return _page(request, "notice.html", who=who, next_page=here)


@router.get(_RECORD + "/{nhs_number}", response_class=HTMLResponse)
def record(request: Request, nhs_number: str, purpose: str | None = None) -> Response:
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    if purpose and not purpose_valid(purpose):
        return _purpose_refused(request, who, nhs_number)
    who = replace(who, purpose=purpose or who.purpose)
    here = f"{_RECORD}/{quote(nhs_number)}" + (f"?purpose={quote(purpose)}" if purpose else "")
    notice = notice_first(request, who, here)
    if notice is not None:
        return notice
    reader = services(request).reader
    found = record_by_number(
        reader, who, context(request), nhs_number, Asked("everything"), Page(transfers=True),
        target(request),
    )  # fmt: skip
    released = found.released
    if released is None and found.decision is not None:
        return _no_access(request, who, nhs_number, found.decision)
    if released is None:
        error = "More than one person's record holds this NHS number; they are not shown together"
        return _no_access(request, who, nhs_number, None, error, status=409)
    names = org_names(request)
    view = compose(released.resources, reader.policy, names, reader.now().astimezone(UK).date())
    return _page(
        request, "record.html", who=who, view=view, nhs_number=nhs_number,
        basis=released.decision.basis, directives=released.decision.directives, purpose=purpose,
        transfers=released.transfers, org_names=names,
    )  # fmt: skip


def _purpose_refused(request: Request, who: Who, nhs_number: str) -> Response:
    """400 for a purpose that is not a code, audited as an attempt on the person the page
    names (as every refused view of it is), with no purpose: the one given cannot be kept."""
    number = nhs_number if nhs_number_valid(nhs_number) else None
    refuse(services(request), context(request), "everything", replace(who, purpose=None),
           ("purpose.invalid",), number, page=True)  # fmt: skip
    error = "The purpose of use must be a code, such as TREAT"
    return _no_access(request, who, nhs_number, None, error, status=400)


def _no_access(
    request: Request,
    who: Who,
    nhs_number: str,
    decision: Any,
    error: str | None = None,
    status: int = 404,
    errors: Mapping[str, str] | None = None,
    typed: Mapping[str, str] | None = None,
) -> Response:
    """The refusal, with the break-glass and self-claim forms the profile may use; a form
    refused comes back as typed (``typed``), ``errors`` marking its fields."""
    policy = services(request).policy
    profile = policy.profiles.get(who.profile or "")
    return _page(
        request, "no_access.html", status, who=who, nhs_number=nhs_number,
        explained=explain(decision) if decision is not None else None,
        can_break_glass=bool(profile and profile.break_glass),
        can_claim=bool(profile and profile.self_claim),
        reasons=sorted(policy.break_glass_reasons.items()), error=error,
        errors=errors or {}, typed=typed or {},
    )  # fmt: skip


def _refused(
    request: Request,
    who: Who,
    nhs_number: str,
    exc: RequestRefused | Ambiguous,
    typed: Mapping[str, str],
    field: str,
) -> Response:
    """The form again for a request ``ask`` refused: a reason too short is marked on its
    ``field``, kept as typed, and any other refusal is said above the forms."""
    if isinstance(exc, Ambiguous):
        several = "More than one person holds this NHS number: ask your records team"
        return _no_access(request, who, nhs_number, None, several, typed=typed)
    problem = reason_problem(typed[field], services(request).policy)
    rest = "; ".join(r.text for r in exc.refusals if r.text != problem)
    why = rest or (None if problem else "No one holds this NHS number")
    errors = {field: problem} if problem else {}
    return _no_access(request, who, nhs_number, None, why, errors=errors, typed=typed)


#: What the API's checks (``engine.api.access``) refuse, as the form says it.
_UNFIT = {
    "patient": "That is not an NHS number",
    "reason_code": "Choose a reason from the list",
    "reason_text": "The reason must be at most 2,000 characters, with no NUL characters",
    "reason": "The reason must be at most 2,000 characters, with no NUL characters",
}


def _unfit(
    request: Request, who: Who, nhs_number: str, exc: ValidationError, typed: Mapping[str, str]
) -> Response:
    """400 and the form again, as typed, for what the API refuses too, before anything is
    audited: a reason that could not be stored with its grant must not be recorded as a
    permit. A field of the form is marked; the number in the path is said above it."""
    field = str(exc.errors()[0]["loc"][0])
    if field not in typed:
        return _no_access(request, who, nhs_number, None, _UNFIT[field], 400, typed=typed)
    errors = {field: _UNFIT[field]}
    return _no_access(request, who, nhs_number, None, None, 400, errors=errors, typed=typed)


@router.post(_RECORD + "/{nhs_number}/break-glass")
def break_glass(
    request: Request, nhs_number: str, csrf_token: Field, reason_code: Field, reason_text: Field
) -> Response:
    session.check_csrf(request, csrf_token)
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    typed = {"reason_code": reason_code, "reason_text": reason_text}
    try:
        BreakGlass(patient=nhs_number, **typed)
    except ValidationError as exc:
        return _unfit(request, who, nhs_number, exc, typed)
    svc = services(request)
    try:
        ask(svc.reader, who, context(request), nhs_number, reason_code, reason_text,
            svc.settings.break_glass_minutes)  # fmt: skip
    except (RequestRefused, Ambiguous) as exc:
        return _refused(request, who, nhs_number, exc, typed, "reason_text")
    return _to(f"{_RECORD}/{quote(nhs_number)}?purpose=ETREAT")


@router.post(_RECORD + "/{nhs_number}/relationship")
def relationship(request: Request, nhs_number: str, csrf_token: Field, reason: Field) -> Response:
    session.check_csrf(request, csrf_token)
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    typed = {"reason": reason}
    try:
        Claim(patient=nhs_number, reason=reason)
    except ValidationError as exc:
        return _unfit(request, who, nhs_number, exc, typed)
    try:
        ask(services(request).reader, who, context(request), nhs_number, None, reason, 0)
    except (RequestRefused, Ambiguous) as exc:
        return _refused(request, who, nhs_number, exc, typed, "reason")
    return _to(f"{_RECORD}/{quote(nhs_number)}")
