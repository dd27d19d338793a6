"""Canonical JSON: sorted keys, no whitespace, UTF-8. Stored as-is and hashed as-is."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def dumps(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the content only: version and timestamp are left out so a re-run compares equal."""
    meta = resource.get("meta")
    if meta and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {**resource, "meta": meta}
    return hashlib.sha256(dumps(resource)).hexdigest()
