"""JSON with its FHIR decimals as written: ``5.10`` is not ``5.1``, ``120.0`` is not ``120``.

A binary float would change them, and round a number of 20 digits. So JSON that holds a number
with a fraction or an exponent, or a long one, is read with those numbers as
:class:`~decimal.Decimal`, and :func:`exact` writes a Decimal back as its own text. The
sources' JSON (GP Connect bundles) and the store's bodies (``engine.canonical``) are read here.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from adapters.values import INT64

#: A number in value position (after ``:``, ``,`` or ``[``, and any spaces) with a fraction or
#: an exponent, which a binary float may write otherwise (``5.10``, ``0.000001``, ``1.0E5``), or
#: of 19 digits or more, which it may round. Hex in ids (``19e8``) sits inside strings, after a
#: quote or a letter, so it does not match; text that happens to (``"at:5.1"``) only takes the
#: slower parse.
_INEXACT = re.compile(rb"[:,\[]\s*-?(?:[0-9]+[.eE]|[0-9]{19})")


def exact(value: Any) -> orjson.Fragment:
    """``orjson``'s ``default``: a Decimal written as its own text."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def loads(body: bytes, *, checked: bool = False) -> Any:
    """JSON, its decimals as written (as Decimals) where a float would change them; ``orjson``
    for JSON without such numbers (most), at its speed.

    ``checked``: JSON from outside, so what ``orjson`` refuses (``NaN``, a lone surrogate, a
    number no double holds) is refused, with ``orjson``'s error, however it is read.
    """
    if _INEXACT.search(body) is None:
        return orjson.loads(body)
    if checked:
        orjson.loads(body)
    return json.loads(body, parse_float=Decimal, parse_int=_integer)


def _integer(text: str) -> int | Decimal:
    """An integer, or past 64 bits (which ``orjson`` cannot write) a Decimal of the same text."""
    value = int(text)
    return value if value in INT64 else Decimal(text)


#: How deep JSON from outside may nest: far past any FHIR resource or message (about ten deep),
#: and well inside what ``orjson`` writes again (it reads 1,024 levels but writes 255), so what
#: is taken in can always be hashed, stored and quarantined.
MAX_DEPTH = 64


def extent(doc: Any) -> tuple[int, int]:
    """How deep ``doc``'s arrays and objects nest (stopping once past :data:`MAX_DEPTH`) and
    how many values it holds. Recursive, and scalars counted where they sit: about a quarter of
    the time of an explicit stack (every message is walked)."""
    deepest, values = 0, 0

    def walk(value: dict[str, Any] | list[Any], depth: int) -> None:
        nonlocal deepest, values
        values += 1
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return
        for v in value.values() if type(value) is dict else value:
            if type(v) is dict or type(v) is list:
                walk(v, depth + 1)
            else:
                values += 1

    if type(doc) is dict or type(doc) is list:
        walk(doc, 1)
    else:
        values = 1
    return deepest, values
