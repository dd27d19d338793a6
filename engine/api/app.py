"""The FastAPI application: services made once, a request id on every response, and every
error an OperationOutcome (a plain page, for a page: no page answers JSON). A 404 or 405
matching no route is a page's when its path is under none of the API's first segments.

A failed audit write is a 503 with nothing returned; an unexpected error is a 500 that names
the request id and nothing else, so no stack trace or data reaches the client.
"""

from __future__ import annotations

import asyncio
import gc
import html
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route

from audit import AuditUnavailable, Writer
from consent import load
from engine.api import access, fhir, ig, transfer
from engine.api.auth import verifier_for
from engine.api.deps import Services, record_throttled_at_shutdown, sweep_throttled
from engine.api.errors import FhirError, Problem, error_response, fhir_response
from engine.api.middleware import HeadAsGet, RequestIds, Turnover
from engine.api.openapi import FhirJSONResponse, Health, OperationOutcome, operation_id
from engine.api.throttle import Refusals, TooManyRefusals
from engine.db import make_engine
from engine.directory import Kinds
from engine.settings import Settings
from engine.signouts import SignOuts
from engine.web import ig as ig_pages
from engine.web import pages, session, transfers

log = logging.getLogger("scr.api")
_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}
_TOO_MANY_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Too many attempts - scr</title>"
    "<h1>Too many attempts</h1><p>Too many sign-ins or forms from your address were refused."
    " Wait a minute, then <a href=/>sign in</a> again.</p></html>"
)


#: The routers whose routes are pages: their errors answer a page, never an OperationOutcome.
PAGE_ROUTERS = (ig_pages.router, pages.router, transfers.router)
_TITLES = {
    400: "The form could not be read",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    503: "Unavailable",
}


def _for_a_page(request: Request) -> bool:
    """Whether the request was routed to a page (``scope["route"]``, set once it matched)."""
    route = request.scope.get("route")
    return route is not None and any(route in r.routes for r in PAGE_ROUTERS)


def _root(path: str) -> str:
    """A path's first segment: ``fhir`` for ``/fhir/Patient``, ``""`` for ``/``."""
    return path.lstrip("/").split("/", 1)[0]


def _paths(routes: Iterable[BaseRoute]) -> list[str]:
    """The paths of ``routes`` (an app lists its included routers as routes with none)."""
    return [r.path for r in routes if isinstance(r, Route)]


def api_roots(app: FastAPI) -> frozenset[str]:
    """The first segments of the app's API routes (``fhir``, ``access``, ``transfers``,
    ``healthz``, ``openapi.json``): a path under none of them is a page's, which no API route
    shares (checked here, so a page added under an API root stops the app)."""
    pages = {path for router in PAGE_ROUTERS for path in _paths(router.routes)}
    api = [p for router in ROUTERS if router not in PAGE_ROUTERS for p in _paths(router.routes)]
    roots = frozenset(_root(p) for p in (*api, *_paths(app.routes)) if p not in pages)
    if shared := roots & {_root(p) for p in pages}:
        raise RuntimeError(f"pages and API routes share a first path segment: {sorted(shared)}")
    return roots


def _error_page(error: FhirError) -> Response:
    """A page's error as a plain page: what was wrong (escaped), and a way back."""
    title = _TITLES.get(error.status, "Something went wrong")
    said = "".join(
        f"<li>{html.escape(p.diagnostics)}"
        + (f" ({html.escape(p.expression)})" if p.expression else "")
        + "</li>"
        for p in error.problems
    )
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{title} - scr</title>"
        f"<h1>{title}</h1><ul>{said}</ul><p>Go back, reload the page and try again, or "
        "<a href=/>start again</a>.</p></html>"
    )
    return HTMLResponse(body, error.status, headers=error.headers)


def _validation(exc: RequestValidationError) -> FhirError:
    problems = [
        Problem("invalid", str(e.get("msg", "invalid")), ".".join(str(p) for p in e["loc"][1:]))
        for e in exc.errors()
    ]
    return FhirError(400, *problems)


#: In the order their routes are matched: ``/fhir/$process-message`` before the FHIR router's
#: catch-all routes, which answer 404 and 405 for every other path under ``/fhir``.
ROUTERS = (
    transfer.router,
    ig.router,
    ig_pages.router,
    fhir.router,
    access.router,
    pages.router,
    transfers.router,
)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The app over the settings' store (or ``engine``, in tests); a bad setting stops it."""
    engine = engine or make_engine(
        settings.database_url, pool_recycle=3600, pool_size=settings.db_pool_size
    )
    session.csrf_key(settings.data_dir)
    kinds = Kinds(engine, settings.directory_ttl_seconds)
    refusals = Refusals(settings.refusal_limit, settings.refusal_window_seconds)
    svc = Services(
        settings,
        engine,
        load(),
        verifier_for(settings),
        Writer(engine),
        kinds,
        refusals,
        SignOuts(engine),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """While the worker runs, closed windows of throttled refusals are recorded every few
        seconds; as it stops, every window's, open ones too."""
        stop = asyncio.Event()
        sweeper = asyncio.create_task(sweep_throttled(svc, stop))
        try:
            yield
        finally:
            stop.set()
            await sweeper
            await run_in_threadpool(record_throttled_at_shutdown, svc)

    app = FastAPI(
        title="scr", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan,
        default_response_class=FhirJSONResponse, generate_unique_id_function=operation_id,
        redirect_slashes=False,  # its Location would be built from the client's Host header
    )  # fmt: skip
    app.state.services = svc
    app.add_middleware(RequestIds)
    app.add_middleware(Turnover, every=settings.turnover_every)
    app.add_middleware(HeadAsGet)  # outermost, so even a 500 answers HEAD without a body

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        return _error_page(exc) if _for_a_page(request) else error_response(exc)

    @app.exception_handler(AuditUnavailable)
    async def audit_down(request: Request, exc: AuditUnavailable) -> Response:
        """Nothing of what was asked is returned: a page's is the plain error page."""
        log.error("audit unavailable for request %s: %s", request.state.request_id, exc)
        why = "The audit trail is unavailable; nothing was returned"
        error = FhirError(503, Problem("transient", why))
        return _error_page(error) if _for_a_page(request) else error_response(error)

    @app.exception_handler(TooManyRefusals)
    async def too_many(_: Request, exc: TooManyRefusals) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if exc.page:
            return HTMLResponse(_TOO_MANY_PAGE, 429, headers=headers)
        why = "Too many refused requests from your address: try again later"
        return error_response(FhirError(429, Problem("throttled", why), headers=headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's own 400 (a form field missing, say): a page's is a page."""
        error = _validation(exc)
        return _error_page(error) if _for_a_page(request) else error_response(error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own errors, keeping their headers: a 405 must say what is allowed.

        A path matching no route (404) or no route for its method (405) is a page's when it
        is under none of the API's first segments (``/nope``, ``/record/x/y/z``, ``GET
        /signout``): it answers the plain error page; ``/fhir``, ``/access``, ``/transfers``
        and the rest answer an OperationOutcome, as ever."""
        code = _CODES.get(exc.status_code, "processing")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed(request) or headers.get("Allow", "")
        error = FhirError(exc.status_code, Problem(code, str(exc.detail)), headers=headers)
        page = _for_a_page(request) or _root(request.url.path) not in roots
        return _error_page(error) if page else error_response(error)

    @app.get("/healthz", responses={200: {"model": Health}, 503: {"model": OperationOutcome}})
    def healthz() -> Response:
        """503, not 500, when the database is down: the process is fine, its store is not."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.error("health check: database unavailable: %s", type(exc).__name__)
            raise FhirError(503, Problem("transient", "The database is unavailable")) from None
        return fhir_response({"status": "ok"})

    app.add_exception_handler(ig_pages.Refused, ig_pages.refused)
    for router in ROUTERS:
        app.include_router(router)
    roots = api_roots(app)
    return app


def serving(app: FastAPI) -> FastAPI:
    """Hide everything made before serving (modules, R4 models, the app) from the collector.

    A full collection otherwise walks some 200,000 long-lived objects: 100-150 ms in which a
    worker answers nothing, and so the slowest requests under load. Frozen objects are never
    freed, which suits what lives as long as the process; tests, which make many apps, do not
    call this.
    """
    gc.freeze()
    return app


def allowed(request: Request) -> str:
    """The methods of the first route matching the request's path (the one Starlette names),
    and of every other route with that same path, which Starlette leaves out (a page's GET
    and its form's POST are two routes); HEAD wherever GET is."""
    matching = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE
    ]
    first = matching[0].path if matching else None
    methods = {m for r in matching if r.path == first for m in r.methods or ()}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
