"""Turning a new grouping of Patients into moves between people (pure).

After :func:`engine.identity.cluster.cluster` re-decides some people, each new group needs a
person: the old person it holds most of keeps its id (so the ids clients hold stay valid), and a
group holding none takes back a person merged away earlier whose records it holds most of, or
gets a new one. A person merged away earlier follows the group holding most of the records it
gave up, never simply the survivor: once a merge is undone, the survivor is someone else. Each
Patient whose person changes is a move, recorded as a ``link`` (it joined records of another
person, through the strongest pin or link between them) or an ``unlink`` (it left records it
was with). A person left with no group was merged away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from engine.identity.cluster import pair
from engine.identity.decide import MatchDecision

Link = tuple[str, str, MatchDecision]


@dataclass(frozen=True)
class Edge:
    """The pair behind a move: the other Patient, and the decision when the rules made it."""

    other: str | None
    decision: MatchDecision | None


@dataclass(frozen=True)
class Move:
    patient: str
    #: Index into :attr:`Plan.people`.
    group: int
    #: ``link`` or ``unlink``.
    action: str
    edge: Edge


@dataclass(frozen=True)
class Plan:
    #: Per group, the old person it keeps, or None when it needs a new person.
    people: list[str | None]
    moves: list[Move]
    #: Old people left without a group, and people merged away earlier that no group took back
    #: → the group most of their Patients went to.
    merged: dict[str, int]


def plan(
    groups: Sequence[Sequence[str]],
    before: Mapping[str, str],
    links: Sequence[Link],
    together: Collection[tuple[str, str]],
    active: Collection[str],
    formerly: Mapping[str, Collection[str]] | None = None,
) -> Plan:
    """Person for each group and the moves.

    ``formerly`` holds the people merged away earlier into one of these, each with the
    Patients it gave up then.
    """
    free = set(before.values())
    gone = {p: set(had) for p, had in (formerly or {}).items()}
    came = set().union(*gone.values())
    people: list[str | None] = [None] * len(groups)
    # Equal groups choose in favour of records no merge brought in: the survivor's id stays
    # with its own records, and a merged-away person is taken back by the group holding its.
    order = sorted(range(len(groups)), key=lambda i: _rank(groups[i], active, came))

    def held(g: Sequence[str]) -> Counter[str]:
        return Counter(before[m] for m in g if before[m] in free)

    def back(g: Sequence[str]) -> Counter[str]:
        return Counter({p: sum(m in had for m in g) for p, had in gone.items()})

    for counts in (held, back):
        for i in order:
            found = +counts(groups[i])
            if people[i] is None and found:
                person = min(found, key=lambda p: (-found[p], p))
                free.discard(person)
                gone.pop(person, None)
                people[i] = person
    moves = [
        Move(pid, i, *_why(pid, group, before, links, together))
        for i, group in enumerate(groups)
        for pid in group
        if people[i] != before[pid]
    ]
    group_of = {pid: i for i, group in enumerate(groups) for pid in group}
    merged: dict[str, int] = {}
    for person in sorted(free):
        went = Counter(group_of[m] for m, p in before.items() if p == person)
        merged[person] = min(went, key=lambda i: (-went[i], i))
    for person, had in sorted(gone.items()):
        went = Counter(group_of[m] for m in had if m in group_of)
        if went:
            merged[person] = min(went, key=lambda i: (-went[i], i))
    return Plan(people, moves, merged)


def _rank(
    group: Sequence[str], active: Collection[str], came: Collection[str]
) -> tuple[int, int, int, str]:
    """Groups with more active records choose their person first, then larger ones, then
    those with more records no merge brought in."""
    return (
        -sum(m in active for m in group),
        -len(group),
        -sum(m not in came for m in group),
        group[0],
    )


def _why(
    pid: str,
    group: Sequence[str],
    before: Mapping[str, str],
    links: Sequence[Link],
    together: Collection[tuple[str, str]],
) -> tuple[str, Edge]:
    mine = {m for m in group if before[m] == before[pid]}
    joined = sorted(m for m in group if before[m] != before[pid])
    if not joined:
        left = sorted(m for m, p in before.items() if p == before[pid] and m not in mine)
        return "unlink", Edge(left[0] if left else None, None)
    for x in sorted(mine):
        for y in joined:
            if pair(x, y) in together:
                return "link", Edge(y, None)
    across = [
        (d.score, b if a in mine else a, d)
        for a, b, d in links
        if (a in mine and b in joined) or (b in mine and a in joined)
    ]
    if across:
        _, other, decision = max(across, key=lambda e: (e[0], e[1]))
        return "link", Edge(other, decision)
    return "link", Edge(joined[0], None)
