"""Apply a decision to one stored resource: may it leave, and in what shape.

Deciding and changing stay apart (as HAPI's ``canSeeResource`` and ``willSeeResource`` do):
:func:`visible` only answers, :func:`mask` only removes. Both are cheap enough to run on every
resource of a record, before paging, so totals count only what may be seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
#: What stands for a reference to a contained resource the mask took out.
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


def _contained_hidden_by(meta: ResourceMeta, decision: Decision) -> str | None:
    """:func:`hidden_by` for a contained resource: judged against the profile's pairs whatever
    was asked (``contained_allowed``), so it leaves alike on every read path."""
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
    (its contained resources are judged one by one), so that its stored JSON may leave as it
    is, unparsed; refuses what :func:`mask` refuses."""
    if not decision.permit:
        raise Refused("a refused decision releases nothing")
    ob = decision.obligations
    if resource_type not in ob.types:
        raise Refused(f"the decision does not allow {resource_type}")
    return not ob.fields  # a field rule reaches any type through what that type contains


def mask(
    resource: Mapping[str, Any], decision: Decision, policy: Policy, source_org: str
) -> dict[str, Any]:
    """A copy of ``resource`` without the elements the decision removes and the contained
    resources it withholds (``source_org``: the organisation whose record holds it), and,
    when it removes any element (of its type, or of a type it may contain), without
    ``meta.versionId`` and ``meta.lastUpdated``.

    Call :func:`visible` first; this refuses a denial and a type the decision does not
    allow, so a wrong call fails loudly instead of leaking.
    """
    if not decision.permit:
        raise Refused("a refused decision releases nothing")
    resource_type = resource.get("resourceType")
    ob = decision.obligations
    if resource_type not in ob.types:
        raise Refused(f"the decision does not allow {resource_type}")
    return _masked(resource, decision, policy, source_org)


def source_row_shown(resource_type: str, decision: Decision) -> bool:
    """Whether :func:`mask` leaves a resource of this type its source row, so that what is
    served beside it (its Provenance) may name that row too."""
    rule = decision.obligations.fields.get(resource_type)
    return rule is None or rule.source_row


def _masked(
    resource: Mapping[str, Any], decision: Decision, policy: Policy, source_org: str
) -> dict[str, Any]:
    """``resource`` under its type's field rule, if it has one; each contained resource under
    its own, or left out when it would be withheld as a resource of its own from
    ``source_org`` in the whole record (its type and section, a restricted section, another
    organisation's, its labels: a contact inside a care plan is a contact, a resolved problem
    a past problem), whatever types were asked for.
    Under a decision with any field rule, no resource leaves with its version (see
    :func:`mask`), nor does one whose contained resources were taken out."""
    ob = decision.obligations
    if not ob.fields and "contained" not in resource:
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
        lambda c: _contained_hidden_by(meta_of(c, source_org, "", policy), decision) is None,
    )
    if "contained" in shown:
        shown["contained"] = [_masked(c, decision, policy, source_org) for c in shown["contained"]]
    left = {c.get("id") for c in shown.get("contained", ())}
    gone = {c.get("id") for c in resource.get("contained", ()) if isinstance(c, Mapping)} - left
    if gone:  # the kept contained resources may name the ones taken out too
        shown = {k: _unlinked(v, gone) for k, v in shown.items()}
    if rule is not None and not rule.source_row:
        if isinstance(shown.get("meta"), dict):
            shown["meta"] = {k: v for k, v in shown["meta"].items() if k != "source"}
        _narrow(shown, "identifier", lambda i: not str(i.get("system")).endswith(_SOURCE_RECORD))
    meta = shown.get("meta")
    # A version may come of a change to nothing but what was taken out (a field, a contained
    # resource): its number and time would say so, and when.
    if (ob.fields or gone) and isinstance(meta, Mapping) and not _VERSION.isdisjoint(meta):
        unversioned = {k: v for k, v in meta.items() if k not in _VERSION}
        if unversioned:
            shown["meta"] = unversioned
        else:
            del shown["meta"]
    return shown


def _unlinked(node: Any, gone: set[Any]) -> Any:
    """``node`` with each local reference to a contained resource taken out (``#id``, id in
    ``gone``) marked masked instead: a reference left pointing at nothing is not FHIR (ref-1),
    and its display could name what was taken out. New objects only where one changed."""
    if isinstance(node, Mapping):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("#") and ref[1:] in gone:
            return {"extension": [_MASKED]}
        out = {k: _unlinked(v, gone) for k, v in node.items()}
        return node if all(out[k] is node[k] for k in node) else out
    if isinstance(node, list):
        items = [_unlinked(v, gone) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


def _narrow(resource: dict[str, Any], key: str, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Keep the objects of the list at ``key`` that ``keep`` accepts; none left, no ``key``."""
    value = resource.pop(key, None)
    kept = [v for v in value if isinstance(v, dict) and keep(v)] if isinstance(value, list) else []
    if kept:
        resource[key] = kept
