"""Canonical JSON: sorted keys, no whitespace, UTF-8. Stored as-is and hashed as-is.

A FHIR decimal keeps its precision (``5.10`` is not ``5.1``, ``120.0`` is not ``120``): the
mappers give a source's decimal text as a :class:`~decimal.Decimal`, written here exactly as
it reads, and a stored body that holds such a number is read back (:func:`loads`) with its
decimals as written, so a body parsed and written again (masked, relabelled) keeps them
(``adapters.exactjson``, which reads the sources' JSON the same way).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from adapters.exactjson import exact, loads

__all__ = ["content_hash", "dumps", "encodable", "exact", "loads"]


def dumps(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, default=exact, option=orjson.OPT_SORT_KEYS)


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the content only: version and timestamp are left out so a re-run compares equal."""
    meta = resource.get("meta")
    if meta and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {**resource, "meta": meta}
    return hashlib.sha256(dumps(resource)).hexdigest()


#: Code points UTF-8 cannot encode: surrogates, which JSON (a token's claims) can carry alone
#: and a CSV read with ``surrogateescape`` leaves for a byte its encoding cannot decode.
_UNENCODABLE = re.compile("[\ud800-\udfff]")
#: What stands for each one, as for a NUL where text cannot hold it.
SHOWN_FOR_UNENCODABLE = "\ufffd"


def encodable(value: Any) -> Any:
    """``value`` with every string in it (in lists, tuples and mappings, keys too) encodable as
    UTF-8, a lone surrogate becoming U+FFFD: what cannot be encoded cannot be stored, and one
    such string would fail the write of everything beside it. ``value`` itself if it had none."""
    if isinstance(value, str):
        if value.isascii() or _UNENCODABLE.search(value) is None:
            return value
        return _UNENCODABLE.sub(SHOWN_FOR_UNENCODABLE, value)
    if isinstance(value, list | tuple):
        items = [encodable(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Mapping):
        pairs = [(encodable(k), encodable(v), k, v) for k, v in value.items()]
        if all(k is k0 and v is v0 for k, v, k0, v0 in pairs):
            return value
        return {k: v for k, v, _, _ in pairs}
    return value
