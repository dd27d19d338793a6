"""STU3 -> R4 restructuring per resource type.

Most of it is the table in ``mappings/gpconnect/resources.json`` (renames, status value maps,
codes that became CodeableConcepts, defaults R4 requires, values added); this module applies
those, after the handful of changes a table cannot say, each a small function here:

* MedicationStatement.taken -> status ``not-taken``; STU3 ``Dosage.dose[x]``/``rate[x]`` ->
  R4 ``Dosage.doseAndRate``;
* ``requester.agent`` (MedicationRequest, ReferralRequest, ProcedureRequest) -> ``requester``;
* Immunization: ``notGiven`` -> status ``not-done``, ``practitioner`` -> ``performer``,
  ``explanation`` -> ``reasonCode``/``statusReason`` (``notGivenReason``, the spelling of the
  GP Connect example, read as ``reasonNotGiven``), ``vaccinationProtocol`` -> ``protocolApplied``;
* ProcedureRequest: ``occurrence`` written without its type (the GP Connect diary-entry example)
  -> ``occurrenceDateTime`` (a text) or ``occurrencePeriod`` (an object with start or end);
* Observation: ``comment`` -> ``note``, ``related`` -> ``hasMember``/``derivedFrom``;
* DiagnosticReport.performer.actor -> ``performer``;
* ReferralRequest: ``description`` -> ``note``, ``serviceRequested`` -> ``code``;
* DocumentReference: ``created`` -> ``content.attachment.creation``, ``context.related.ref`` ->
  ``context.related``;
* QuestionnaireResponse: ``questionnaire`` reference -> canonical URL, items without a
  ``linkId`` given one from their position (a recorded repair);
* List: a missing title is taken from the GP Connect section code.

Anything lost on the way is a warning naming the element.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from adapters.gpconnect.maps import GpcMaps, ResourceSpec
from adapters.gpconnect.notes import Notes

SNOMED = "http://snomed.info/sct"
_DOSE = ("doseQuantity", "doseRange")
_RATE = ("rateRatio", "rateRange", "rateQuantity")
_RELATED = {"has-member": "hasMember", "derived-from": "derivedFrom"}

Special = Callable[[dict[str, Any], Notes, str, GpcMaps], None]


def restructure(
    res: dict[str, Any], spec: ResourceSpec, maps: GpcMaps, notes: Notes, path: str
) -> None:
    """Turn one STU3 resource (extensions already converted) into R4 shape, in place."""
    special = _SPECIAL.get(str(res.get("resourceType")))
    if special is not None:
        special(res, notes, path, maps)
    for element, table in spec.values.items():
        value = res.get(element)
        if isinstance(value, str) and value in table:
            if table[value] is None:
                del res[element]
                notes.warn(f"{path}.{element}", f"{value!r} has no R4 equivalent; dropped")
            else:
                res[element] = table[value]
    for old, new in spec.rename.items():
        _rename(res, old.split("."), new.rsplit(".", 1)[-1], notes, path)
    for element, system in spec.concepts.items():
        if isinstance(res.get(element), str):
            res[element] = {"coding": [{"system": system, "code": res[element].strip()}]}
    for element, value in spec.defaults.items():
        if element not in res:
            res[element] = copy.deepcopy(value)
            notes.warn(f"{path}.{element}", "required by R4 but absent; set to the mapped default")
    for element, items in spec.add.items():
        present = res.get(element, [])
        present = present if isinstance(present, list) else [present]
        res[element] = present + [copy.deepcopy(i) for i in items if i not in present]
    res["resourceType"] = spec.target


def _rename(node: Any, parts: list[str], new: str, notes: Notes, path: str) -> None:
    if isinstance(node, list):
        for item in node:
            _rename(item, parts, new, notes, path)
        return
    if not isinstance(node, dict) or parts[0] not in node:
        return
    if len(parts) > 1:
        _rename(node[parts[0]], parts[1:], new, notes, f"{path}.{parts[0]}")
    elif new in node:
        notes.warn(
            f"{path}.{parts[0]}", f"both {parts[0]} and {new} are present; {parts[0]} dropped"
        )
        del node[parts[0]]
    else:
        node[new] = node.pop(parts[0])


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _dosages(res: dict[str, Any], key: str) -> None:
    for dosage in _as_list(res.get(key)):
        if not isinstance(dosage, dict):
            continue
        entry = {k: dosage.pop(k) for k in (*_DOSE, *_RATE) if k in dosage}
        if entry:
            dosage.setdefault("doseAndRate", []).append(entry)


def _requester(res: dict[str, Any], notes: Notes, path: str) -> None:
    requester = res.get("requester")
    if not isinstance(requester, dict) or not ({"agent", "onBehalfOf"} & requester.keys()):
        return
    if "onBehalfOf" in requester:
        notes.warn(f"{path}.requester.onBehalfOf", "R4 has one requester reference; dropped")
    if isinstance(requester.get("agent"), dict):
        res["requester"] = requester["agent"]
    else:
        del res["requester"]


def _note(res: dict[str, Any], text: Any) -> None:
    if isinstance(text, str) and text.strip():
        res["note"] = [{"text": text}, *_as_list(res.get("note"))]


def _medication_statement(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    taken = res.pop("taken", None)
    if taken == "n":
        notes.warn(
            f"{path}.taken", f"taken 'n' becomes status 'not-taken' (was {res.get('status')!r})"
        )
        res["status"] = "not-taken"
    elif taken == "na":
        notes.warn(f"{path}.taken", "taken 'na' (not applicable) has no R4 element; dropped")
    _dosages(res, "dosage")


def _medication_request(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    _requester(res, notes, path)
    _dosages(res, "dosageInstruction")


def _procedure_request(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    _requester(res, notes, path)
    occurrence = res.get("occurrence")
    if isinstance(occurrence, str):
        suffix = "DateTime"
    elif isinstance(occurrence, dict) and {"start", "end"} & occurrence.keys():
        suffix = "Period"
    else:
        return
    notes.warn(f"{path}.occurrence", f"written without its type; read as occurrence{suffix}")
    _rename(res, ["occurrence"], f"occurrence{suffix}", notes, path)


def _referral(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    _requester(res, notes, path)
    _note(res, res.pop("description", None))
    services = _as_list(res.pop("serviceRequested", None))
    if services:
        res["code"] = services[0]
    if len(services) > 1:
        notes.warn(f"{path}.serviceRequested", "R4 has one code per request; kept the first")


def _immunization(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    if res.pop("notGiven", None) is True:
        res["status"] = "not-done"
    performers = [
        {k: v for k, v in (("function", p.get("role")), ("actor", p.get("actor"))) if v}
        for p in _as_list(res.pop("practitioner", None))
        if isinstance(p, dict)
    ]
    if performers:
        res["performer"] = performers
    explanation = res.pop("explanation", None)
    if isinstance(explanation, dict):
        if "reason" in explanation:
            res["reasonCode"] = explanation.pop("reason")
        if "notGivenReason" in explanation and "reasonNotGiven" not in explanation:
            notes.warn(
                f"{path}.explanation.notGivenReason", "a supplier spelling; read as reasonNotGiven"
            )
            explanation["reasonNotGiven"] = explanation.pop("notGivenReason")
        not_given = _as_list(explanation.pop("reasonNotGiven", None))
        if not_given:
            res["statusReason"] = not_given[0]
        if len(not_given) > 1:
            notes.warn(f"{path}.explanation.reasonNotGiven", "R4 has one reason; kept the first")
        for key in explanation:
            notes.warn(f"{path}.explanation.{key}", "not an element of STU3 or R4; dropped")
    protocols = [
        applied
        for i, p in enumerate(_as_list(res.pop("vaccinationProtocol", None)))
        if isinstance(p, dict)
        and (applied := _protocol(p, notes, f"{path}.vaccinationProtocol[{i}]"))
    ]
    if protocols:
        res["protocolApplied"] = protocols


def _protocol(p: dict[str, Any], notes: Notes, path: str) -> dict[str, Any] | None:
    if not isinstance(p.get("doseSequence"), int):
        notes.warn(path, "R4 needs the dose number, which the source lacks; protocol dropped")
        return None
    applied: dict[str, Any] = {"doseNumberPositiveInt": p["doseSequence"]}
    for key in ("series", "authority", "targetDisease"):
        if key in p:
            applied[key] = p[key]
    if isinstance(p.get("seriesDoses"), int):
        applied["seriesDosesPositiveInt"] = p["seriesDoses"]
    for key in ("description", "doseStatus", "doseStatusReason"):
        if key in p:
            notes.warn(f"{path}.{key}", "no R4 element; dropped")
    return applied


def _observation(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    _note(res, res.pop("comment", None))
    for related in _as_list(res.pop("related", None)):
        if not isinstance(related, dict) or "target" not in related:
            continue
        kind = related.get("type")
        if kind is None:
            notes.warn(f"{path}.related.type", "absent; read as 'has-member'")
            kind = "has-member"
        element = _RELATED.get(kind)
        if element is None:
            notes.warn(f"{path}.related", f"relation {kind!r} has no R4 element; dropped")
        else:
            res.setdefault(element, []).append(related["target"])


def _diagnostic_report(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    performers = _as_list(res.get("performer"))
    if any(isinstance(p, dict) and "actor" in p for p in performers):
        if any(isinstance(p, dict) and "role" in p for p in performers):
            notes.warn(f"{path}.performer.role", "R4 performers are references only; dropped")
        res["performer"] = [p["actor"] for p in performers if isinstance(p, dict) and "actor" in p]


def _document_reference(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    created = res.pop("created", None)
    attachments = [
        c["attachment"]
        for c in _as_list(res.get("content"))
        if isinstance(c, dict) and isinstance(c.get("attachment"), dict)
    ]
    for attachment in attachments if created is not None else ():
        attachment.setdefault("creation", created)
    if created is not None and not attachments:
        notes.warn(f"{path}.created", "no attachment to carry the creation date; dropped")
    context = res.get("context")
    if isinstance(context, dict) and "related" in context:
        context["related"] = [
            r.get("ref") or {"identifier": r["identifier"]}
            for r in _as_list(context["related"])
            if isinstance(r, dict) and ("ref" in r or "identifier" in r)
        ]


def _questionnaire_response(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    questionnaire = res.pop("questionnaire", None)
    ref = questionnaire.get("reference") if isinstance(questionnaire, dict) else None
    if isinstance(ref, str) and ref.startswith(("http://", "https://", "urn:")):
        res["questionnaire"] = ref
    elif questionnaire is not None:
        notes.warn(f"{path}.questionnaire", "R4 needs the questionnaire's canonical URL; dropped")
    _link_ids(res.get("item"), f"{path}.item", "", notes)


def _link_ids(items: Any, path: str, prefix: str, notes: Notes) -> None:
    for i, item in enumerate(_as_list(items), start=1):
        if not isinstance(item, dict):
            continue
        position = f"{prefix}{i}"
        if not item.get("linkId"):
            item["linkId"] = f"scr-{position}"
            notes.warn(f"{path}.linkId", "an item without linkId; one was made from its position")
        _link_ids(item.get("item"), f"{path}.item", f"{position}.", notes)
        for answer in _as_list(item.get("answer")):
            if isinstance(answer, dict):
                _link_ids(answer.get("item"), f"{path}.answer.item", f"{position}.", notes)


def _list(res: dict[str, Any], notes: Notes, path: str, maps: GpcMaps) -> None:
    if res.get("title"):
        return
    code = res.get("code")
    codings = code.get("coding", []) if isinstance(code, dict) else []
    title = next(
        (
            maps.list_sections[c["code"]]
            for c in codings
            if isinstance(c, dict)
            and c.get("system") == SNOMED
            and c.get("code") in maps.list_sections
        ),
        None,
    )
    if title:
        res["title"] = title
        notes.warn(f"{path}.title", "absent; taken from the GP Connect section code")


_SPECIAL: dict[str, Special] = {
    "MedicationStatement": _medication_statement,
    "MedicationRequest": _medication_request,
    "ProcedureRequest": _procedure_request,
    "ReferralRequest": _referral,
    "Immunization": _immunization,
    "Observation": _observation,
    "DiagnosticReport": _diagnostic_report,
    "DocumentReference": _document_reference,
    "QuestionnaireResponse": _questionnaire_response,
    "List": _list,
}
