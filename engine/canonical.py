"""Canonical JSON: sorted keys, no whitespace, UTF-8. Stored as-is and hashed as-is.

A FHIR decimal keeps its precision (``5.10`` is not ``5.1``, ``120.0`` is not ``120``): the
mappers give a source's decimal text as a :class:`~decimal.Decimal`, written here exactly as
it reads, and a stored body that holds such a number is read back (:func:`loads`) with its
decimals as written, so a body parsed and written again (masked, relabelled) keeps them
(``adapters.exactjson``, which reads the sources' JSON the same way).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from adapters.exactjson import exact, loads

__all__ = ["content_hash", "dumps", "exact", "loads"]


def dumps(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, default=exact, option=orjson.OPT_SORT_KEYS)


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the content only: version and timestamp are left out so a re-run compares equal."""
    meta = resource.get("meta")
    if meta and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {**resource, "meta": meta}
    return hashlib.sha256(dumps(resource)).hexdigest()
