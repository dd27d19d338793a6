"""The reviewed conversion data in ``mappings/gpconnect/*.json``, loaded once and checked.

Everything a clinical safety officer may want to review without reading Python lives in those
files: the R4 type and UK Core profile per STU3 type, element renames, status value maps, the
code systems that moved, what each GP Connect extension becomes, and the List section titles.
Each file is checked against ``mappings/schema/gpconnect-map.schema.json`` when loaded; the
files are merged and a key defined in two files is an error rather than a silent override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from adapters.codes import MAPPINGS_DIR
from adapters.schema import MapFileError, check

GPCONNECT_DIR = MAPPINGS_DIR / "gpconnect"
_SECTIONS = ("systems", "resources", "skip", "extensions", "listSections")


def r4_model(resource_type: str) -> Any | None:
    """The R4 model class of a resource type, or None when R4 has no such type."""
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class ResourceSpec:
    """How one STU3 resource type becomes R4 (the declarative part)."""

    target: str
    profile: str | None
    patient: bool
    rename: Mapping[str, str]
    values: Mapping[str, Mapping[str, str | None]]
    concepts: Mapping[str, str]
    lists: frozenset[str]
    defaults: Mapping[str, Any]
    add: Mapping[str, list[Any]]


@dataclass(frozen=True)
class GpcMaps:
    systems: Mapping[str, Any]
    stu3_prefixes: tuple[str, ...]
    resources: Mapping[str, ResourceSpec]
    skip: Mapping[str, str]
    extensions: Mapping[str, Mapping[str, Any]]
    list_sections: Mapping[str, str]
    #: Per R4 type: elements that repeat in R4 but not in STU3 (wrapping them is no quirk).
    r4_lists: Mapping[str, frozenset[str]]

    def r4_system(self, system: str, code: Any) -> str | None:
        """The R4 URI for a STU3 code system (for this code), or None when it is unchanged."""
        rule = self.systems.get(system)
        if isinstance(rule, str):
            return rule
        if isinstance(rule, dict) and code in rule["codes"]:
            return str(rule["system"])
        return None

    def r4_type(self, stu3_type: str) -> str:
        spec = self.resources.get(stu3_type)
        return spec.target if spec else stu3_type


def _spec(doc: Mapping[str, Any]) -> ResourceSpec:
    return ResourceSpec(
        target=doc["target"],
        profile=doc.get("profile"),
        patient=doc["patient"],
        rename=doc.get("rename", {}),
        values=doc.get("values", {}),
        concepts=doc.get("concepts", {}),
        lists=frozenset(doc.get("lists", ())),
        defaults=doc.get("defaults", {}),
        add=doc.get("add", {}),
    )


def load(root: Path = GPCONNECT_DIR) -> GpcMaps:
    merged: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    prefixes: list[str] = []
    for path in sorted(root.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        check("gpconnect-map", doc, str(path))
        prefixes.extend(doc.get("stu3ExtensionPrefixes", ()))
        for name in _SECTIONS:
            for key, value in doc.get(name, {}).items():
                if key in merged[name]:
                    raise MapFileError(f"{path}: {name} key {key!r} is already defined")
                merged[name][key] = value
    resources = {k: _spec(v) for k, v in merged["resources"].items()}
    for name, spec in resources.items():
        if r4_model(spec.target) is None:
            raise MapFileError(f"{root}: {name} maps to {spec.target!r}, not an R4 resource type")
    r4_lists: dict[str, frozenset[str]] = {}
    for spec in resources.values():
        r4_lists[spec.target] = r4_lists.get(spec.target, frozenset()) | spec.lists
    return GpcMaps(
        systems=merged["systems"],
        stu3_prefixes=tuple(prefixes),
        resources=resources,
        skip=merged["skip"],
        extensions=merged["extensions"],
        list_sections=merged["listSections"],
        r4_lists=r4_lists,
    )


@cache
def shipped() -> GpcMaps:
    """The maps shipped in ``mappings/gpconnect`` (loaded on first use)."""
    return load()
