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

_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./scr.db"
    canonical_base: str = "https://fhir.scr.example/"
    data_dir: Path = Path(".")
    ingest_batch_size: int = 1000
    #: Ed25519 key that signs audit checkpoints: a PEM file's path or the PEM itself. Unset: a key
    #: is generated on first use into ``data_dir`` (see ``audit.keys``). Never shown in a repr.
    audit_signing_key: str | None = field(default=None, repr=False)
    #: PostgreSQL role the application connects as; migrations grant it only what it needs on
    #: the audit tables (SELECT and INSERT on the trail), so it can never rewrite the trail.
    db_app_role: str | None = None

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
            raise SettingsError(f"SCR_CONFIG: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**_coerce(values))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "data_dir" in out:
        out["data_dir"] = Path(out["data_dir"])
    if "ingest_batch_size" in out:
        try:
            out["ingest_batch_size"] = int(out["ingest_batch_size"])
        except (TypeError, ValueError):
            raise SettingsError("SCR_INGEST_BATCH_SIZE: must be a whole number") from None
        if out["ingest_batch_size"] < 1:
            raise SettingsError("SCR_INGEST_BATCH_SIZE: must be at least 1")
    base = out.get("canonical_base")
    if base is not None:
        if not str(base).startswith(("http://", "https://")):
            raise SettingsError("SCR_CANONICAL_BASE: must be an http(s) URL")
        out["canonical_base"] = str(base).rstrip("/") + "/"
    role = out.get("db_app_role")
    if role is not None and not _ROLE.fullmatch(str(role)):
        raise SettingsError("SCR_DB_APP_ROLE: must be a plain role name (letters, digits, _)")
    url = out.get("database_url")
    if url is not None and not str(url).startswith(("sqlite", "postgresql")):
        raise SettingsError("SCR_DATABASE_URL: must be a sqlite:// or postgresql+psycopg:// URL")
    return out
