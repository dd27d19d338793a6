"""One settings object, read once from ``SCR_*`` environment variables and an optional TOML file.

A malformed value stops start-up with a message naming the setting; settings are frozen after
they are read so nothing can change them under a running process.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Asymmetric algorithms only: a shared secret would let any verifier mint tokens.
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./scr.db"
    canonical_base: str = "https://fhir.scr.example/"
    #: Where clients reach this server: the base of every link it writes (Bundle paging,
    #: ``fullUrl``). Configured, never taken from a request's Host header, which the client sets.
    public_base_url: str = "http://127.0.0.1:8000"
    #: How long a worker trusts its copy of an organisation's kind before reading the directory
    #: again; ``scr directory load`` in the same process takes effect at once.
    directory_ttl_seconds: int = 60
    data_dir: Path = Path(".")
    ingest_batch_size: int = 1000
    #: How long a break-glass grant lasts (access-policy.md).
    break_glass_minutes: int = 240
    #: ``dev``: tokens minted by ``scr token`` with a key in the data directory; ``jwt``:
    #: tokens from the identity provider, checked against the key, issuer and audience below.
    auth_mode: str = "jwt"
    jwt_issuer: str = ""
    jwt_audience: str = "scr"
    #: The one algorithm accepted (pinned: no ``none``, no HS/RS confusion).
    jwt_algorithm: str = "RS256"
    #: A PEM public key, or the path of a file holding one.
    jwt_public_key: str = ""
    jwks_url: str = ""
    #: How long the JWKS is trusted before it is fetched again: a key the identity provider
    #: withdraws is trusted at most this long (longer only while it cannot be reached).
    jwks_max_age_seconds: int = 300
    #: Ed25519 key that signs audit checkpoints: a PEM file's path or the PEM itself. Unset: a key
    #: is generated on first use into ``data_dir`` (see ``audit.keys``). Never shown in a repr.
    audit_signing_key: str | None = field(default=None, repr=False)
    #: PostgreSQL role the application connects as; migrations grant it only what it needs on
    #: the audit tables (SELECT and INSERT on the trail), so it can never rewrite the trail.
    db_app_role: str | None = None
    #: Database connections each server process keeps open. A request holds one at a time and
    #: a process serves requests on up to 40 threads; a pool smaller than the requests in
    #: flight opens and closes a connection (a new PostgreSQL backend) for each one over it.
    db_pool_size: int = 16
    #: Refused requests (a missing or bad token, a forged form) one client address may make
    #: within ``refusal_window_seconds`` and have each audited; past it: 429, and one entry per
    #: window counting them (engine/api/throttle.py). Per worker process.
    refusal_limit: int = 20
    refusal_window_seconds: int = 60
    #: The largest red-bag message accepted; a larger body is refused as it streams in.
    transfer_max_bytes: int = 5_000_000
    #: One response in this many (per server process) closes its connection, so that the
    #: client reconnects to whichever worker takes it: keep-alive connections otherwise stay
    #: with the worker that first took them, however unevenly they fell
    #: (``engine.api.middleware.Turnover``).
    turnover_every: int = 100

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        config = env.get("SCR_CONFIG")
        if config:
            try:
                values.update(tomllib.loads(Path(config).read_text(encoding="utf-8")))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"SCR_CONFIG: cannot read {config}: {exc}") from None
        for f in fields(cls):
            key = f"SCR_{f.name.upper()}"
            if key in env:
                values[f.name] = env[key]
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            # A file written with the variables' names (SCR_DATABASE_URL) says which it meant.
            named = [f"{u} (write {u.removeprefix('SCR_').lower()})" if u.startswith("SCR_")
                     else u for u in sorted(unknown)]  # fmt: skip
            raise SettingsError(f"SCR_CONFIG: unknown setting(s) {', '.join(named)}")
        texts = {f.name for f in fields(cls) if str(f.type).startswith("str")}
        for name in sorted(texts & set(values)):
            if values[name] is not None and not isinstance(values[name], str):
                raise SettingsError(f"SCR_{name.upper()}: must be text (a quoted TOML string)")
        return cls(**_coerce(values))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "data_dir" in out:
        out["data_dir"] = Path(out["data_dir"])
    for name in (
        "ingest_batch_size", "break_glass_minutes", "directory_ttl_seconds",
        "transfer_max_bytes", "db_pool_size", "jwks_max_age_seconds", "refusal_limit",
        "refusal_window_seconds", "turnover_every",
    ):  # fmt: skip
        if name in out:
            out[name] = _positive(name, out[name])
    base = out.get("canonical_base")
    if base is not None:
        if not str(base).startswith(("http://", "https://")):
            raise SettingsError("SCR_CANONICAL_BASE: must be an http(s) URL")
        out["canonical_base"] = str(base).rstrip("/") + "/"
    public = out.get("public_base_url")
    if public is not None:
        if not str(public).startswith(("http://", "https://")):
            raise SettingsError("SCR_PUBLIC_BASE_URL: must be an http(s) URL")
        out["public_base_url"] = str(public).rstrip("/")
    if out.get("auth_mode", "jwt") not in ("dev", "jwt"):
        raise SettingsError("SCR_AUTH_MODE: must be dev or jwt")
    if out.get("jwt_algorithm", "RS256") not in _ALGORITHMS:
        raise SettingsError(f"SCR_JWT_ALGORITHM: must be one of {', '.join(_ALGORITHMS)}")
    role = out.get("db_app_role")
    if role is not None and not _ROLE.fullmatch(str(role)):
        raise SettingsError("SCR_DB_APP_ROLE: must be a plain role name (letters, digits, _)")
    url = out.get("database_url")
    if url is not None and not str(url).startswith(("sqlite", "postgresql")):
        raise SettingsError("SCR_DATABASE_URL: must be a sqlite:// or postgresql+psycopg:// URL")
    return out


def _positive(name: str, value: Any) -> int:
    key = f"SCR_{name.upper()}"
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{key}: must be a whole number") from None
    if number < 1:
        raise SettingsError(f"{key}: must be at least 1")
    return number
