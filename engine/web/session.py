"""The web session: the bearer token in a cookie, a CSRF token on every form, and the
once-per-session acknowledgement of the confidentiality notice (Caldicott principle 5).

Cookies are ``Secure; HttpOnly; SameSite=Strict``. CSRF is the double-submit pattern: a random
token in its own cookie and in a hidden field of every form, compared in constant time, so a
page on another site can neither read the token nor make the browser send a matching form.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

import orjson
from fastapi import Request, Response

from engine.api.deps import SESSION_COOKIE
from engine.api.errors import FhirError, Problem

CSRF_COOKIE = "scr_csrf"
CSRF_FIELD = "csrf_token"
ACK_COOKIE = "scr_ack"


def _cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, secure=True, httponly=True, samesite="strict", path="/"
    )


def csrf_token(request: Request) -> str:
    """The session's CSRF token (a new one when the browser has none yet)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token is None:
        token = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return token


def keep_csrf(request: Request, response: Response) -> Response:
    """Set the CSRF cookie on a page that made a new token for its forms."""
    made = request.state.__dict__.get("new_csrf")
    if made is not None:
        _cookie(response, CSRF_COOKIE, made)
    return response


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise FhirError(403, Problem("forbidden", "The form has expired: reload the page"))


def seal(request: Request, values: Mapping[str, str]) -> str:
    """A digest of form values keyed by the session's CSRF token: a later post carrying it
    and the same values shows they are what this session was shown (a review), with nothing
    kept on the server."""
    key = csrf_token(request).encode()
    return hmac.new(key, orjson.dumps(dict(sorted(values.items()))), "sha256").hexdigest()


def sealed(request: Request, values: Mapping[str, str], digest: str) -> bool:
    return hmac.compare_digest(seal(request, values), digest)


#: The longest token a session cookie holds: browsers drop a cookie over 4,096 bytes (name,
#: value and attributes together), which would sign the user out at once, silently.
MAX_TOKEN = 3_800


def sign_in(response: Response, token: str) -> None:
    _cookie(response, SESSION_COOKIE, token)
    response.delete_cookie(ACK_COOKIE, path="/")


def sign_out(response: Response) -> None:
    for name in (SESSION_COOKIE, ACK_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")


def acknowledge(response: Response) -> None:
    _cookie(response, ACK_COOKIE, "1")


def acknowledged(request: Request) -> bool:
    return request.cookies.get(ACK_COOKIE) == "1"
