"""FHIR R4 validation on the way in (fhir.resources R4B), once; never on the read path."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from fhir_core.utils import is_list_type
from pydantic import BaseModel, ValidationError

from adapters.base import Issue, fhirpath
from adapters.codes import MAPPINGS_DIR
from engine.canonical import exact
from engine.narrative import unsafe_narratives

#: The R4 list, not fhir.resources' R4B models: R4B dropped R4 types (``MedicinalProduct``) and
#: added its own (``SubscriptionTopic``), and a client of this R4 server names R4 types.
_R4_TYPES = frozenset(
    orjson.loads((MAPPINGS_DIR / "fhir" / "r4-resource-types.json").read_bytes())["resourceTypes"]
)
#: Elements that carry the resource's own identity (its source record, its version): they
#: never recur, so remembering them would only push out the elements that do.
_OWN = frozenset({"meta", "identifier"})
#: A UUID as FHIR writes one (``urn:uuid:`` references, a message's ids): lower-case hex.
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuids_renamed(json: bytes) -> bytes:
    """``json`` with each distinct UUID renamed by its order of first appearance.

    Whether an element is valid R4 does not depend on which UUIDs it holds: every UUID has the
    same length and the same classes of character in the same places, and no R4 type's
    pattern tells one hex digit from another (a type that wants digits, a date or a decimal,
    refuses a UUID's hyphens whatever its digits). Only where the same one recurs could
    matter, and renaming keeps that. So a message's references, a new ``urn:uuid:`` each
    time, share one key for each shape.
    """
    names: dict[bytes, bytes] = {}

    def renamed(found: re.Match[bytes]) -> bytes:
        uuid = found.group()
        if uuid not in names:
            names[uuid] = b"%08x-0000-0000-0000-000000000000" % len(names)
        return names[uuid]

    return _UUID.sub(renamed, json)


class ElementMemo:
    """The R4B element models one ingest run (or one server, for transfers) has built, by
    element class and exact JSON (its UUIDs renamed: :func:`_uuids_renamed`).

    A run meets the same elements thousands of times: a person's ``subject`` reference, a
    drug's CodeableConcept, the practice as performer. R4B elements are validated without
    reference to their parent (no R4B model has a validator that reads its parent), so the
    model built for one copy is what the library would build for every equal copy, and
    handing it over in place of the dict lets the resource's own validation accept it
    without building it again. The model handed over may hold other UUIDs than the dict it
    stands in for: it stands in for the verdict alone, and :func:`validate_resource` keeps
    nothing of what it builds but the issues. Only elements that validated are remembered;
    a bad one stays a dict, so the resource's validation reports it at its full path. Least
    recently used entries go first, keeping memory flat however long the run.

    ``nested`` applies the same to each element's own elements (a Composition section's code
    and narrative, whose references differ from message to message). One memo may serve many
    threads: a lock guards the table, and validation runs outside it.
    """

    def __init__(self, capacity: int = 2048, nested: bool = False) -> None:
        self.capacity = capacity
        self.nested = nested
        self._models: OrderedDict[tuple[type[BaseModel], bytes], BaseModel] = OrderedDict()
        self._lock = threading.Lock()

    def element(self, cls: type[BaseModel], value: Any) -> Any:
        """The validated model for ``value``, or ``value`` itself when it is not valid."""
        if not isinstance(value, dict):
            return value
        try:
            key = (cls, _uuids_renamed(orjson.dumps(value, default=exact)))
        except orjson.JSONEncodeError:  # not JSON (a Decimal, a 65-bit int): the model judges it
            return value
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        try:
            model = cls.model_validate(_with_models(cls, value, self) if self.nested else value)
        except (ValidationError, TypeError):  # fhir.resources raises TypeError on some shapes
            return value
        with self._lock:
            self._models[key] = model
            if len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return model

    def __len__(self) -> int:
        return len(self._models)


def _element_class(annotation: Any) -> type[BaseModel] | None:
    """The element model a field holds (``CodeableConceptType`` → ``CodeableConcept``)."""
    klass = getattr(annotation, "get_model_klass", None)
    if klass is not None:
        found: type[BaseModel] = klass()
        return found
    for arg in getattr(annotation, "__args__", ()):
        inner = _element_class(arg)
        if inner is not None:
            return inner
    return None


@cache
def _element_fields(model: type[BaseModel]) -> dict[str, tuple[type[BaseModel], bool]]:
    """A resource's complex element fields by JSON name, each with whether it repeats.

    Contained resources are left to the resource's own validation.
    """
    fields: dict[str, tuple[type[BaseModel], bool]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        element = _element_class(info.annotation)
        if element is None or key in _OWN or issubclass(element, Resource):
            continue
        fields[key] = (element, is_list_type(info))
    return fields


def _with_models(
    model: type[BaseModel], resource: dict[str, Any], memo: ElementMemo
) -> dict[str, Any]:
    fields = _element_fields(model)
    out: dict[str, Any] = {}
    for key, value in resource.items():
        field = fields.get(key)
        if field is not None:
            element, repeats = field
            if not repeats:
                value = memo.element(element, value)
            elif isinstance(value, list):
                value = [memo.element(element, item) for item in value]
        out[key] = value
    return out


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is an R4 resource type (not a data type, not a typo, not R4B-only)."""
    return name in _R4_TYPES


def validate_resource(resource: dict[str, Any], memo: ElementMemo | None = None) -> list[Issue]:
    """Every problem the R4 model finds, each naming its element path (``Observation.code``).

    With ``memo`` (an ingest run's, or the transfer receipt's), elements already built for an
    equal copy are reused.
    """
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return [Issue("resourceType", "missing resourceType")]
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        return [Issue("resourceType", f"{rtype!r} is not an R4 resource type")]
    try:
        data = resource if memo is None else _with_models(model, resource, memo)
        # Constructing validates exactly as ``model_validate`` does, one call layer cheaper
        # (about 6% of the validation time).
        model(**data)
    except ValidationError as exc:
        return [
            Issue(fhirpath(rtype, err["loc"]), f"not valid R4: {err['msg']}")
            for err in exc.errors()
        ]
    except (TypeError, AttributeError) as exc:
        # fhir.resources raises these, not a ValidationError, for some values of the wrong
        # JSON type (a number where a url goes); the record is still refused, by name.
        return [Issue(_unreadable(model, rtype, resource), f"not valid R4: {exc}")]
    return []


def narrative_issues(resource: dict[str, Any]) -> list[Issue]:
    """Each narrative R4 does not allow (txt-1: script, an event handler, a frame), which
    fhir.resources lets through: stored as it came, it would be served to clients that render
    it."""
    rtype = str(resource.get("resourceType"))
    return [Issue(path, f"narrative: {why}") for path, why in unsafe_narratives(resource, rtype)]


def _unreadable(model: type[BaseModel], rtype: str, resource: dict[str, Any]) -> str:
    """The element whose value the R4 model could not read, tried one element at a time."""
    for key, value in resource.items():
        if key == "resourceType":
            continue
        try:
            model.model_validate({key: value})
        except (TypeError, AttributeError):
            return f"{rtype}.{key}"
        except ValidationError:
            continue
    return rtype
