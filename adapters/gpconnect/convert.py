"""``map()``: one GP Connect STU3 entry record -> one R4 resource, as a pure function of it.

Steps, in order: extensions (``extensions.py``), the type's restructuring (``resources.py``,
mostly driven by ``mappings/gpconnect/resources.json``), contained resources the same way, then
the walk against the R4 model (``shape.py``) that repairs quirks and rewrites every reference
and code system, then scr's own touches:

* ``id`` = ``record.ref.resource_id(<R4 type>)``; a reference ``Type/id`` (or a bundle
  ``fullUrl``) becomes ``<R4 type>/<SourceRef("gpconnect", org, Type, id).resource_id(R4 type)>``,
  so references resolve to the ids the targets get; ``#contained`` references stay;
* an identifier ``<canonical base>Id/source-record`` = the source record key, where the R4 type
  has ``identifier`` (QuestionnaireResponse has a single one: a source identifier is kept);
* ``meta`` keeps only ``security`` and ``tag``; STU3 profiles, ``versionId`` and ``lastUpdated``
  are dropped and the UK Core profile set (the pipeline sets ``source`` and ``lastUpdated``);
* ``NOPAT`` in ``meta.security``, its own or a contained resource's, adds scr's confidential
  labels;
* a statement or request carries the bundle's Medication it names inside it
  (:func:`contain_drug`).

A Patient whose NHS number is missing or fails modulus 11 is an issue (quarantine), and so is
an entry whose ``subject`` (or ``patient``) is another Patient than the bundle's (by id, in a
relative or absolute reference) or gives another NHS number. A Binary
yields no resource, only a warning: scr keeps the DocumentReference, not the attachment. An
OperationOutcome inside a bundle (a clinical area the practice has switched off) becomes
warnings. Any other type with no mapping is an issue. What still fails R4 validation after the
repairs is an issue naming the element.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters import labels
from adapters.base import Issue, MapContext, MapOutcome, Mapped, SourceRecord, SourceRef, fhirpath
from adapters.gpconnect.constants import NHS_NUMBER, RELATIVE_REFERENCE, SYSTEM, named
from adapters.gpconnect.extensions import convert_extensions
from adapters.gpconnect.links import security
from adapters.gpconnect.maps import GpcMaps, r4_model, shipped
from adapters.gpconnect.notes import Notes
from adapters.gpconnect.resources import restructure
from adapters.gpconnect.shape import Walk, conform, slots
from adapters.values import ValueProblem, nhs_number

SOURCE_RECORD = "Id/source-record"
#: The elements by which an entry names the patient it is about.
_PATIENT_ELEMENTS = ("subject", "patient")


def map_record(record: SourceRecord, ctx: MapContext) -> MapOutcome:
    if record.read_issues:
        return MapOutcome(issues=record.read_issues)
    maps = shipped()
    raw = record.fields.get("resource")
    if not isinstance(raw, dict):
        return MapOutcome(issues=(Issue("resource", "the record holds no resource"),))
    notes = Notes()
    for field, reason in record.fields.get("_read_warnings", ()):
        notes.warn(field, reason)
    stu3 = str(raw.get("resourceType"))
    if stu3 in maps.skip:
        return MapOutcome(warnings=(*notes.warnings, *_skipped(raw, stu3, maps)))
    spec = maps.resources.get(stu3)
    if spec is None:
        return MapOutcome(
            issues=(Issue("resourceType", f"GP Connect type {stu3!r} has no R4 mapping"),),
            warnings=notes.warnings,
        )
    res = copy.deepcopy(raw)
    contain_drug(res, record.fields.get("_medication"))
    if stu3 == "Patient" and (problem := _nhs_number(res, notes)) is not None:
        return MapOutcome(issues=(problem,), warnings=notes.warnings)
    if spec.patient and (problem := _another_patient(res, record)) is not None:
        return MapOutcome(issues=(problem,), warnings=notes.warnings)
    walk = Walk(
        notes, maps, _Refs(record.ref.org, record.fields.get("_full_urls", {}), maps, notes)
    )
    res = conform(_convert(res, maps, notes, stu3), walk, stu3)
    if notes.problems:
        return MapOutcome(issues=notes.problems, warnings=notes.warnings)
    res = _finish(res, record, spec.target, spec.profile, ctx, _takes_nopat(record))
    issues = _validate(res)
    if issues:
        return MapOutcome(issues=issues, warnings=notes.warnings)
    patient = (
        SourceRef(SYSTEM, record.ref.org, "Patient", str(record.fields.get("_patient_id"))).key
        if spec.patient
        else None
    )
    return MapOutcome(resources=(Mapped(res, patient),), warnings=notes.warnings)


#: The id a drug carried inside its statement or request takes (``#medication``).
CONTAINED_DRUG = "medication"


def contain_drug(res: dict[str, Any], drug: Any) -> None:
    """A statement or request carries the Medication it names (read from the bundle) inside
    it, so the drug goes wherever the record of taking it goes, under its decision and
    labels, and nowhere else; a contained resource keeps no ``meta`` but its labels."""
    contained = res.get("contained") or []
    if not isinstance(drug, dict) or not isinstance(contained, list):
        return
    taken = {c.get("id") for c in contained if isinstance(c, dict)}
    if CONTAINED_DRUG in taken:
        return
    inline = {k: v for k, v in drug.items() if k != "meta"} | {"id": CONTAINED_DRUG}
    if isinstance(drug.get("meta"), dict) and drug["meta"].get("security"):
        inline["meta"] = {"security": drug["meta"]["security"]}
    res["contained"] = [*contained, inline]
    ref = res.get("medicationReference")
    shown = ref.get("display") if isinstance(ref, dict) else None
    res["medicationReference"] = {"reference": f"#{CONTAINED_DRUG}"} | (
        {"display": shown} if isinstance(shown, str) else {}
    )


def _convert(res: dict[str, Any], maps: GpcMaps, notes: Notes, path: str) -> dict[str, Any]:
    """Extensions, then restructuring, of a resource and its contained resources (STU3 -> R4)."""
    stu3 = str(res.get("resourceType"))
    spec = maps.resources.get(stu3)
    if spec is None:
        notes.block(path, f"GP Connect type {stu3!r} has no R4 mapping")
        return res
    meta = res.pop("meta", None)
    contained = res.pop("contained", None)
    convert_extensions(res, path, maps, notes)
    restructure(res, spec, maps, notes, path)
    if isinstance(contained, list):
        res["contained"] = [
            _convert(c, maps, notes, f"{path}.contained") for c in contained if isinstance(c, dict)
        ]
    if isinstance(meta, dict):
        kept = {k: meta[k] for k in ("security", "tag") if meta.get(k)}
        if kept:
            res["meta"] = kept
    return res


class _Refs:
    """Rewrites a STU3 reference to the deterministic id its target gets in scr."""

    def __init__(self, org: str, full_urls: Mapping[str, Any], maps: GpcMaps, notes: Notes) -> None:
        self.org = org
        self.full_urls = full_urls
        self.maps = maps
        self.notes = notes

    def __call__(self, reference: str, field: str) -> str:
        if reference.startswith("#"):
            return reference
        target = self.full_urls.get(reference)
        if target is not None:
            stu3_type, row_id = str(target[0]), str(target[1])
        elif m := RELATIVE_REFERENCE.fullmatch(reference):
            stu3_type, row_id = m.group(1), m.group(2)
        else:
            if reference.startswith("urn:"):
                self.notes.warn(field, f"{reference!r} is not in the bundle; kept as given")
            return reference
        r4 = self.maps.r4_type(stu3_type)
        if r4_model(r4) is None:
            self.notes.warn(field, f"{reference!r} names no FHIR resource type; kept as given")
            return reference
        return f"{r4}/{SourceRef(SYSTEM, self.org, stu3_type, row_id).resource_id(r4)}"


def _nhs_number(patient: dict[str, Any], notes: Notes) -> Issue | None:
    """The Patient's NHS number must pass modulus 11; spaces people type are removed."""
    identifiers = patient.get("identifier")
    found = [
        i
        for i in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(i, dict) and str(i.get("system", "")).strip() == NHS_NUMBER
    ]
    if not found:
        return Issue("Patient.identifier", "no NHS number: GP Connect always sends one")
    raw = str(found[0].get("value", ""))
    try:
        digits = nhs_number(raw)
    except ValueProblem as exc:
        return Issue("Patient.identifier", str(exc))
    if digits != raw:
        found[0]["value"] = digits
        notes.warn("Patient.identifier", "NHS number written with spaces; spaces removed")
    return None


def _another_patient(res: Mapping[str, Any], record: SourceRecord) -> Issue | None:
    """An entry whose patient (``subject``, or ``patient`` where the type names it so) is
    another Patient than the bundle's: filed under the bundle's, it would be in one person's
    record while saying it is about another. That is a reference, relative or absolute, to
    another Patient id, a fullUrl no entry of the bundle has, or an NHS number (the
    reference's ``identifier``) not the bundle's."""
    full_urls = record.fields.get("_full_urls", {})
    ours = "".join(str(record.fields.get("_nhs_number") or "").split())
    for element in _PATIENT_ELEMENTS:
        ref = res.get(element)
        if not isinstance(ref, dict):
            continue
        field = f"{res.get('resourceType')}.{element}"
        ident = ref.get("identifier")
        if (
            isinstance(ident, dict)
            and str(ident.get("system", "")).strip() == NHS_NUMBER
            and "".join(str(ident.get("value", "")).split()) != ours
        ):
            return Issue(
                f"{field}.identifier",
                "another NHS number than that of the Patient whose record this bundle is",
            )
        reference = ref.get("reference")
        if not isinstance(reference, str):
            continue
        target = full_urls.get(reference) or named(reference)
        if target is None and reference.startswith("urn:"):
            # A fullUrl no entry has: about someone this bundle does not hold, not its Patient.
            return Issue(field, f"{reference!r} names no entry of this bundle")
        if (
            target is not None
            and target[0] == "Patient"
            and target[1] != record.fields["_patient_id"]
        ):
            return Issue(field, f"{reference!r} is not the Patient whose record this bundle is")
    return None


def _takes_nopat(record: SourceRecord) -> bool:
    """Whether something it names or belongs to is NOPAT (``links.py``)."""
    return any(labels.is_nopat(s, c) for s, c in record.fields.get("_pointed_codings", ()))


def _finish(
    res: dict[str, Any],
    record: SourceRecord,
    rtype: str,
    profile: str | None,
    ctx: MapContext,
    nopat: bool,
) -> dict[str, Any]:
    """scr's id, UK Core profile, source-record identifier and NOPAT labels (its own or a
    contained resource's, or, when ``nopat``, taken from what it names or belongs to); R4
    element order."""
    model = get_fhir_model_class(rtype)
    nopat = nopat or any(labels.is_nopat(s.get("system"), s.get("code")) for s in security(res))
    meta = res.pop("meta", {})
    if profile:
        meta["profile"] = [profile]
    res |= {"id": record.ref.resource_id(rtype), "meta": meta}
    if nopat:
        labels.add_labels(res, labels.confidential_labels(ctx.canonical_base, labels.NOPAT))
    slot = slots(model).get("identifier")
    source = {
        "system": ctx.canonical_base.rstrip("/") + "/" + SOURCE_RECORD,
        "value": record.ref.key,
    }
    if slot is not None and slot.many:
        res["identifier"] = [*res.get("identifier", []), source]
    elif slot is not None and "identifier" not in res:
        res["identifier"] = source
    order = ["resourceType", *model.elements_sequence()]
    return {k: res[k] for k in order if k in res} | res


def _validate(res: dict[str, Any]) -> tuple[Issue, ...]:
    rtype = res["resourceType"]
    try:
        get_fhir_model_class(rtype).model_validate(res)
    except ValidationError as exc:
        return tuple(
            Issue(fhirpath(rtype, err["loc"]), f"not valid R4: {err['msg']}")
            for err in exc.errors()
        )
    return ()


def _skipped(raw: Mapping[str, Any], stu3: str, maps: GpcMaps) -> tuple[Issue, ...]:
    reason = maps.skip[stu3]
    if stu3 != "OperationOutcome":
        return (Issue(stu3, reason),)
    details = [
        " ".join(
            str(x)
            for x in (
                i.get("severity"),
                i.get("code"),
                *(c.get("code") for c in i.get("details", {}).get("coding", [])),
                i.get("diagnostics"),
            )
            if x
        )
        for i in raw.get("issue", [])
        if isinstance(i, dict)
    ]
    return tuple(Issue(stu3, f"{reason}: {d}") for d in details) or (Issue(stu3, reason),)
