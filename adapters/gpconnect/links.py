"""What each entry of a structured record takes its labels from, so nothing names what is withheld.

A sensitive or NOPAT resource is withheld from other organisations, and whatever names it must
be withheld with it or the name leaks: a consultation topic List is titled with its problem's
name, a referral or a medicine cites the problem it is for. So an entry takes the codes (and
security labels) of
 - every resource it references (its title, or a reference's display, may name them);
 - the problem header that lists it as related clinical content: it is part of that problem
   (an actual-problem link runs both ways: the header is named after it, and it is the problem).
   A header that lists a consultation (an Encounter, as GP Connect links a problem to every
   consultation it was discussed in) passes its codes to that consultation's topic Lists,
   whose titles name the problems discussed, not to the Encounter or what was written in it;
 - the other records of the same medicine: a statement, the authorisation it is based on and
   that authorisation's issues name one drug, so they are withheld together (``basedOn``);
and of whatever those take theirs from. An entry's own security labels include those of the
resources it contains (a Medication carried inline), which are released inside it. A reference
to the patient, or to who, where or when (an Encounter, a Practitioner, an Organization), passes
nothing on: it says whose record this is and where it was written, not what it holds, and
following it would label every entry of a consultation for one of its topics. Nor does a link
between problem headers (RelatedProblemHeader): R4 has no place for it, so nothing released
names the other problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from adapters import labels

#: Problem header extensions whose target is part of the problem.
_PART_OF = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1",
        "http://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1",
    }
)
#: Problem header extensions whose target is the problem itself.
_ACTUAL = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-ActualProblem-1",
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ActualProblem-1",
    }
)
#: Links between problem headers: dropped on the way to R4, so they name nothing.
_BETWEEN_PROBLEMS = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedProblemHeader-1",
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RelatedProblemHeader-1",
    }
)
_BASED_ON = "basedOn"
_MEDICINES = frozenset({"MedicationStatement", "MedicationRequest"})
#: SNOMED "Topic (EHR)": a consultation's List for one problem or issue, titled with it.
_TOPIC = "25851000000105"
#: Who, where and when: a reference to one says whose record it is, not what it holds.
CONTEXT = frozenset(
    {
        "Patient",
        "Encounter",
        "EpisodeOfCare",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
    }
)

Resolve = Callable[[Any], dict[str, Any] | None]


def _references(node: Any) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Every Reference in a resource, with the link it makes: a problem-link extension's URL,
    ``basedOn``, or ``None`` (it names its target). Links between problems are left out."""
    stack: list[tuple[str | None, Any]] = [(None, node)]
    while stack:
        link, item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield link, item
            url = item.get("url") if isinstance(item.get("url"), str) else None
            if url in _BETWEEN_PROBLEMS:
                continue
            tag = url if url in _PART_OF or url in _ACTUAL else None
            stack.extend(
                (tag if k == "valueReference" else _BASED_ON if k == _BASED_ON else None, v)
                for k, v in item.items()
            )
        elif isinstance(item, list):
            stack.extend((link, v) for v in item)


def labelling_references(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The References a resource takes the codes of: all but those to a problem header's
    related content, which takes the header's codes, not the reverse."""
    return (ref for link, ref in _references(resource) if link not in _PART_OF)


def _topics(resources: Sequence[dict[str, Any]], resolve: Resolve) -> dict[int, list[int]]:
    """Each consultation (by its Encounter's position) → the positions of its topic Lists."""
    position = {id(r): i for i, r in enumerate(resources)}
    found: dict[int, list[int]] = {}
    for i, r in enumerate(resources):
        code = r.get("code")
        codings = code.get("coding") if isinstance(code, dict) else None
        if r.get("resourceType") != "List" or not any(
            isinstance(c, dict) and c.get("code") == _TOPIC
            for c in (codings if isinstance(codings, list) else [])
        ):
            continue
        visit = resolve(r.get("encounter"))
        if visit is not None and id(visit) in position:
            found.setdefault(position[id(visit)], []).append(i)
    return found


def security(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Its security labels and those of the resources it contains, which are released inside
    it; whatever odd JSON a sender wrote (``"meta": null``)."""
    contained = resource.get("contained")
    found: list[dict[str, Any]] = []
    for r in [resource, *(contained if isinstance(contained, list) else ())]:
        meta = r.get("meta") if isinstance(r, dict) else None
        labelled = meta.get("security") if isinstance(meta, dict) else None
        if isinstance(labelled, list):
            found += [s for s in labelled if isinstance(s, dict)]
    return found


def _codes(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """Its codes and security labels (``labels.codings`` leaves every ``meta`` out)."""
    found = labels.codings(resource) + security(resource)
    return {(str(c.get("system", "")), c["code"]) for c in found if isinstance(c.get("code"), str)}


def inherited_codes(resources: Sequence[dict[str, Any]], resolve: Resolve) -> list[list[list[str]]]:
    """For each resource, the ``[system, code]`` pairs it takes from others (sorted, often none)."""
    position = {id(r): i for i, r in enumerate(resources)}
    givers: list[set[int]] = [set() for _ in resources]

    def take(heir: int, giver: int) -> None:
        if resources[giver].get("resourceType") not in CONTEXT:
            givers[heir].add(giver)

    topics = _topics(resources, resolve)
    for i, resource in enumerate(resources):
        for link, ref in _references(resource):
            target = resolve(ref)
            j = None if target is None else position.get(id(target))
            if j is None or j == i:
                continue
            if link not in _PART_OF:
                take(i, j)
            if link == _BASED_ON:
                if {resource.get("resourceType"), resources[j].get("resourceType")} <= _MEDICINES:
                    take(j, i)
            elif link is not None:
                for part in topics.get(j, [j]):
                    if resources[part].get("resourceType") not in CONTEXT:
                        take(part, i)
    own: dict[int, set[tuple[str, str]]] = {}
    out: list[list[list[str]]] = []
    for i, direct in enumerate(givers):
        reached: set[int] = set()
        stack = list(direct)
        while stack:
            j = stack.pop()
            if j != i and j not in reached:
                reached.add(j)
                stack.extend(givers[j])
        codes: set[tuple[str, str]] = set()
        for j in reached:
            if j not in own:
                own[j] = _codes(resources[j])
            codes |= own[j]
        out.append([[s, c] for s, c in sorted(codes)])
    return out
