"""Turning a new grouping of Patients into moves between people (pure).

After :func:`engine.identity.cluster.cluster` re-decides some people, each new group needs a
person: the old person whose own records (active, not brought in by a merge) it holds most of
keeps its id (so the ids clients hold stay valid, and stay with the records recorded under
them); between equal claims the older person (then the one with the lowest Patient id) keeps
it, never the lower random uuid. A group holding none takes back a person merged away earlier
whose records it holds most of, or gets a new one. A person merged away earlier follows the
group holding most of the records it gave up, never simply the survivor: once a merge is
undone, the survivor is someone else. Each Patient whose person changes is a move, recorded
as a ``link`` (it joined records of another person, through the strongest pin or link between
them) or an ``unlink`` (it left records it was with). A person left with no group was merged
away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.identity.cluster import pair
from engine.identity.decide import MatchDecision

Link = tuple[str, str, MatchDecision]
#: A person with no known creation time counts as the youngest.
_NEVER = datetime.max.replace(tzinfo=UTC)


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
    created: Mapping[str, datetime] | None = None,
) -> Plan:
    """Person for each group and the moves.

    ``formerly`` holds the people merged away earlier into one of these, each with the
    Patients it gave up then; ``created`` when each person was made.
    """
    free = set(before.values())
    gone = {p: set(had) for p, had in (formerly or {}).items()}
    came = set().union(*gone.values())
    people: list[str | None] = [None] * len(groups)
    rank = {i: _rank(g, active) for i, g in enumerate(groups)}
    first: dict[str, str] = {}
    for m, p in sorted(before.items()):
        first.setdefault(p, m)
    for p, had in gone.items():
        first.setdefault(p, min(had, default=""))
    born = created or {}

    def elder(p: str) -> tuple[datetime, str]:
        return born.get(p, _NEVER), first.get(p, "")

    # Strongest claim first: a person's own active records (not brought in by a merge) hold on
    # to its id; records it took in by a merge only take it when none of its own survive.
    held = [
        (_claim([m for m in g if before[m] == p], active, came), rank[i], elder(p), i, p)
        for i, g in enumerate(groups)
        for p in {before[m] for m in g}
    ]
    back = [
        (_claim([m for m in g if m in had], active, ()), rank[i], elder(p), i, p)
        for i, g in enumerate(groups)
        for p, had in gone.items()
        if had & set(g)
    ]
    for claims, pool in ((held, free), (back, gone.keys())):
        for *_, i, person in sorted(claims):
            if people[i] is None and person in pool:
                people[i] = person
                free.discard(person)
                gone.pop(person, None)
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


def _claim(
    records: Sequence[str], active: Collection[str], came: Collection[str]
) -> tuple[int, int, int, int]:
    """How strongly a group's ``records`` of one person hold its id (lower is stronger).

    Active records first: a record deleted at source leaves alone and must not take the id.
    """
    live = [m for m in records if m in active]
    return (
        -sum(m not in came for m in live),
        -len(live),
        -sum(m not in came for m in records),
        -len(records),
    )


def _rank(group: Sequence[str], active: Collection[str]) -> tuple[int, int, str]:
    """Between equal claims, groups with more active records choose first, then larger ones."""
    return (-sum(m in active for m in group), -len(group), group[0])


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
