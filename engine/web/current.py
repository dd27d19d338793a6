"""Whether a record item still holds, and which of several CPR decisions is in force: what a
summary lists as current, kept apart from how an item is worded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.web.templating import uk_date

#: The statuses that say an item no longer holds (R4's required value sets): a summary lists
#: what is current, as the section rules do for medicines and problems; the Details section
#: lists everything. ``finished`` ends an episode of care, not an encounter (an admission).
_ENDED_STATUS: Mapping[str, frozenset[str]] = {
    "CareTeam": frozenset({"inactive", "entered-in-error"}),
    "Consent": frozenset({"inactive", "rejected", "entered-in-error"}),
    "Encounter": frozenset({"cancelled", "entered-in-error"}),
    "EpisodeOfCare": frozenset({"finished", "cancelled", "entered-in-error"}),
    "Flag": frozenset({"inactive", "entered-in-error"}),
    "Observation": frozenset({"cancelled", "entered-in-error"}),
}
_ENDED_ANY = frozenset({"entered-in-error"})
#: ``clinicalStatus`` and ``verificationStatus`` codes of an allergy or problem that is over,
#: or was never so.
_ENDED_CLINICAL = frozenset({"inactive", "resolved", "remission", "refuted", "entered-in-error"})


def codes(value: Any) -> set[str]:
    """The codes a status or a concept gives: a code, or a CodeableConcept's (STU3 sent a
    status as a code)."""
    if isinstance(value, str):
        return {value}
    coding = value.get("coding") if isinstance(value, dict) else None
    found = coding if isinstance(coding, list) else []
    return {str(c.get("code")) for c in found if isinstance(c, dict)}


#: Where each type says when it stops holding.
_END: Mapping[str, tuple[str, ...]] = {
    "CareTeam": ("period", "end"),
    "Consent": ("provision", "period", "end"),
    "EpisodeOfCare": ("period", "end"),
    "Flag": ("period", "end"),
    "RelatedPerson": ("period", "end"),
}


def _ended_by(resource: Mapping[str, Any], today: str) -> bool:
    """Whether its end date has passed: a source marks an item ended when it sends it, and a
    DoLS authorised until last spring still says active until the next extract."""
    node: Any = resource
    for step in _END.get(str(resource.get("resourceType")), ()):
        node = node.get(step) if isinstance(node, dict) else None
    if not isinstance(node, str) or not node:
        return False
    end = uk_date(node)
    return today[: len(end)] > end


def current(resource: Mapping[str, Any], today: str) -> bool:
    """Whether an item still holds: not ended (by status or by its end date), refused,
    resolved or entered in error."""
    if resource.get("active") is False or _ended_by(resource, today):
        return False
    ended = _ENDED_STATUS.get(str(resource.get("resourceType")), _ENDED_ANY)
    if codes(resource.get("status")) & ended:
        return False
    clinical = codes(resource.get("clinicalStatus")) | codes(resource.get("verificationStatus"))
    return not clinical & _ENDED_CLINICAL


def _later(a: str, b: str) -> bool:
    """Whether date ``a`` is known to be after ``b``: both given and different to the
    precision both have ('2024' is neither after '2024-05-01' nor before it)."""
    n = min(len(a), len(b))
    return bool(a and b) and a[:n] > b[:n]


def superseded(date: str, others: Sequence[str]) -> bool:
    """Whether one of the ``others`` is known to be a later decision than that of ``date``."""
    return any(_later(o, date) for o in others)


def standing(date: str, others: Sequence[str]) -> str:
    """A CPR decision's standing beside the other current ones: the latest is current, an
    earlier one superseded; when an undated one or a tie leaves it open, that is said, as
    guessing could show a DNACPR as current when it is not."""
    if superseded(date, others):
        return "superseded by a later decision"
    if all(_later(date, o) for o in others):
        return "current decision"
    if not date:
        return "undated: which decision is current is not known"
    why = "another is undated" if not all(others) else "another has the same date"
    return f"{why}: which decision is current is not known"
