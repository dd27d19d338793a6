"""Security labels scr puts in ``meta.security``; the policy layer reads exactly these codes.

Source confidentiality markers and the legally restricted categories each get their own scr
code, beside the standard HL7 confidentiality code ``R`` so that generic FHIR clients also see
that the resource is restricted.
"""

from __future__ import annotations

from typing import Any

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SCR_LABELS_PATH = "CodeSystem/scr-security-label"

#: Source marked the item confidential to the recording organisation (EMIS IsConfidential,
#: TPP visible-to, GP Connect NOPAT, council restricted).
SOURCE_CONFIDENTIAL = "source-confidential"
#: The whole person is restricted at source (EMIS SpineSensitive, council ``restricted``).
RESTRICTED_PERSON = "restricted-person"
#: GP Connect / GP2GP: not to be shown to the patient.
NOPAT = "NOPAT"

#: v3 ActCode as senders spell it: STU3's and R4's URIs (any scheme, a trailing slash), the OID.
_ACT_CODE_SPELLINGS = frozenset(
    {"hl7.org/fhir/v3/actcode", "terminology.hl7.org/codesystem/v3-actcode"}
)
_ACT_CODE_OID = "urn:oid:2.16.840.1.113883.5.4"

SENSITIVE_CATEGORIES = ("gender", "fertility", "termination", "sti")


def passes_on(code: str) -> bool:
    """Whether a record's scr label goes to the records that name it: what withholds an entry
    (its source's confidentiality, a legally restricted category), not what is about a person."""
    return code == SOURCE_CONFIDENTIAL or code.startswith("sensitive-")


def is_nopat(system: object, code: object) -> bool:
    """Whether a security Coding is NOPAT, however the sender spells v3 ActCode's system."""
    if code != NOPAT or not isinstance(system, str):
        return False
    folded = system.strip().lower().rstrip("/")
    rest = folded.removeprefix("http://").removeprefix("https://")
    return folded == _ACT_CODE_OID or rest in _ACT_CODE_SPELLINGS


def label_system(canonical_base: str) -> str:
    return canonical_base.rstrip("/") + "/" + SCR_LABELS_PATH


def column(resource: dict[str, Any], canonical_base: str) -> str:
    """The resource's scr label codes, as the store's ``labels`` column holds them."""
    return " ".join(
        sorted(
            s["code"]
            for s in resource.get("meta", {}).get("security", [])
            if str(s.get("system", "")).startswith(canonical_base)
        )
    )


def scr_label(code: str, canonical_base: str) -> dict[str, str]:
    return {"system": label_system(canonical_base), "code": code}


def restricted() -> dict[str, str]:
    return {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}


def add_labels(resource: dict[str, Any], labels: list[dict[str, str]]) -> None:
    """Add labels to ``meta.security`` once each, keeping any the source already set, in one
    order (by system and code) however and whenever they were added: a record labelled when
    read and the same record labelled later store the same body."""
    if not labels:
        return
    security: list[dict[str, Any]] = resource.setdefault("meta", {}).setdefault("security", [])
    seen = {(s.get("system"), s.get("code")) for s in security}
    for label in labels:
        key = (label["system"], label["code"])
        if key not in seen:
            security.append(label)
            seen.add(key)
    security.sort(key=lambda s: (str(s.get("system", "")), str(s.get("code", ""))))


def confidential_labels(canonical_base: str, *codes: str) -> list[dict[str, str]]:
    """The labels for an item the source marked confidential (``codes`` say how)."""
    return [restricted(), *(scr_label(c, canonical_base) for c in codes)]


def codings(node: Any) -> list[dict[str, Any]]:
    """Every Coding anywhere in a resource, so that a sensitive code is found wherever it sits.

    Filled into one list by plain recursion: this runs on every resource an ingest takes in,
    and a generator per element cost twice as much.
    """
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        _collect(node, found)
    elif isinstance(node, list):
        _collect_items(node, found)
    return found


def _collect(node: dict[str, Any], found: list[dict[str, Any]]) -> None:
    if "system" in node and isinstance(node.get("code"), str):
        found.append(node)
    for key, value in node.items():
        if key == "meta":
            continue
        if isinstance(value, dict):
            _collect(value, found)
        elif isinstance(value, list):
            _collect_items(value, found)


def _collect_items(items: list[Any], found: list[dict[str, Any]]) -> None:
    for item in items:
        if isinstance(item, dict):
            _collect(item, found)
        elif isinstance(item, list):
            _collect_items(item, found)


def label_codes(resource: dict[str, Any]) -> set[str]:
    """The scr label codes already on a resource."""
    return {
        s["code"]
        for s in resource.get("meta", {}).get("security", [])
        if str(s.get("system", "")).endswith(SCR_LABELS_PATH)
    }
