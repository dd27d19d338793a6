"""Every response carries its request id and the security headers, and an unexpected error is
a 500 OperationOutcome that names the request id and nothing else.

A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs
every request through a task group and memory streams, which cost each read more CPU than the
policy's decision does.
"""

from __future__ import annotations

import logging
import traceback

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.deps import request_id
from engine.api.errors import FhirError, Problem, error_response
from engine.db import error_text

log = logging.getLogger("scr.api")
#: Records stay out of shared caches and the browser's history cache, and out of frames.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
_SECURITY = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_OURS = frozenset({b"x-request-id", *(k for k, _ in _SECURITY)})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestIds:
    """Stamps each HTTP response; the request id is on ``request.state.request_id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid
        stamp = [(b"x-request-id", rid.encode()), *_SECURITY]
        started = False

        async def stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
                message = {**message, "headers": [*kept, *stamp]}
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        except Exception as exc:
            # The frames, and the error as error_text says it: a database error's own text
            # can quote the row it failed on.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("request %s failed: %s\n%s", rid, error_text(exc), frames)
            if started:
                raise
            error = FhirError(500, Problem("exception", f"Internal error (request {rid})"))
            await error_response(error)(scope, receive, stamped)


class HeadAsGet:
    """HEAD is answered as the GET it mirrors, without the body (RFC 9110 9.3.2): the same
    route, the same decision and the same audit entry, as it discloses all GET does but the
    body (the status says whether the user may see it). FastAPI routes answer GET alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class Turnover:
    """One response in ``every`` closes its connection (``Connection: close``), so that the
    client's next request comes on a new one, which any worker may take.

    uvicorn's workers share one listening socket, and a worker keeps each keep-alive connection
    it accepted for as long as the client holds it: connections opened together (a proxy's pool
    after a restart, clients starting at once) are shared out by chance and stay as they fell,
    one worker's core overloaded beside an idle one for as long as they last (sixteen clients
    split 3/13: a p50 of 244 ms at 400 requests a second, against 14 ms with them turning
    over). Counted per worker, not per connection: behind a proxy every request may name the
    same client address, and a worker that answers more closes more."""

    def __init__(self, app: ASGIApp, every: int) -> None:
        self.app = app
        self.every = every
        self._answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._answered += 1  # on the worker's event loop: no other thread counts
        if self._answered < self.every:
            await self.app(scope, receive, send)
            return
        self._answered = 0

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
