"""From pair decisions to people: strongest links first, and never a chain past a refusal.

Linking is transitive (A–C and C–B put A and B in one person), which is where false merges
hide: a council record with no NHS number can look like two different GP patients. So two
groups are joined only when *every* pair across them is allowed: no manual ``apart`` pin and
no decision that forbids a merge (``MatchDecision.forbids_merge``). Manual ``together`` pins are
applied first and need no score (a person decided it), but never override a manual ``apart``.
Links are tried in a fixed order (verified NHS numbers first, then by falling score, then by
id) so the result is deterministic. A record that links equally strongly to two groups that may
not join each other (two people known to be different) joins neither: the id order must not
choose for it. And a record refused its strongest link, because a record of the other group
forbids it, takes no weaker link: its best match is known and refused, so a weaker one
elsewhere is a question for a person, not a second choice (and the people no longer depend on
which record arrived first).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.identity.decide import NHS_VERIFIED, MatchDecision

Judge = Callable[[str, str], MatchDecision]


def pair(a: str, b: str) -> tuple[str, str]:
    """The canonical (sorted) form of an unordered pair of record ids."""
    return (a, b) if a <= b else (b, a)


@dataclass
class Pins:
    """Manual decisions on pairs (canonical form), which automatic linking must respect."""

    together: set[tuple[str, str]] = field(default_factory=set)
    apart: set[tuple[str, str]] = field(default_factory=set)


class _Groups:
    def __init__(self, ids: Iterable[str]) -> None:
        self.root = {i: i for i in ids}
        self.members = {i: [i] for i in self.root}

    def find(self, x: str) -> str:
        while self.root[x] != x:
            self.root[x] = self.root[self.root[x]]
            x = self.root[x]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = sorted((self.find(a), self.find(b)))
        self.root[rb] = ra
        self.members[ra].extend(self.members.pop(rb))


def _pinned_apart(left: list[str], right: list[str], pins: Pins) -> bool:
    return any(pair(x, y) in pins.apart for x in left for y in right)


def _forbids(record: str, group: list[str], judge: Judge) -> bool:
    return any(judge(record, other).forbids_merge for other in group)


def _allowed(left: list[str], right: list[str], judge: Judge, pins: Pins) -> bool:
    if _pinned_apart(left, right, pins):
        return False
    return not any(_forbids(x, right, judge) for x in left)


def link_order(item: tuple[str, str, MatchDecision]) -> tuple[int, float, str, str]:
    a, b, decision = item
    return (0 if decision.rule == NHS_VERIFIED else 1, -decision.score, a, b)


def cluster(
    ids: Iterable[str],
    links: Iterable[tuple[str, str, MatchDecision]],
    judge: Judge,
    pins: Pins | None = None,
) -> list[list[str]]:
    """Group ``ids`` into people; ``links`` are the pairs whose decision is ``link``.

    ``judge`` gives the decision for any pair (callers cache it): it is asked about pairs
    across two groups before they are joined. Returns groups sorted, each sorted.
    """
    pins = pins or Pins()
    groups = _Groups(ids)
    for a, b in sorted(pins.together):
        if a in groups.root and b in groups.root:
            ra, rb = groups.find(a), groups.find(b)
            if ra != rb and not _pinned_apart(groups.members[ra], groups.members[rb], pins):
                groups.join(a, b)
    ordered = sorted(links, key=link_order)
    rivals: dict[tuple[int, float, str], list[str]] = defaultdict(list)
    for a, b, decision in ordered:
        rivals[_strength(decision, a)].append(b)
        rivals[_strength(decision, b)].append(a)
    held: set[str] = set()
    for a, b, decision in ordered:
        ra, rb = groups.find(a), groups.find(b)
        if ra == rb or a in held or b in held:
            continue
        left, right = groups.members[ra], groups.members[rb]
        if not _allowed(left, right, judge, pins):
            if not _pinned_apart(left, right, pins):
                held |= {x for x, other in ((a, right), (b, left)) if _forbids(x, other, judge)}
            continue
        if _torn(groups, a, b, rivals[_strength(decision, a)], judge, pins) or _torn(
            groups, b, a, rivals[_strength(decision, b)], judge, pins
        ):
            continue
        groups.join(a, b)
    return sorted(sorted(m) for m in groups.members.values())


def _strength(decision: MatchDecision, record: str) -> tuple[int, float, str]:
    """A link's place in the order, less the other record: links from ``record`` this strong."""
    return (0 if decision.rule == NHS_VERIFIED else 1, -decision.score, record)


def _torn(groups: _Groups, a: str, b: str, rivals: list[str], judge: Judge, pins: Pins) -> bool:
    """``a`` links as strongly to a record of a third group that may not join ``b``'s.

    Joining ``a`` to either would be a coin toss between two people known to be different, so
    it joins neither and both pairs go to review.
    """
    ra, rb = groups.find(a), groups.find(b)
    for other in rivals:
        rc = groups.find(other)
        if rc not in (ra, rb) and not _allowed(groups.members[rc], groups.members[rb], judge, pins):
            return True
    return False
