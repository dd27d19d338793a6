"""Turning a new grouping of Patients into moves between people (pure).

After :func:`engine.identity.cluster.cluster` re-decides some people, each new group needs a
person: the old person it holds most of keeps its id (so the ids clients hold stay valid), and a
group holding none gets a new one. Each Patient whose person changes is a move, recorded as a
``link`` (it joined records of another person, through the strongest pin or link between them)
or an ``unlink`` (it left records it was with). A person left with no group was merged away.
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
    #: Old people left without a group → the group most of their Patients went to.
    merged: dict[str, int]


def plan(
    groups: Sequence[Sequence[str]],
    before: Mapping[str, str],
    links: Sequence[Link],
    together: Collection[tuple[str, str]],
    active: Collection[str],
) -> Plan:
    """Person for each group and the moves; groups with more active records choose first."""
    free = set(before.values())
    people: list[str | None] = [None] * len(groups)

    def rank(i: int) -> tuple[int, int, str]:
        g = groups[i]
        return (-sum(m in active for m in g), -len(g), g[0])

    for i in sorted(range(len(groups)), key=rank):
        held = Counter(before[m] for m in groups[i] if before[m] in free)
        if held:
            person = min(held, key=lambda p: (-held[p], p))
            free.discard(person)
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
    return Plan(people, moves, merged)


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
