"""The web session: the bearer token in a cookie, a CSRF token on every form, and the
once-per-session acknowledgement of the confidentiality notice (Caldicott principle 5).

Cookies are ``__Host-``, ``Secure; HttpOnly; SameSite=Strict``: the prefix makes the browser
take them only from a secure page of this very host, so a sibling subdomain or a MITM on
http:// cannot plant one. A form's CSRF token is an HMAC, under a key kept in the data
directory, of the session's token: another site cannot read it, and a value known before
sign-in (or planted in a cookie) is worth nothing after, as signing in changes the session.
Before sign-in, the sign-in form's token is the HMAC of a random value in its own cookie,
dropped at sign-in and sign-out.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import orjson
from fastapi import Request, Response

from adapters.values import nhs_number_valid
from consent import Who
from engine.api.auth import TokenRefused
from engine.api.deps import SESSION_COOKIE, context, refuse, services, who_for
from engine.api.errors import FhirError, Problem
from engine.keyfile import create
from engine.settings import SettingsError

CSRF_COOKIE = "__Host-scr_csrf"
CSRF_FIELD = "csrf_token"
ACK_COOKIE = "__Host-scr_ack"
CSRF_KEY_FILE = "csrf-key"


def _cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, secure=True, httponly=True, samesite="strict", path="/"
    )


def _drop(response: Response, name: str) -> None:
    """Expire a cookie with the attributes it was set with: a browser ignores a ``__Host-``
    cookie's deletion that is not ``Secure``."""
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


#: The length of the CSRF key scr makes; a shorter one was not made by scr, and is refused.
_KEY_BYTES = 32


@cache
def csrf_key(data_dir: Path) -> bytes:
    """The deployment's CSRF key, made on first use (by ``create_app``, so a bad one stops
    start-up); readable by this user only. An empty or truncated file (a bad restore) would
    be a key anyone can guess, forging every form: it is refused, naming the file."""
    path = data_dir / CSRF_KEY_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            create(path, secrets.token_bytes(_KEY_BYTES))
    key = path.read_bytes()
    if len(key) < _KEY_BYTES:
        raise SettingsError(
            f"{path}: {len(key)} bytes, not a CSRF key scr made ({_KEY_BYTES}); "
            "remove it to have a new one made (every open form then expires)"
        )
    return key


def _for(request: Request, basis: str) -> str:
    key = csrf_key(services(request).settings.data_dir)
    return hmac.new(key, basis.encode(), "sha256").hexdigest()


def _basis(request: Request) -> str | None:
    """What a form's CSRF token is made from: the session's token, else (before sign-in) the
    browser's random value."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(CSRF_COOKIE)


def _same(a: str, b: str) -> bool:
    """Constant-time, and on bytes: ``compare_digest`` raises on a non-ASCII string."""
    return hmac.compare_digest(a.encode(), b.encode())


def csrf_token(request: Request) -> str:
    """The CSRF token for the session (signed in), or for this browser before sign-in (a new
    random basis when it has none yet)."""
    basis = _basis(request)
    if basis is None:
        basis = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return _for(request, basis)


def keep_csrf(request: Request, response: Response) -> Response:
    """Set the pre-sign-in cookie on a page that made a new basis for its forms."""
    made = request.state.__dict__.get("new_csrf")
    if made is not None:
        _cookie(response, CSRF_COOKIE, made)
    return response


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 for a form this session was not given, audited with the signed-in user (if the
    session is valid) and the person the URL names: a forged form is an attack to see."""
    basis = _basis(request)
    if basis and submitted and _same(_for(request, basis), submitted):
        return
    number = request.path_params.get("nhs_number")
    refuse(
        services(request), context(request), "form-refused", _session_user(request),
        ("web.csrf-invalid",), number if number and nhs_number_valid(number) else None, page=True,
    )  # fmt: skip
    raise FhirError(403, Problem("forbidden", "The form has expired: reload the page"))


def _session_user(request: Request) -> Who | None:
    """The session's user, for the trail; a session that is not valid is not audited again."""
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        return None
    svc = services(request)
    try:
        return who_for(svc, svc.verifier.verify_blocking(token))
    except TokenRefused:
        return None


def seal(request: Request, values: Mapping[str, str]) -> str:
    """A digest of form values keyed by the session's CSRF token: a later post carrying it
    and the same values shows they are what this session was shown (a review), with nothing
    kept on the server. Line breaks are sealed as one kind: a browser posts every one in a
    form value as CR LF, whatever the page wrote."""
    key = csrf_token(request).encode()
    lines = {k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in values.items()}
    return hmac.new(key, orjson.dumps(dict(sorted(lines.items()))), "sha256").hexdigest()


def sealed(request: Request, values: Mapping[str, str], digest: str) -> bool:
    return _same(seal(request, values), digest)


#: The longest token a session cookie holds: browsers drop a cookie over 4,096 bytes (name,
#: value and attributes together), which would sign the user out at once, silently.
MAX_TOKEN = 3_800


def sign_in(response: Response, token: str, until: int) -> None:
    """The new session, and with it new CSRF tokens: the pre-sign-in basis is dropped. The
    cookie lasts as long as the token is accepted (``until``: its ``exp`` and the leeway), and
    no longer; a token the verifier just accepted has at least a second of it left."""
    _cookie(response, SESSION_COOKIE, token, max_age=max(1, until - int(time.time())))
    for name in (ACK_COOKIE, CSRF_COOKIE):
        _drop(response, name)


def sign_out(response: Response) -> None:
    for name in (SESSION_COOKIE, ACK_COOKIE, CSRF_COOKIE):
        _drop(response, name)


def acknowledge(response: Response) -> None:
    _cookie(response, ACK_COOKIE, "1")


def acknowledged(request: Request) -> bool:
    return request.cookies.get(ACK_COOKIE) == "1"
