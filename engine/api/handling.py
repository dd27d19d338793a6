"""What every FHIR route checks before it runs: the answer can be JSON, each single-valued
parameter comes once, and under ``Prefer: handling=strict`` nothing is asked that the route
would ignore.

A route's parameters are read from its own signature, once, so the list cannot drift from what
the route applies. In the default (lenient) handling an unknown parameter is ignored, as FHIR
allows, and left out of the self link; ``_summary`` is never ignored, as ignoring it would
send whole resources to a client that asked for none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, get_origin

from fastapi import Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from engine.api.errors import FhirError, Problem, echoed

#: Media ranges an answer in ``application/fhir+json`` satisfies.
_JSON_RANGES = frozenset({"application/fhir+json", "application/json", "application/*", "*/*"})
#: ``_format`` values meaning JSON (a ``+`` sent unencoded arrives as a space).
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
#: A media range the client refuses (``q=0``).
_REFUSED = re.compile(r";\s*q\s*=\s*0(\.0{0,3})?\s*(;|$)")


@dataclass(frozen=True, slots=True)
class _Declared:
    known: frozenset[str]
    repeatable: frozenset[str]


_DECLARED: dict[tuple[str, Callable[..., Any]], _Declared] = {}


def _query_fields(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    """Each query parameter of a route and its dependencies, and whether it may repeat."""
    for f in dependant.query_params:
        yield f.alias, get_origin(f.field_info.annotation) is list
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def _declared(route: APIRoute) -> _Declared:
    """Read once per route, keyed as Starlette compares routes (they are not hashable)."""
    key = (route.path, route.endpoint)
    found = _DECLARED.get(key)
    if found is None:
        fields = list(_query_fields(route.dependant))
        found = _DECLARED[key] = _Declared(
            frozenset(name for name, _ in fields),
            frozenset(name for name, repeats in fields if repeats),
        )
    return found


def _json_accepted(accept: str | None, format_: str | None) -> bool:
    """``_format`` overrides ``Accept`` (FHIR R4 http.html#mime-type); no ``Accept`` takes any."""
    if format_ is not None:
        return format_.split(";")[0].strip().replace(" ", "+").lower() in _JSON_FORMATS
    if not accept:
        return True
    return any(
        part.split(";")[0].strip().lower() in _JSON_RANGES and not _REFUSED.search(part)
        for part in accept.split(",")
    )


def _split(value: str, sep: str) -> list[str]:
    """``value`` split at each ``sep`` outside a quoted string, in one pass: it is read before
    the token is, on the event loop, and a regex backtracking over an unclosed quote took
    seconds for a 16 KB header."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def _preferences(headers: list[str]) -> Iterator[tuple[str, str]]:
    """Each preference of the ``Prefer`` header lines as (name, value), in order (RFC 7240
    section 2: comma-separated, parameters after ``;``, a value a token or a quoted string).
    Names are case-insensitive; so are the values scr reads (``handling``'s)."""
    for line in headers:
        for element in _split(line, ","):
            name, _, value = _split(element, ";")[0].partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            if name.strip():
                yield name.strip().lower(), value.lower()


def _strict(headers: list[str]) -> bool:
    """Whether the first ``handling`` preference says ``strict`` (RFC 7240: a preference
    given more than once counts as first given)."""
    handling = next((v for n, v in _preferences(headers) if n == "handling"), None)
    return handling == "strict"


async def fhir_request(
    request: Request,
    format_: Annotated[
        str | None, Query(alias="_format", description="json only; others answer 406")
    ] = None,
) -> None:
    """Refuse what the route cannot answer as asked: on the event loop, as it reads only the
    request (a sync dependency is a thread hop per request)."""
    if not _json_accepted(request.headers.get("accept"), format_):
        raise FhirError(
            406, Problem("not-supported", "Only application/fhir+json is supported", "_format")
        )
    declared = _declared(request.scope["route"])
    params = request.query_params
    counted = Counter(name for name, _ in params.multi_items())
    ignored = sorted(n for n in counted if n not in declared.known)
    # Never ignored: either asks for no resources, and ignoring it would send them all.
    count_only = [n for n in ignored if n == "_summary" or (n == "_count" and params[n] == "0")]
    if count_only or (ignored and _strict(request.headers.getlist("prefer"))):
        name = echoed((count_only or ignored)[0])
        raise FhirError(400, Problem("not-supported", f"{name} is not supported here", name))
    repeated = sorted(n for n, times in counted.items() if times > 1 and n in declared.known)
    once = [n for n in repeated if n not in declared.repeatable]
    if once:  # a known name: short, the route's own
        raise FhirError(400, Problem("invalid", f"{once[0]} may be given once", once[0]))
