"""Fit a converted resource to the R4 element model, repairing supplier quirks on the way.

The R4 model classes of ``fhir.resources.R4B`` say, for every element, whether it exists,
whether it repeats and what type it has. Walking each resource against them lets one routine
make the repairs the corpus needs, wherever in a resource they occur, each recorded as a warning
naming the element:

* an element R4 does not define (a supplier typo, or a STU3 element R4 removed) is dropped;
* a list where one value belongs is unwrapped (one item), joined (texts) or cut to its first
  item; a single value where R4 repeats is wrapped (silently where the type's map lists the
  element as one that became a list in R4, since that is not a quirk);
* a dateTime/instant with a time is stored in UTC (``+00:00``, its fraction of a second kept):
  one with an offset is converted, one without is UK local time, converted; a missing seconds
  part is added; a date stays a date, and a date given with a time keeps the date;
* codes, ids and URIs lose surrounding spaces; empty strings are dropped;
* every ``Reference.reference`` goes through the caller's rewrite (deterministic scr ids), and
  every ``Coding.system`` through the STU3 -> R4 code-system table;
* a Reference keeps its ``display`` only when it names who or where (a person, a practitioner,
  an organisation, a place): a display naming a clinical item could name one that is withheld,
  or never sent, and the item itself says what it is.

Values of the wrong JSON type are left alone: R4 validation then says what is wrong and the
record goes to quarantine, because guessing would be worse.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from adapters.gpconnect.constants import RELATIVE_REFERENCE
from adapters.gpconnect.maps import GpcMaps, r4_model
from adapters.gpconnect.notes import Notes
from adapters.values import uk_clock_change, uk_local_to_utc

#: What a Reference's display may name: who and where, never what.
_WHO_AND_WHERE = frozenset(
    {
        "Patient",
        "RelatedPerson",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "Device",
    }
)
_TOKENS = frozenset({"Code", "Id", "Uri", "Url", "Canonical", "Oid", "UuidVersion"})
_TEXTS = frozenset({"String", "Markdown"})
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class Slot:
    """One R4 element: does it repeat, and its type (a primitive name or a model class)."""

    many: bool
    kind: Literal["primitive", "complex", "resource"]
    type_name: str
    model: Any = None


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _slot(annotation: Any) -> Slot:
    tp = _without_none(annotation)
    many = typing.get_origin(tp) is list
    if many:
        tp = _without_none(typing.get_args(tp)[0])
    if typing.get_origin(tp) is typing.Annotated:
        return Slot(many, "primitive", type(typing.get_args(tp)[-1]).__name__)
    if tp is bool:
        return Slot(many, "primitive", "Boolean")
    if hasattr(tp, "get_model_klass"):
        klass = tp.get_model_klass()
        kind: Literal["complex", "resource"] = (
            "resource" if tp.__name__ == "ResourceType" else "complex"
        )
        return Slot(many, kind, klass.__name__, klass)
    return Slot(many, "primitive", getattr(tp, "__name__", str(tp)))


@cache
def slots(model: Any) -> Mapping[str, Slot]:
    """The R4 elements of a model class by JSON name (``_x`` primitive extensions included)."""
    out: dict[str, Slot] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        extra = info.json_schema_extra
        if alias.startswith("_") or (isinstance(extra, dict) and extra.get("element_property")):
            out[alias] = _slot(info.annotation)
    return out


@dataclass
class Walk:
    """What the walk needs besides the resource: where to note repairs and how to rewrite."""

    notes: Notes
    maps: GpcMaps
    rewrite_ref: Callable[[str, str], str]


def _named_type(reference: Mapping[str, Any]) -> str | None:
    """The resource type a Reference names: from its (rewritten) reference, else its type."""
    found = RELATIVE_REFERENCE.fullmatch(str(reference.get("reference", "")))
    named = found.group(1) if found else reference.get("type")
    return named if isinstance(named, str) else None


def conform(resource: dict[str, Any], walk: Walk, path: str) -> dict[str, Any]:
    """The resource cut to R4's elements, with the repairs above; blocks an unknown type."""
    rtype = str(resource.get("resourceType"))
    model = r4_model(rtype)
    if model is None:
        walk.notes.block(path, f"{rtype!r} is not an R4 resource type")
        return resource
    return _object(resource, model, path, rtype, "", walk)


def _object(
    node: dict[str, Any], model: Any, path: str, rtype: str, rel: str, walk: Walk
) -> dict[str, Any]:
    table = slots(model)
    out: dict[str, Any] = {}
    for key, value in node.items():
        field = f"{path}.{key}"
        if key == "resourceType" and not rel:
            out[key] = value
            continue
        slot = table.get(key)
        if slot is None:
            walk.notes.warn(field, "not an R4 element; dropped")
            continue
        fitted = _fit(value, slot, field, rtype, f"{rel}.{key}" if rel else key, walk)
        if fitted is not None:
            out[key] = fitted
    name = model.__name__
    if name == "Reference":
        if isinstance(out.get("reference"), str):
            out["reference"] = walk.rewrite_ref(out["reference"], f"{path}.reference")
        if "display" in out and _named_type(out) not in _WHO_AND_WHERE:
            del out["display"]
    elif name == "Coding" and isinstance(out.get("system"), str):
        out["system"] = walk.maps.r4_system(out["system"], out.get("code")) or out["system"]
    return out


def _fit(value: Any, slot: Slot, field: str, rtype: str, rel: str, walk: Walk) -> Any:
    if slot.many:
        if not isinstance(value, list):
            if rel not in walk.maps.r4_lists.get(rtype, ()):
                walk.notes.warn(field, "a single value where R4 has a list; wrapped")
            value = [value]
        items = [x for v in value if (x := _one(v, slot, field, rtype, rel, walk)) is not None]
        return items or None
    if isinstance(value, list):
        value = _single(value, slot, field, walk)
        if value is None:
            return None
    return _one(value, slot, field, rtype, rel, walk)


def _single(value: list[Any], slot: Slot, field: str, walk: Walk) -> Any:
    items = [v for v in value if v not in (None, "", {}, [])]
    if not items:
        return None
    if len(items) == 1:
        walk.notes.warn(field, "a list where one value belongs; unwrapped")
        return items[0]
    if slot.type_name in _TEXTS and all(isinstance(v, str) for v in items):
        walk.notes.warn(field, f"a list of {len(items)} texts where one belongs; joined")
        return "\n".join(items)
    walk.notes.warn(field, f"a list of {len(items)} values where one belongs; kept the first")
    return items[0]


def _one(value: Any, slot: Slot, field: str, rtype: str, rel: str, walk: Walk) -> Any:
    if slot.kind == "resource":
        return conform(value, walk, field) if isinstance(value, dict) else value
    if slot.kind == "complex":
        if not isinstance(value, dict):
            return value
        return _object(value, slot.model, field, rtype, rel, walk) or None
    if not isinstance(value, str):
        return value
    if slot.type_name in ("DateTime", "Instant"):
        return _datetime(value, field, walk)
    if slot.type_name == "Date":
        return _date(value, field, walk)
    stripped = value.strip()
    if not stripped:
        walk.notes.warn(field, "empty value; dropped")
        return None
    if slot.type_name in _TOKENS and stripped != value:
        walk.notes.warn(field, "surrounding spaces removed")
        return stripped
    return value


def _datetime(value: str, field: str, walk: Walk) -> str:
    text = value.strip()
    m = _DATETIME.match(text)
    if not m:
        return text
    day, hour, minute, second, fraction, offset = m.groups()
    if offset is None:
        try:
            local = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
        except ValueError:
            return text
        walk.notes.warn(field, "time without a UTC offset read as UK local time, converted to UTC")
        change = uk_clock_change(local)
        if change is None or not change.startswith("did not"):
            if change:
                walk.notes.warn(field, f"{day} {hour}:{minute} {change}")
            utc = datetime.fromisoformat(uk_local_to_utc(local))
        else:
            walk.notes.warn(field, f"{day} {hour}:{minute} {change}; read as GMT")
            utc = local.replace(tzinfo=UTC)
    else:
        if second is None:
            walk.notes.warn(field, "time without seconds; ':00' added")
            second = "00"
        if offset != "Z" and ":" not in offset:
            walk.notes.warn(field, "UTC offset without a colon; colon added")
            offset = f"{offset[:3]}:{offset[3:]}"
        try:
            utc = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second}{offset}").astimezone(UTC)
        except (ValueError, OverflowError):
            return f"{day}T{hour}:{minute}:{second}{fraction or ''}{offset}"
    # ``%Y`` writes year 1 as ``1``; a dateTime's year has four digits.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}{fraction or ''}+00:00"


def _date(value: str, field: str, walk: Walk) -> str:
    text = value.strip()
    if _DATETIME.match(text):
        walk.notes.warn(field, "a date and time where R4 has a date; the time was dropped")
        return text[:10]
    return text
