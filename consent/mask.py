"""Apply a decision to one stored resource: may it leave, and in what shape.

Deciding and changing stay apart (as HAPI's ``canSeeResource`` and ``willSeeResource`` do):
:func:`visible` only answers, :func:`mask` only removes. Both are cheap enough to run on every
resource of a record, before paging, so totals count only what may be seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from typing import Any

from consent.model import Decision, Obligations, ResourceMeta
from consent.policy import Policy
from consent.sections import meta_of

#: Kept whatever a profile's field rule says: without them a resource is not a resource.
_ALWAYS = frozenset({"resourceType", "id", "meta"})
#: What ``meta`` says of the stored version. A masked resource leaves without it: a new
#: version may come of a change to nothing but what the mask removes (a restricted person's
#: address), and its number or time would tell that, and when.
_VERSION = frozenset({"versionId", "lastUpdated"})
#: scr's identifier of the source record, matched by path so that any canonical base is.
_SOURCE_RECORD = "/Id/source-record"
#: How a reference names a resource by its id alone (a Bundle's entries, some senders).
_URN_UUID = "urn:uuid:"
#: What stands for a reference to a resource the mask took out (contained, or withheld).
_MASKED = {
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    "valueCode": "masked",
}


class Refused(PermissionError):
    """Content was asked of a decision that does not allow it: a bug in the caller."""


def hidden_by(meta: ResourceMeta, decision: Decision) -> str | None:
    """Why the resource described by ``meta`` may not be shown (a reason id for the audit
    trail's withheld counts, never anything of its content), or ``None`` when it may."""
    if not decision.permit:
        return "refused"
    ob = decision.obligations
    if (meta.resource_type, meta.section) not in ob.allowed:
        return "profile.types" if meta.resource_type not in ob.types else "profile.sections"
    return _hidden_from(meta, ob)


def hidden_in_record(meta: ResourceMeta, decision: Decision) -> str | None:
    """:func:`hidden_by` judged against the profile's pairs whatever was asked
    (``contained_allowed``): how a resource stands in the whole record, for a contained one and
    for one a released resource references, so that each is treated alike on every read path
    (a Condition is not asked for by a search of encounters, but is withheld or not all the
    same)."""
    if not decision.permit:
        return "refused"
    ob = decision.obligations
    if (meta.resource_type, meta.section) not in ob.contained_allowed:
        return "profile.types"
    return _hidden_from(meta, ob)


def _hidden_from(meta: ResourceMeta, ob: Obligations) -> str | None:
    """What :func:`hidden_by` asks once a resource's type and section are allowed."""
    if not ob.withheld_labels.isdisjoint(meta.labels):
        # a legally restricted category, from its recorder's users too; counted with the
        # other labels, so the trail's counts do not say the person has such information
        return "labels.excluded"
    if meta.source_org == ob.org:
        return None
    if ob.own_org_only:
        return "consent.own-organisation-only"
    if meta.section in ob.own_org_sections:
        return "consent.restricted-section"
    return None if ob.excluded_labels.isdisjoint(meta.labels) else "labels.excluded"


def visible(meta: ResourceMeta, decision: Decision) -> bool:
    """Whether the resource described by ``meta`` may be shown under ``decision``."""
    return hidden_by(meta, decision) is None


def unmasked(resource_type: str, decision: Decision) -> bool:
    """Whether :func:`mask` hands a resource of this type back whole when it contains nothing
    (its contained resources are judged one by one) and names nothing ``withheld``, so that
    its stored JSON may leave as it is, unparsed; refuses what :func:`mask` refuses."""
    if not decision.permit:
        raise Refused("a refused decision releases nothing")
    ob = decision.obligations
    if resource_type not in ob.types:
        raise Refused(f"the decision does not allow {resource_type}")
    return not ob.fields  # a field rule reaches any type through what that type contains


def mask(
    resource: Mapping[str, Any],
    decision: Decision,
    policy: Policy,
    source_org: str,
    withheld: Set[str] = frozenset(),
) -> dict[str, Any]:
    """A copy of ``resource`` without the elements the decision removes and the contained
    resources it withholds (``source_org``: the organisation whose record holds it), nor any
    reference to a resource of the record it withholds (``withheld``: their ids, judged with
    :func:`hidden_in_record`), and, when it removes any element (of its type, or of a type it
    may contain), without ``meta.versionId`` and ``meta.lastUpdated``.

    Call :func:`visible` first; this refuses a denial and a type the decision does not
    allow, so a wrong call fails loudly instead of leaking.
    """
    if not decision.permit:
        raise Refused("a refused decision releases nothing")
    resource_type = resource.get("resourceType")
    ob = decision.obligations
    if resource_type not in ob.types:
        raise Refused(f"the decision does not allow {resource_type}")
    return _masked(resource, decision, policy, source_org, withheld)


def referenced_id(reference: str) -> str | None:
    """The id of the resource a literal reference names: relative (``Condition/abc``),
    absolute, versioned (``.../_history/2``) or ``urn:uuid:abc``; ``None`` for a contained
    one (``#abc``), which :func:`mask` judges among the contained resources."""
    if reference.startswith("#"):
        return None
    if reference.startswith(_URN_UUID):
        return reference[len(_URN_UUID) :]
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1]


def source_row_shown(resource_type: str, decision: Decision) -> bool:
    """Whether :func:`mask` leaves a resource of this type its source row, so that what is
    served beside it (its Provenance) may name that row too."""
    rule = decision.obligations.fields.get(resource_type)
    return rule is None or rule.source_row


def _masked(
    resource: Mapping[str, Any],
    decision: Decision,
    policy: Policy,
    source_org: str,
    withheld: Set[str],
) -> dict[str, Any]:
    """``resource`` under its type's field rule, if it has one; each contained resource under
    its own, or left out when it would be withheld as a resource of its own from
    ``source_org`` in the whole record (its type and section, a restricted section, another
    organisation's, its labels: a contact inside a care plan is a contact, a resolved problem
    a past problem), whatever types were asked for; and no reference left naming what was
    taken out or is ``withheld`` (:func:`_unlinked`).
    Under a decision with any field rule, no resource leaves with its version (see
    :func:`mask`), nor does one from which anything else was taken out."""
    ob = decision.obligations
    if not ob.fields and not withheld and "contained" not in resource:
        return dict(resource)
    rule = ob.fields.get(str(resource.get("resourceType")))
    keep, drop = (rule.keep, rule.drop - _ALWAYS) if rule else (None, frozenset[str]())
    shown = {
        k: v
        for k, v in resource.items()
        if k not in drop and (keep is None or k in keep or k in _ALWAYS)
    }
    _narrow(
        shown,
        "contained",
        lambda c: hidden_in_record(meta_of(c, source_org, "", policy), decision) is None,
    )
    if "contained" in shown:
        shown["contained"] = [
            _masked(c, decision, policy, source_org, withheld) for c in shown["contained"]
        ]
    left = {c.get("id") for c in shown.get("contained", ())}
    gone = {c.get("id") for c in resource.get("contained", ()) if isinstance(c, Mapping)} - left

    def taken(reference: str) -> bool:
        if reference.startswith("#"):
            return reference[1:] in gone
        return referenced_id(reference) in withheld

    unlinked: dict[str, Any] = _unlinked(shown, taken) if gone or withheld else shown
    named = unlinked is not shown  # a reference to one of them, marked masked or dropped
    shown = unlinked
    if rule is not None and not rule.source_row:
        if isinstance(shown.get("meta"), dict):
            shown["meta"] = {k: v for k, v in shown["meta"].items() if k != "source"}
        _narrow(shown, "identifier", lambda i: not str(i.get("system")).endswith(_SOURCE_RECORD))
    meta = shown.get("meta")
    # A version may come of a change to nothing but what was taken out (a field, a contained
    # resource, or, for a reference, the item it names being withheld): its number and time
    # would say so, and when.
    if (ob.fields or gone or named) and isinstance(meta, Mapping) and not _VERSION.isdisjoint(meta):
        unversioned = {k: v for k, v in meta.items() if k not in _VERSION}
        if unversioned:
            shown["meta"] = unversioned
        else:
            del shown["meta"]
    return shown


def _unlinked(node: Any, taken: Callable[[str], bool]) -> Any:
    """``node`` with nothing left naming what ``taken`` says was taken out (a contained
    resource the mask left out, or a resource of the record the decision withholds): a
    reference is marked masked instead (data-absent-reason), as one left pointing at nothing
    is not FHIR (ref-1) and its display could name it; a List's entry for it is dropped
    (:func:`_listed`). New objects only where one changed."""
    if isinstance(node, Mapping):
        if _names(node, taken):
            return {"extension": [_MASKED]}
        listed = _listed(node, taken)
        out = {k: _unlinked(v, taken) for k, v in listed.items()}
        return node if listed is node and all(out[k] is node[k] for k in node) else out
    if isinstance(node, list):
        items = [_unlinked(v, taken) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


def _listed(node: Mapping[str, Any], taken: Callable[[str], bool]) -> Mapping[str, Any]:
    """A List without its entries for what ``taken`` says was taken out: marked masked, they
    would say how many items of the list the user may not see. Anything else as it is."""
    entries = node.get("entry") if node.get("resourceType") == "List" else None
    if not isinstance(entries, list):
        return node
    kept = [e for e in entries if not (isinstance(e, Mapping) and _names(e.get("item"), taken))]
    if len(kept) == len(entries):
        return node
    return {k: kept if k == "entry" else v for k, v in node.items() if k != "entry" or kept}


def _names(node: Any, taken: Callable[[str], bool]) -> bool:
    """Whether ``node`` is a reference to what ``taken`` says was taken out."""
    ref = node.get("reference") if isinstance(node, Mapping) else None
    return isinstance(ref, str) and taken(ref)


def _narrow(resource: dict[str, Any], key: str, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Keep the objects of the list at ``key`` that ``keep`` accepts; none left, no ``key``."""
    value = resource.pop(key, None)
    kept = [v for v in value if isinstance(v, dict) and keep(v)] if isinstance(value, list) else []
    if kept:
        resource[key] = kept
