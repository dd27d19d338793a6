"""Who is asking: a bearer token checked, and its CIS2-shaped claims read into a user.

One algorithm is accepted, fixed by configuration and asymmetric (``none`` and HS/RS confusion
are impossible: PyJWT is only ever given the one algorithm and a public key). Expiry, not-before,
issuer and audience are required and checked. Claims follow CIS2 userinfo: ``sub``, ``name``,
``nhsid_nrbac_roles[]`` with ``selected_roleid`` naming the role in force; scr adds
``purpose_of_use`` and ``ig_training_date``. ``dev`` mode signs its own tokens (``scr token``)
with an Ed25519 key kept in the data directory; it exists for the demo and tests only.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.settings import Settings, SettingsError

DEV_ISSUER = "scr-dev"
DEV_ALGORITHM = "EdDSA"
DEV_KEY_FILE = "dev-token-key.pem"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub"]
#: Seconds of clock difference allowed on ``exp``, ``iat`` and ``nbf``.
_LEEWAY = 30


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


def user_from_claims(claims: Mapping[str, Any]) -> TokenUser:
    role = _role(claims)
    role_code, org = role.get("role_code"), role.get("org_code")
    if not isinstance(role_code, str) or not isinstance(org, str) or not role_code or not org:
        raise TokenRefused("the role in force has no role_code or org_code")
    trained = claims.get("ig_training_date")
    try:
        training = date.fromisoformat(trained) if isinstance(trained, str) else None
    except ValueError:
        raise TokenRefused("ig_training_date is not an ISO date") from None
    activities = role.get("activity_codes", [])
    if not isinstance(activities, list):
        raise TokenRefused("activity_codes is not a list")
    purpose = claims.get("purpose_of_use", "TREAT")
    return TokenUser(
        user_id=str(claims["sub"]),
        name=str(claims.get("name", "")),
        role_code=role_code,
        org=org,
        activity_codes=frozenset(a for a in activities if isinstance(a, str)),
        purpose=purpose if isinstance(purpose, str) else None,
        ig_training=training,
    )


class Verifier:
    """Checks bearer tokens against one key source, one algorithm, one issuer and audience.

    A token that passed is remembered (the ``remember`` most recent, by its exact text) with
    the times between which every check it passed still holds: the signature, issuer, audience
    and claims cannot change for the same bytes and the process's keys are fixed when it
    starts, so only time can turn the verdict. Until the expiry (with the leeway) and from the
    issue and not-before times (with the leeway) it is answered from memory, about 0.15 ms less
    per request; outside that window it is checked afresh, and refused with the library's own
    reason. A refused token is never remembered.
    """

    def __init__(
        self,
        keys: Sequence[Any] | jwt.PyJWKSet,
        algorithm: str,
        issuer: str,
        audience: str,
        remember: int = 1024,
    ) -> None:
        self._keys = keys
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._remember = remember
        self._passed: OrderedDict[str, tuple[TokenUser, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, token: str) -> Any:
        if not isinstance(self._keys, jwt.PyJWKSet):
            return self._keys[0]
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if key.key_id == kid:
                return key.key
        raise TokenRefused(f"no key in the JWKS has kid {kid!r}")

    def verify(self, token: str) -> TokenUser:
        now = time.time()
        with self._lock:
            passed = self._passed.get(token)
            if passed is not None and passed[1] <= now < passed[2]:
                self._passed.move_to_end(token)
                return passed[0]
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": _REQUIRED},
                leeway=_LEEWAY,
            )
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"{type(exc).__name__}: {exc}", type(exc).__name__) from None
        user = user_from_claims(claims)
        # As the library reads them: it accepted now >= iat - leeway (and nbf), now < exp + leeway.
        since = max(int(claims["iat"]), int(claims.get("nbf", claims["iat"]))) - _LEEWAY
        with self._lock:
            self._passed[token] = (user, since, int(claims["exp"]) + _LEEWAY)
            if len(self._passed) > self._remember:
                self._passed.popitem(last=False)
        return user


def dev_key(settings: Settings) -> Ed25519PrivateKey:
    """The dev signing key, made on first use; readable by this user only."""
    path = settings.data_dir / DEV_KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
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


def verifier_for(settings: Settings) -> Verifier:
    """The verifier the settings ask for; a missing setting stops start-up, naming it."""
    if settings.auth_mode == "dev":
        public = dev_key(settings).public_key()
        return Verifier([public], DEV_ALGORITHM, DEV_ISSUER, settings.jwt_audience)
    if not settings.jwt_issuer:
        raise SettingsError("SCR_JWT_ISSUER: required when SCR_AUTH_MODE is jwt")
    if settings.jwks_url:
        try:
            response = httpx.get(settings.jwks_url, timeout=10)
            response.raise_for_status()
            keys: Sequence[Any] | jwt.PyJWKSet = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise SettingsError(f"SCR_JWKS_URL: cannot load {settings.jwks_url}: {exc}") from None
    elif settings.jwt_public_key:
        try:
            keys = [serialization.load_pem_public_key(_pem(settings.jwt_public_key))]
        except ValueError as exc:
            raise SettingsError(f"SCR_JWT_PUBLIC_KEY: not a PEM public key: {exc}") from None
    else:
        raise SettingsError("SCR_JWT_PUBLIC_KEY or SCR_JWKS_URL: one is required in jwt mode")
    return Verifier(keys, settings.jwt_algorithm, settings.jwt_issuer, settings.jwt_audience)


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
