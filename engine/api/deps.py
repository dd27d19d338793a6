"""What a route depends on: the process's services, the request's context, and the user.

The user comes from the bearer token (or, for the web pages, the same token in the session
cookie) and nowhere else; the organisation's kind comes from the directory. A token that
cannot be trusted is audited as ``token-refused`` and answered 401 before any route runs (or,
past the client's limit of refusals, 429: :mod:`engine.api.throttle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from audit import AuditEntry, AuditUnavailable, RequestContext, Writer, disclose
from audit.entry import Action, time_text
from audit.export import code_valid
from consent import Policy, Who
from engine.api.auth import TokenRefused, TokenUser, Verifier
from engine.api.errors import FhirError, Problem, echoed
from engine.api.records import Reader
from engine.api.throttle import Refusals, Throttled, TooManyRefusals
from engine.directory import Kinds
from engine.settings import Settings
from engine.signouts import SignOuts

log = logging.getLogger("scr.api")
SESSION_COOKIE = "__Host-scr_session"
#: A request's purpose of use, when it is not the token's default (``ETREAT`` after break-glass).
PURPOSE_HEADER = "x-purpose-of-use"
#: Declares the bearer scheme in the OpenAPI document; ``_token`` reads the token itself, so the
#: session cookie works too and a missing token is audited before it is refused.
BEARER = HTTPBearer(auto_error=False, description="A CIS2 JWT (in dev mode, from scr token)")
#: The rule of the entry counting a client's refusals past its limit in one window.
THROTTLED = "auth.throttled"
#: How often the app records the windows of refusals that closed (:func:`sweep_throttled`).
SWEEP_SECONDS = 5.0
#: As long as the audit trail's column, so the id a client gave is the one the trail holds.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: As long as the audit trail's column, so the purpose decided on is the one the trail holds.
PURPOSE_WIDTH = 32


@dataclass(frozen=True, slots=True)
class Services:
    """Made once per process by ``create_app``."""

    settings: Settings
    engine: Engine
    policy: Policy
    verifier: Verifier
    audit: Writer
    kinds: Kinds
    refusals: Refusals
    signouts: SignOuts

    @property
    def reader(self) -> Reader:
        return Reader(self.engine, self.policy, self.audit, self.settings.canonical_base)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def request_id(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, otherwise a fresh one (whole
    string: ``$`` would let a trailing newline into the header and the audit trail)."""
    return header if header and _REQUEST_ID.fullmatch(header) else str(uuid.uuid4())


async def request_context(request: Request) -> RequestContext:
    """:func:`context` as a route's dependency: async, as it reads only the request, and a
    sync dependency is a thread hop per request."""
    return context(request)


def target(request: Request) -> str:
    """The request as asked: its path and query string, as the audit entry of a search or a
    whole record keeps it (BALP records the raw query, so what was asked is kept exactly)."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def context(request: Request) -> RequestContext:
    return RequestContext(
        request_id=request.state.request_id,
        client_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def _token(request: Request, cookie: bool) -> str | None:
    """The bearer token; the session cookie only for the web pages, whose forms carry CSRF
    tokens (an API call made with a cookie alone could be forged by another site)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) if cookie else None


def record_login(svc: Services, ctx: RequestContext, who: Who) -> None:
    """Audit a sign-in: an event that is not a decision about a person."""
    disclose(svc.audit, _event(ctx, "login", who, True, ()), None)


def refuse(
    svc: Services,
    ctx: RequestContext,
    action: Action,
    who: Who | None,
    rules: tuple[str, ...],
    nhs_number: str | None = None,
    *,
    page: bool,
    counted: bool = False,
) -> None:
    """Audit a refusal no policy decision made (a bad token, a forged form, a step the user's
    role never takes), naming the person the request was about when its URL names one.

    A refusal of a signed-in user (``who``) is always an entry of its own, naming them: their
    token is valid, so it is never counted. One with no valid user, or a token no longer
    valid for its holder (``counted``: signed out, named for the trail), is counted per
    client, and past its limit (:mod:`engine.api.throttle`) it is not audited on its own: 429
    instead (:class:`TooManyRefusals`, a plain page if ``page``), and its window's entry
    counts it."""
    if (who is None or counted) and svc.refusals.refused(ctx.client_address):
        raise TooManyRefusals(int(svc.refusals.window), page)
    disclose(svc.audit, _event(ctx, action, who, False, rules, nhs_number), None)


def record_throttled(svc: Services, closed: list[Throttled]) -> None:
    """One entry per client and closed window, counting the refusals it was not audited for,
    with the window in ``query`` as the IG search's own filters (``since=...&until=...``): the
    entry is written after the window, and must be findable by when the refusals happened.
    If the trail fails, the windows not yet written are given back to ``svc.refusals``."""
    for done, window in enumerate(closed):
        ctx = RequestContext(str(uuid.uuid4()), window.client)
        entry = replace(
            _event(ctx, "token-refused", None, False, (THROTTLED,)),
            withheld={THROTTLED: window.count},
            query=f"since={time_text(window.since)}&until={time_text(window.until)}",
        )
        try:
            disclose(svc.audit, entry, None)
        except BaseException:
            svc.refusals.keep(closed[done:])
            raise


async def sweep_throttled(svc: Services, stop: asyncio.Event) -> None:
    """Record the windows that closed, every ``SWEEP_SECONDS`` until ``stop``: a count reaches
    the trail within seconds of its window's end, not at the next refusal some client meets.
    A failed write keeps the counts for the next sweep, and is logged. Stopped, it finishes a
    write under way rather than being cancelled mid-way (its counts would then be neither
    written nor handed back for the shutdown write)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_SECONDS)
        if stop.is_set():
            return
        try:
            await run_in_threadpool(record_throttled, svc, svc.refusals.due())
        except AuditUnavailable as exc:
            log.warning("throttled refusals kept for the next sweep: %s", exc)


def record_throttled_at_shutdown(svc: Services) -> None:
    """Every window's count as the worker stops, open ones cut short; a failed write is tried
    once more, then the counts are logged, as the only record left of them."""
    failure: AuditUnavailable | None = None
    for _ in range(2):
        try:
            record_throttled(svc, svc.refusals.closing())
            return
        except AuditUnavailable as exc:
            failure = exc
    lost = "; ".join(
        f"{w.client} {w.count} from {time_text(w.since)} to {time_text(w.until)}"
        for w in svc.refusals.closing()
    )
    log.error("throttled refusals not recorded at shutdown (%s): %s", failure, lost)


def _event(
    ctx: RequestContext,
    action: Action,
    who: Who | None,
    permit: bool,
    rules: tuple[str, ...],
    nhs_number: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        request_id=ctx.request_id,
        action=action,
        outcome="permit" if permit else "deny",
        user_id=who.user_id if who else "",
        user_name=who.name if who else "",
        role_code=who.role_code if who else "",
        profile=who.profile if who else None,
        org=who.org if who else "",
        purpose=who.purpose if who else None,
        rules=rules,
        nhs_number=nhs_number,
        client_address=ctx.client_address,
        user_agent=ctx.user_agent,
    )


def _refused(
    svc: Services, ctx: RequestContext, *why: str, page: bool = False, who: Who | None = None
) -> FhirError:
    """401, audited; naming ``who`` when the token was valid but is refused (signed out),
    counted as any refused token is."""
    refuse(svc, ctx, "token-refused", who, why, page=page, counted=True)
    return FhirError(
        401,
        Problem("login", "A valid bearer token is required"),
        headers={"WWW-Authenticate": 'Bearer realm="scr"'},
    )


def purpose_valid(purpose: str) -> bool:
    """Whether a purpose a request names is a code scr can decide on, keep and export (as a
    FHIR ``code``: PostgreSQL stores no NUL, and FHIR allows no doubled or edge spaces)."""
    return len(purpose) <= PURPOSE_WIDTH and code_valid(purpose)


def _purpose_of_use(given: str | None) -> str | None:
    """The purpose ``X-Purpose-Of-Use`` names (``None``: the token's); one that is not a code
    is a malformed request, 400 before any decision, as a malformed parameter is."""
    if not given or purpose_valid(given):
        return given or None
    why = f"Not a purpose of use code (such as TREAT): {echoed(repr(given))}"
    raise FhirError(400, Problem("value", why, "X-Purpose-Of-Use"))


def who_for(svc: Services, user: TokenUser, purpose: str | None = None) -> Who:
    """The user as the policy sees them: the profile their role maps to at this kind of org,
    and the request's purpose of use (the token's ``purpose_of_use`` unless the request names
    one, as a clinician does after breaking the glass)."""
    return _who(svc, user, svc.kinds.kind(user.org), purpose)


def _who(svc: Services, user: TokenUser, kind: str | None, purpose: str | None) -> Who:
    kind = kind or "unknown"
    job_role = user.role_code.rsplit(":", 1)[-1]
    return Who(
        user_id=user.user_id,
        name=user.name,
        profile=svc.policy.profile_for(job_role, kind, user.activity_codes),
        role_code=user.role_code,
        org=user.org,
        org_kind=kind,
        ig_training=user.ig_training,
        purpose=purpose or user.purpose,
        activity_codes=user.activity_codes,
    )


def user_for(request: Request, *, cookie: bool = False) -> Who:
    """The user a request's token names; 401, audited with the reason, if none."""
    svc = services(request)
    ctx = context(request)
    token = _token(request, cookie)
    if token is None:
        raise _refused(svc, ctx, "auth.token-missing", page=cookie)
    try:
        user = svc.verifier.verify_blocking(token)
    except TokenRefused as exc:
        raise _refused(svc, ctx, "auth.token-invalid", exc.kind, page=cookie) from None
    who = who_for(svc, user)
    if svc.signouts.signed_out(user.session):  # whose session was replayed, for IG
        raise _refused(svc, ctx, "auth.signed-out", page=cookie, who=who)
    return who


async def current_user(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Who:
    """:func:`user_for` for the API, on the event loop: checking a token's signature and
    claims is CPU alone, and a sync dependency is a thread hop per request. What blocks goes
    to the threadpool: a refusal's audit append, and reading an organisation's kind when the
    directory cache (:class:`engine.directory.Kinds`) does not hold it fresh; a JWKS fetch
    runs on the verifier's own thread (:meth:`Verifier.averify`)."""
    svc = services(request)
    token = _token(request, False)
    if token is None:
        raise await run_in_threadpool(_refused, svc, context(request), "auth.token-missing")
    try:
        user = await svc.verifier.averify(token)
    except TokenRefused as exc:
        why = ("auth.token-invalid", exc.kind)
        raise await run_in_threadpool(_refused, svc, context(request), *why) from None
    out = svc.signouts.cached(user.session)
    if out is None:
        out = await run_in_threadpool(svc.signouts.signed_out, user.session)
    hit, kind = svc.kinds.cached(user.org)
    if not hit:
        kind = await run_in_threadpool(svc.kinds.kind, user.org)
    if out:  # whose session was replayed, for IG; before anything else the request asks
        who = _who(svc, user, kind, None)
        refused = partial(_refused, svc, context(request), "auth.signed-out", who=who)
        raise await run_in_threadpool(refused)
    return _who(svc, user, kind, _purpose_of_use(request.headers.get(PURPOSE_HEADER)))
