"""GP Connect STU3 extensions to R4, by the rules in ``mappings/gpconnect/extensions.json``.

Runs on the STU3 resource before anything else, depth first, so an extension on a coding deep
inside a resource is handled like one on the resource itself. A rule either renames the
extension to its UK Core R4 equivalent (renaming, lifting or splitting off its sub-extensions:
the SNOMED CT description id becomes the core ``coding-sctdescid``), moves its value to an R4
element of the element that carried it, applies a named transform, or drops it with a warning.
An extension under a STU3 prefix with no rule is dropped with a warning; an unknown STU3
*modifier* extension blocks the record, because ignoring a modifier changes the meaning. Core
HL7 extensions are kept as they are.

What is dropped (each a warning): GP registration details, problem significance, links between
problem headers, the List clinical setting, medication quantity text (except as the unit of a
quantity that has none), the date a medication status changed, dosage-last-changed,
NHSCommunication parts R4 has no place for on a Practitioner, and any STU3 extension not in the
map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.gpconnect.maps import GpcMaps
from adapters.gpconnect.notes import Notes

PROFICIENCY = "http://hl7.org/fhir/StructureDefinition/patient-proficiency"
INTERPRETER = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"


def convert_extensions(node: Any, path: str, maps: GpcMaps, notes: Notes) -> None:
    """Convert every extension under ``node`` in place; ``contained`` resources are left out."""
    if isinstance(node, list):
        for item in node:
            convert_extensions(item, path, maps, notes)
        return
    if not isinstance(node, dict):
        return
    for key in ("extension", "modifierExtension"):
        found = node.pop(key, None)
        if not isinstance(found, list):
            if found is not None:
                node[key] = found
            continue
        kept = [
            done
            for ext in found
            if (done := _convert(ext, node, f"{path}.{key}", key != "extension", maps, notes))
        ]
        kept.extend(node.pop(key, []))
        if kept:
            node[key] = kept
    for key, value in list(node.items()):
        if key not in ("extension", "modifierExtension", "contained"):
            convert_extensions(value, f"{path}.{key}", maps, notes)


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _value_of(ext: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The ``value[x]`` of an extension as (JSON name, value)."""
    return next(((k, v) for k, v in ext.items() if k.startswith("value")), None)


def _convert(
    ext: Any, host: dict[str, Any], path: str, modifier: bool, maps: GpcMaps, notes: Notes
) -> dict[str, Any] | None:
    if not isinstance(ext, dict) or not isinstance(ext.get("url"), str):
        notes.warn(path, "an extension without a url; dropped")
        return None
    url = ext["url"].strip()
    rule = maps.extensions.get(url)
    if rule is None:
        if not url.startswith(maps.stu3_prefixes):
            kept = {**ext, "url": url}
            convert_extensions(kept, path, maps, notes)
            return kept
        if modifier:
            notes.block(path, f"modifier extension {url} has no R4 mapping")
        else:
            notes.warn(path, f"{_name(url)}: STU3 extension with no R4 mapping; dropped")
        return None
    if "drop" in rule:
        notes.warn(path, f"{_name(url)}: {rule['drop']}; dropped")
        return None
    if "transform" in rule:
        _TRANSFORMS[rule["transform"]](ext, host, f"{path}[{_name(url)}]", notes)
        return None
    if "element" in rule:
        found = _value_of(ext)
        if found is None:
            notes.warn(path, f"{_name(url)}: no value to move to {rule['element']}; dropped")
        else:
            value = _recode(found[1], rule.get("recode"), path, notes)
            _put(host, rule["element"], value, path, notes)
        return None
    return _rename(ext, url, rule, host, path, maps, notes)


def _rename(
    ext: dict[str, Any],
    url: str,
    rule: Mapping[str, Any],
    host: dict[str, Any],
    path: str,
    maps: GpcMaps,
    notes: Notes,
) -> dict[str, Any] | None:
    new = {k: v for k, v in ext.items() if k not in ("url", "extension")}
    if "sub" in rule:
        subs, lifted = _subs(ext, url, rule["sub"], host, path, notes)
        if lifted is not None:
            new[lifted[0]] = lifted[1]
        if subs:
            new["extension"] = subs
    elif "extension" in ext:
        new["extension"] = ext["extension"]
    if "to" not in rule or not (_value_of(new) or new.get("extension")):
        return None
    if "codeAs" in rule and isinstance(new.get("valueCode"), str):
        code = new.pop("valueCode").strip()
        coding = {"system": rule["codeAs"]["system"], "code": code}
        if display := rule["codeAs"].get("displays", {}).get(code):
            coding["display"] = display
        new["valueCodeableConcept"] = {"coding": [coding]}
    found = _value_of(new)
    if found is not None and "recode" in rule:
        new[found[0]] = _recode(found[1], rule["recode"], path, notes)
    new = {"url": rule["to"], **new}
    convert_extensions(new, path, maps, notes)
    return new


def _subs(
    ext: Mapping[str, Any],
    url: str,
    rules: Mapping[str, Any],
    host: dict[str, Any],
    path: str,
    notes: Notes,
) -> tuple[list[dict[str, Any]], tuple[str, Any] | None]:
    kept: list[dict[str, Any]] = []
    lifted: tuple[str, Any] | None = None
    for sub in ext.get("extension", []):
        name = str(sub.get("url", "")).strip() if isinstance(sub, dict) else ""
        rule = rules.get(name.lower())
        found = _value_of(sub) if isinstance(sub, dict) else None
        if rule is None or found is None:
            notes.warn(path, f"{_name(url)}.{name or '?'}: no R4 mapping; dropped")
        elif "drop" in rule:
            notes.warn(path, f"{_name(url)}.{name}: {rule['drop']}; dropped")
        elif "to" in rule:
            kept.append({**sub, "url": rule["to"]})
        elif "element" in rule:
            _put(host, rule["element"], found[1], path, notes)
        elif "split" in rule:
            host.setdefault("extension", []).append({"url": rule["split"], found[0]: found[1]})
        else:
            lifted = found
    return kept, lifted


def _recode(value: Any, recode: Mapping[str, Any] | None, path: str, notes: Notes) -> Any:
    """Prepend the R4 coding for a mapped source code; the source coding stays beside it."""
    if recode is None or not isinstance(value, dict):
        return value
    codings = [c for c in value.get("coding", []) if isinstance(c, dict)]
    source = next(
        (c for c in codings if str(c.get("system", "")).strip() == recode["system"]), None
    )
    if source is None:
        return value
    target = recode["codes"].get(str(source.get("code", "")).strip())
    if target is None:
        notes.warn(path, f"code {source.get('code')!r} has no R4 equivalent; kept as given")
        return value
    return {**value, "coding": [dict(target), *codings]}


def _put(host: dict[str, Any], dotted: str, value: Any, path: str, notes: Notes) -> None:
    """Set ``host.<dotted>``, creating parents; never overwrite what the source already set."""
    *parents, last = dotted.split(".")
    node = host
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            notes.warn(path, f"{dotted} is not an object here; extension value dropped")
            return
        node = child
    if last in node:
        notes.warn(path, f"{dotted} is already set; extension value dropped")
        return
    node[last] = value


def _communication(ext: Mapping[str, Any], host: dict[str, Any], path: str, notes: Notes) -> None:
    """NHSCommunication (retired in UK Core) -> the core R4 communication elements."""
    parts = [
        (str(s.get("url", "")).strip(), found[1])
        for s in ext.get("extension", [])
        if isinstance(s, dict) and (found := _value_of(s)) is not None
    ]
    values = dict(parts)
    language = values.get("language")
    if language is None:
        notes.warn(path, "NHSCommunication without a language; dropped")
        return
    if host.get("resourceType") != "Patient":
        host.setdefault("communication", []).append(language)
        for name, _ in parts:
            if name != "language":
                notes.warn(path, f"NHSCommunication.{name}: no R4 element here; dropped")
        return
    item: dict[str, Any] = {"language": language}
    if "preferred" in values:
        item["preferred"] = values["preferred"]
    proficiency = [
        {"url": "level" if name == "communicationProficiency" else "type", "valueCoding": coding}
        for name, value in parts
        if name in ("communicationProficiency", "modeOfCommunication")
        for coding in (value.get("coding", [])[:1] if isinstance(value, dict) else [])
    ]
    if proficiency:
        item["extension"] = [{"url": PROFICIENCY, "extension": proficiency}]
    if "interpreterRequired" in values:
        host.setdefault("extension", []).append(
            {"url": INTERPRETER, "valueBoolean": values["interpreterRequired"]}
        )
    host.setdefault("communication", []).append(item)


def _quantity_text(ext: Mapping[str, Any], host: dict[str, Any], path: str, notes: Notes) -> None:
    """Free-text quantity (retired in UK Core): the unit of a Quantity with a value and no unit,
    as EMIS writes ``28`` and ``capsule(s)`` (a leading copy of the value left out). Text with
    another count in it (``28 tablets`` against 56, ``2 x 28``) is no unit: 56 "28 tablets"
    would read as 56 packs of 28."""
    text = ext.get("valueString")
    words = text.split() if isinstance(text, str) else []
    if words and _same_number(words[0], host.get("value")):
        words = words[1:]
    if "value" not in host or "unit" in host or not words:
        notes.warn(path, "quantity text beside a unit, or with no value; dropped")
        return
    unit = " ".join(words)
    if any(ch.isdigit() for ch in unit):
        notes.warn(path, "quantity text with a count other than the value in it; dropped")
        return
    host["unit"] = unit


def _same_number(word: str, value: Any) -> bool:
    """Whether ``word`` is the number ``value`` is (``28`` is ``28.0``)."""
    try:
        return Decimal(word) == Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False


def _evidence(ext: Mapping[str, Any], host: dict[str, Any], path: str, notes: Notes) -> None:
    """A problem header's linked record -> ``Condition.evidence.detail`` (the R4 element for it)."""
    reference = ext.get("valueReference")
    if host.get("resourceType") != "Condition" or not isinstance(reference, dict):
        notes.warn(path, "a problem link without a reference, or not on a Condition; dropped")
        return
    host.setdefault("evidence", []).append({"detail": [reference]})


_TRANSFORMS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], str, Notes], None]] = {
    "communication": _communication,
    "evidence": _evidence,
    "quantityText": _quantity_text,
}
