"""Canonical JSON: sorted keys, no whitespace, UTF-8. Stored as-is and hashed as-is.

A FHIR decimal keeps its precision (``5.10`` is not ``5.1``, ``120.0`` is not ``120``): the
mappers give a source's decimal text as a :class:`~decimal.Decimal`, written here exactly as
it reads, and a stored body that holds such a number is read back (:func:`loads`) with its
decimals as written, so a body parsed and written again (masked, relabelled) keeps them.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import orjson

from adapters.values import INT64

#: A number in value position (after ``:``, ``,`` or ``[`` in canonical JSON) with a fraction
#: or an exponent, which a binary float may write otherwise (``5.10``, ``0.000001``, ``1.0E5``),
#: or with 19 digits or more, which may be past 64 bits (``orjson`` reads those as floats).
#: Hex in ids (``19e8``) sits inside strings, after a quote or a letter, so it does not match;
#: text that happens to (``"at:5.1"``) only takes the slower parse.
_INEXACT = re.compile(rb"[:,\[]-?[0-9]+[.eE]|[:,\[]-?[0-9]{19}")


def exact(value: Any) -> orjson.Fragment:
    """``orjson``'s ``default``: a Decimal written as its own text."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, default=exact, option=orjson.OPT_SORT_KEYS)


def loads(body: bytes) -> Any:
    """A stored body, its decimals as written (as Decimals) where a float would change them;
    ``orjson`` for every other body (most), at its speed."""
    if _INEXACT.search(body) is None:
        return orjson.loads(body)
    return json.loads(body, parse_float=Decimal, parse_int=_integer)


def _integer(text: str) -> int | Decimal:
    """An integer, or past 64 bits (which ``orjson`` cannot write) a Decimal of the same text."""
    value = int(text)
    return value if value in INT64 else Decimal(text)


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the content only: version and timestamp are left out so a re-run compares equal."""
    meta = resource.get("meta")
    if meta and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {**resource, "meta": meta}
    return hashlib.sha256(dumps(resource)).hexdigest()
