"""Who is asking: a bearer token checked, and its CIS2-shaped claims read into a user.

One algorithm is accepted, fixed by configuration and asymmetric (``none`` and HS/RS confusion
are impossible: PyJWT is only ever given the one algorithm and a public key). Expiry, not-before,
issuer and audience are required and checked. Claims follow CIS2 userinfo: ``sub``, ``name``,
``nhsid_nrbac_roles[]`` with ``selected_roleid`` naming the role in force; scr adds
``purpose_of_use`` and ``ig_training_date``. ``dev`` mode signs its own tokens (``scr token``)
with an Ed25519 key kept in the data directory; it exists for the demo and tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from engine.keyfile import create
from engine.settings import Settings, SettingsError

log = logging.getLogger("scr.auth")
DEV_ISSUER = "scr-dev"
DEV_ALGORITHM = "EdDSA"
DEV_KEY_FILE = "dev-token-key.pem"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub"]
#: Seconds of clock difference allowed on ``exp``, ``iat`` and ``nbf``.
_LEEWAY = 30
#: The key type (JWK ``kty``) each algorithm family verifies with: a token naming a key of
#: another type is refused, not handed to the library to fail on.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_PEM_KEY_TYPES: tuple[tuple[type, str], ...] = (
    (RSAPublicKey, "RSA"), (EllipticCurvePublicKey, "EC"), (Ed25519PublicKey, "OKP"),
)  # fmt: skip
#: The least time between two fetches of the JWKS (for a kid it did not hold, or past its age).
REFRESH_SECONDS = 60.0
#: The longest one fetch of the JWKS is given, all told: then it counts as failed.
FETCH_SECONDS = 10.0
#: Page threads that may wait for a fetch at once; others answer with the keys held.
WAITERS = 4
#: What no claim the trail keeps may hold: C0 and C1 controls, DEL, and surrogates (a JSON
#: string may name one alone, ``"\\ud800"``; no text in UTF-8 holds one).
_NOT_PLAIN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


#: A CIS2 ``role_code``: staff group, staff sub-group and job role (interfaces.md). Only the
#: job role decides the profile, but a claim not of this shape is no CIS2 role: taking
#: whatever follows its last colon as the job role would read ``junk:R8000`` as a clinician.
ROLE_CODE = re.compile(r"S[0-9]{4}:G[0-9]{4}:R[0-9]{4}")


class TokenRefused(Exception):
    """The token cannot be trusted. ``kind`` names why in a word, for the audit trail; the
    message says more, for logs; the user is told neither."""

    def __init__(self, message: str, kind: str = "claims") -> None:
        super().__init__(message)
        self.kind = f"auth.{kind}"


@dataclass(frozen=True, slots=True)
class TokenUser:
    """What a trusted token says about the user and the role in force."""

    user_id: str
    name: str
    role_code: str
    org: str
    activity_codes: frozenset[str]
    purpose: str | None
    ig_training: date | None
    #: The token's ``exp`` plus the leeway (seconds since the epoch): the end of the time the
    #: verifier accepts it, and so of a session holding it. A token taken within the leeway
    #: past its ``exp`` gets the rest of that time, as the API gives it, not an empty session.
    accepted_until: int
    #: A digest of the token's claims as verified: the same for every encoding of one token
    #: (base64 padding, spare bits), so what is signed out is the token, not its spelling.
    session: str


def _role(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    listed = claims.get("nhsid_nrbac_roles")
    roles = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    if not roles:
        raise TokenRefused("the token names no role (nhsid_nrbac_roles)")
    selected = claims.get("selected_roleid")
    if selected is None:
        if len(roles) == 1:
            return roles[0]
        raise TokenRefused("several roles and no selected_roleid")
    for role in roles:
        if role.get("person_roleid") == selected:
            return role
    raise TokenRefused("selected_roleid names none of the token's roles")


def _plain(name: str, value: str) -> str:
    """``value`` if it is plain text; a claim the trail keeps (the user, their role and
    organisation) with a control character (NUL among them) or a lone surrogate (JSON can
    carry one; UTF-8 cannot encode it) is a token no one should have been issued: refused."""
    if _NOT_PLAIN.search(value) is not None:
        raise TokenRefused(f"the token's {name} holds a control character or a lone surrogate")
    return value


def user_from_claims(claims: Mapping[str, Any]) -> TokenUser:
    """The user a token's claims name. ``purpose_of_use`` is not refused here: one that is not
    a code (what :func:`engine.api.deps.purpose_valid` asks of the header's) is no purpose the
    policy knows (its codes are capital letters), so the request is decided, denied
    (``purpose.known``) and audited like any unknown purpose; a control character or a lone
    surrogate in it is kept as U+FFFD, so every page, answer and entry that shows the purpose
    can write it."""
    role = _role(claims)
    role_code, org = role.get("role_code"), role.get("org_code")
    if not isinstance(role_code, str) or not isinstance(org, str) or not role_code or not org:
        raise TokenRefused("the role in force has no role_code or org_code")
    _plain("role_code", role_code)
    if ROLE_CODE.fullmatch(role_code) is None:
        raise TokenRefused("the role in force's role_code is not a CIS2 Sxxxx:Gxxxx:Rxxxx triple")
    _plain("org_code", org)
    trained = claims.get("ig_training_date")
    try:
        training = date.fromisoformat(trained) if isinstance(trained, str) else None
    except ValueError:
        raise TokenRefused("ig_training_date is not an ISO date") from None
    activities = role.get("activity_codes", [])
    if not isinstance(activities, list):
        raise TokenRefused("activity_codes is not a list")
    purpose = claims.get("purpose_of_use", "TREAT")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise TokenRefused("the token's sub is empty: the trail would name nobody")
    return TokenUser(
        user_id=_plain("sub", sub),
        name=_plain("name", str(claims.get("name", ""))),
        role_code=role_code,
        org=org,
        activity_codes=frozenset(
            _plain("activity_codes", a) for a in activities if isinstance(a, str)
        ),
        purpose=_NOT_PLAIN.sub("\ufffd", purpose) if isinstance(purpose, str) else None,
        ig_training=training,
        accepted_until=int(claims["exp"]) + _LEEWAY,
        session=hashlib.sha256(
            json.dumps(claims, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
        ).hexdigest(),
    )


class KeysStale(TokenRefused):
    """The JWKS must be fetched again before this token is checked: it names a kid the set
    does not hold. :meth:`Verifier.verify` never waits for a fetch, so the event loop never
    waits on the network: the caller waits for :meth:`Verifier.refreshed`, at most
    ``FETCH_SECONDS``, and verifies again. A caller that does not is refusing the token: it
    fails closed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "keys-stale")


@dataclass(frozen=True, slots=True)
class _Fetch:
    """One fetch of the JWKS: when it started (monotonic) and what its waiters wait on."""

    started: float
    done: Future[None]


class Verifier:
    """Checks bearer tokens against one key source, one algorithm, one issuer and audience.

    A token that passed is remembered (the ``remember`` most recent, by its exact text) with
    the times between which every check it passed still holds: the signature, issuer, audience
    and claims cannot change for the same bytes, so only time, or new keys, can turn the
    verdict. Until the expiry (with the leeway) and from the issue and not-before times (with
    the leeway) it is answered from memory, about 0.15 ms less per request; outside that window
    it is checked afresh, and refused with the library's own reason. A refused token is never
    remembered, new keys forget every token that passed, and a verdict reached with keys that
    were replaced meanwhile is not remembered (the key set's ``generation`` tells).

    A JWKS (``refresh`` given) is fetched again when a token names a kid it does not hold (the
    identity provider rotated its keys) and when it is older than ``max_age`` seconds (a key
    withdrawn from it stops being trusted once the new set lands). Only the unknown kid waits
    for the fetch; a set past its age is refreshed in the background while tokens are checked
    with the keys held. Each fetch runs on a thread of its own and is given ``FETCH_SECONDS``
    in all: past that it counts as failed, its waiters stop waiting, and a result it brings
    later is ignored (an identity provider that trickles its answer holds one thread, not the
    verifier). A fetch starts at most once a ``REFRESH_SECONDS``, at most one runs at a time,
    and a failed one keeps the keys it had (logged).
    """

    def __init__(
        self,
        keys: Sequence[Any] | jwt.PyJWKSet,
        algorithm: str,
        issuer: str,
        audience: str,
        remember: int = 1024,
        refresh: Callable[[], jwt.PyJWKSet] | None = None,
        max_age: float = 300.0,
    ) -> None:
        self._keys = keys
        #: Counts the key sets held: a verdict is remembered only under the set it was reached by.
        self._generation = 0
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._remember = remember
        self._passed: OrderedDict[str, tuple[TokenUser, float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._refresh = refresh
        self._max_age = max_age
        #: When the keys were fetched, and when a fetch last started (monotonic seconds).
        self._fetched = self._tried = time.monotonic()
        self._inflight: _Fetch | None = None
        self._thread: threading.Thread | None = None
        self._waiters = threading.BoundedSemaphore(WAITERS)
        #: What :meth:`refreshed` gives when no fetch runs or may start: already done.
        self._settled: Future[None] = Future()
        self._settled.set_result(None)

    def _current(self, now: float) -> _Fetch | None:
        """The fetch running within its deadline; one past it is abandoned (lock held)."""
        fetch = self._inflight
        if fetch is not None and now - fetch.started >= FETCH_SECONDS:
            log.warning("JWKS fetch abandoned after %.0f s; the keys held are kept", FETCH_SECONDS)
            self._inflight = None
            fetch.done.set_result(None)
            return None
        return fetch

    def _due(self, now: float, generation: int) -> bool:
        """Whether newer keys than ``generation``'s may be had: a fetch is running or may start
        now, or one has brought keys since (a caller that read the keys just before must look
        again, not be refused)."""
        with self._lock:
            return (
                self._generation != generation
                or self._current(now) is not None
                or now - self._tried >= REFRESH_SECONDS
            )

    def _key(self, token: str, keys: Sequence[Any] | jwt.PyJWKSet, generation: int) -> Any:
        if not isinstance(keys, jwt.PyJWKSet):
            return keys[0]
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys.keys if k.key_id == kid), None)
        if key is None:
            if self._refresh is not None and self._due(time.monotonic(), generation):
                raise KeysStale(f"no key in the JWKS has kid {kid!r} yet")
            raise TokenRefused(f"no key in the JWKS has kid {kid!r}")
        if key.key_type != _KEY_TYPES.get(self._algorithm[:2]):
            raise TokenRefused(f"the key with kid {kid!r} is not a {self._algorithm} key")
        return key.key

    def refreshed(self) -> Future[None]:
        """The fetch of the JWKS, done when the keys are as fresh as they can be (or the fetch
        failed or ran out of time): the one running, else one started now if due, else one
        already done. Its future is running from the start, so no waiter can cancel it."""
        now = time.monotonic()
        with self._lock:
            fetch = self._current(now)
            if fetch is None:
                if self._refresh is None or now - self._tried < REFRESH_SECONDS:
                    return self._settled
                if self._thread is not None and self._thread.is_alive():
                    # An abandoned fetch still hangs: one thread at most, whatever the provider.
                    return self._settled
                self._tried = now
                fetch = self._inflight = _Fetch(now, Future())
                fetch.done.set_running_or_notify_cancel()
                self._thread = threading.Thread(
                    target=self._fetch, args=(fetch,), name="scr-jwks", daemon=True
                )
                self._thread.start()
            return fetch.done

    def _fetch(self, fetch: _Fetch) -> None:
        keys = None
        try:
            if self._refresh is not None:
                keys = self._refresh()
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            age = time.monotonic() - self._fetched
            log.warning("JWKS fetch failed; the keys fetched %.0f s ago are kept: %s", age, exc)
        finally:
            with self._lock:
                if self._inflight is fetch:  # not abandoned: its keys are the newest
                    if keys is not None:
                        self._keys, self._fetched = keys, fetch.started
                        self._generation += 1
                        self._passed.clear()
                    self._inflight = None
                    fetch.done.set_result(None)

    def verify(self, token: str) -> TokenUser:
        """The token's user, or :class:`TokenRefused`; never waits on the network
        (:class:`KeysStale` instead). A set past its age starts a fetch and is used meanwhile."""
        if self._refresh is not None and time.monotonic() - self._fetched >= self._max_age:
            self.refreshed()
        now = time.time()
        with self._lock:
            passed = self._passed.get(token)
            if passed is not None and passed[1] <= now < passed[2]:
                self._passed.move_to_end(token)
                return passed[0]
            keys, generation = self._keys, self._generation
        try:
            claims = jwt.decode(
                token,
                self._key(token, keys, generation),
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": _REQUIRED},
                leeway=_LEEWAY,
            )
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"{type(exc).__name__}: {exc}", type(exc).__name__) from None
        except (TypeError, ValueError) as exc:  # the library, given a key of the wrong kind
            raise TokenRefused(
                f"the key cannot check this token: {exc}", "InvalidKeyError"
            ) from None
        user = user_from_claims(claims)
        # As the library reads them: it accepted now >= iat - leeway (and nbf), now < exp + leeway.
        since = max(int(claims["iat"]), int(claims.get("nbf", claims["iat"]))) - _LEEWAY
        with self._lock:
            if self._generation == generation:
                self._passed[token] = (user, since, user.accepted_until)
                if len(self._passed) > self._remember:
                    self._passed.popitem(last=False)
        return user

    def verify_blocking(self, token: str) -> TokenUser:
        """:meth:`verify` for the pages' threads, waiting up to ``FETCH_SECONDS`` for new keys
        if it needs them. At most ``WAITERS`` threads wait at once; any other starts the fetch
        and answers with the keys held, so cookies naming unknown kids cannot fill the pool
        every page shares. A second :class:`KeysStale` (still no such kid) is a refusal."""
        try:
            return self.verify(token)
        except KeysStale:
            fetch = self.refreshed()
            if self._waiters.acquire(blocking=False):
                try:
                    with contextlib.suppress(FutureTimeout):
                        fetch.result(FETCH_SECONDS)
                finally:
                    self._waiters.release()
        return self.verify(token)

    async def averify(self, token: str) -> TokenUser:
        """:meth:`verify` on the event loop, awaiting new keys (up to ``FETCH_SECONDS``) if it
        needs them: the fetch runs on a thread of its own, and the wait holds no thread. The
        shared fetch cannot be cancelled by a waiter that is (:meth:`refreshed`)."""
        try:
            return self.verify(token)
        except KeysStale:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(self.refreshed()), FETCH_SECONDS)
        return self.verify(token)


def signing_keys(jwks: Any, algorithm: str) -> jwt.PyJWKSet:
    """The keys of a JWKS published for signing with ``algorithm``: a key whose own ``use`` or
    ``alg`` says otherwise is left out, so no token can name it."""
    listed = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(listed, list):
        raise ValueError("not a JWKS: no list of keys")
    usable = [
        key
        for key in listed
        if isinstance(key, dict)
        and key.get("use", "sig") == "sig"
        and key.get("alg", algorithm) == algorithm
    ]
    return jwt.PyJWKSet.from_dict({"keys": usable})


def dev_key(settings: Settings) -> Ed25519PrivateKey:
    """The dev signing key, made on first use; readable by this user only."""
    path = settings.data_dir / DEV_KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            create(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError(f"{path}: not an Ed25519 private key")
    return key


def _pem(value: str) -> bytes:
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise SettingsError(f"SCR_JWT_PUBLIC_KEY: cannot read {value}: {exc}") from None


def _within(fetch: Callable[[], jwt.PyJWKSet], seconds: float) -> jwt.PyJWKSet:
    """``fetch()`` on a thread of its own, given up after ``seconds``: a provider answering a
    byte at a time would otherwise hold start-up for ever (httpx's timeout is per read)."""
    done: Future[jwt.PyJWKSet] = Future()

    def run() -> None:
        try:
            done.set_result(fetch())
        except BaseException as exc:  # handed to the caller, which names what it can
            done.set_exception(exc)

    threading.Thread(target=run, name="scr-jwks", daemon=True).start()
    return done.result(seconds)


def verifier_for(settings: Settings) -> Verifier:
    """The verifier the settings ask for; a missing setting stops start-up, naming it."""
    if settings.auth_mode == "dev":
        public = dev_key(settings).public_key()
        return Verifier([public], DEV_ALGORITHM, DEV_ISSUER, settings.jwt_audience)
    if not settings.jwt_issuer:
        raise SettingsError("SCR_JWT_ISSUER: required when SCR_AUTH_MODE is jwt")
    wanted = _KEY_TYPES.get(settings.jwt_algorithm[:2])
    if settings.jwks_url and settings.jwt_public_key:
        raise SettingsError("SCR_JWT_PUBLIC_KEY and SCR_JWKS_URL: set one, not both")
    if settings.jwks_url:
        url, algorithm = settings.jwks_url, settings.jwt_algorithm
        if not url.lower().startswith("https://"):
            # Keys fetched in clear can be swapped on the way, and whoever swaps them mints tokens.
            raise SettingsError("SCR_JWKS_URL: must be an https:// URL")

        def fetch() -> jwt.PyJWKSet:
            response = httpx.get(url, timeout=FETCH_SECONDS)
            response.raise_for_status()
            return signing_keys(response.json(), algorithm)

        try:
            keys: Sequence[Any] | jwt.PyJWKSet = _within(fetch, FETCH_SECONDS)
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise SettingsError(f"SCR_JWKS_URL: cannot load {url}: {exc}") from None
        except FutureTimeout:
            raise SettingsError(
                f"SCR_JWKS_URL: {url} did not answer within {FETCH_SECONDS:.0f} s"
            ) from None
        return Verifier(keys, settings.jwt_algorithm, settings.jwt_issuer, settings.jwt_audience,
                        refresh=fetch, max_age=settings.jwks_max_age_seconds)  # fmt: skip
    if not settings.jwt_public_key:
        raise SettingsError("SCR_JWT_PUBLIC_KEY or SCR_JWKS_URL: one is required in jwt mode")
    try:
        key = serialization.load_pem_public_key(_pem(settings.jwt_public_key))
    except ValueError as exc:
        raise SettingsError(f"SCR_JWT_PUBLIC_KEY: not a PEM public key: {exc}") from None
    if not any(isinstance(key, kind) and kty == wanted for kind, kty in _PEM_KEY_TYPES):
        raise SettingsError(
            f"SCR_JWT_PUBLIC_KEY: not a key for SCR_JWT_ALGORITHM={settings.jwt_algorithm}"
        )
    return Verifier([key], settings.jwt_algorithm, settings.jwt_issuer, settings.jwt_audience)


def mint(
    settings: Settings,
    *,
    user_id: str,
    name: str,
    role_code: str,
    org: str,
    purpose: str = "TREAT",
    minutes: int = 60,
    ig_training: date | None = None,
    activities: Sequence[str] = (),
    now: datetime | None = None,
) -> str:
    """A dev-mode token for ``scr token`` and the demo personas; refused outside dev mode."""
    if settings.auth_mode != "dev":
        raise SettingsError("SCR_AUTH_MODE: scr token works in dev mode only")
    if ROLE_CODE.fullmatch(role_code) is None:
        raise ValueError(f"role code {role_code!r} is not a CIS2 Sxxxx:Gxxxx:Rxxxx triple")
    issued = now or datetime.now(UTC)
    role_id = f"{org}-{role_code}"
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": settings.jwt_audience,
        "sub": user_id,
        "name": name,
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(minutes=minutes),
        "jti": str(uuid.uuid4()),
        "nhsid_nrbac_roles": [
            {
                "person_roleid": role_id,
                "org_code": org,
                "role_code": role_code,
                "activity_codes": list(activities),
            }
        ],
        "selected_roleid": role_id,
        "purpose_of_use": purpose,
    }
    if ig_training is not None:
        claims["ig_training_date"] = ig_training.isoformat()
    return jwt.encode(claims, dev_key(settings), algorithm=DEV_ALGORITHM)
