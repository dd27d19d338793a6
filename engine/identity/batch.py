"""Link a whole population held in memory: block, decide, cluster (pure; the benchmark's path).

The database path (:mod:`engine.identity.index`) makes the same decisions incrementally; this
one sees every record at once, which is what measuring precision and recall against a known
truth needs. Memory holds each record's :class:`Demographics` and blocking keys, the link
decisions and the review pairs: linear in the records, never in the pairs compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.identity.blocking import Blocks
from engine.identity.cluster import cluster, link_order, pair
from engine.identity.decide import MatchDecision, decide
from engine.identity.features import Demographics
from engine.identity.rules import MatchRules


@dataclass(frozen=True)
class Matching:
    #: Records grouped into people (sorted); every record is in exactly one group.
    people: list[list[str]]
    #: Pairs left for a person to decide: review (or refused link) decisions left apart.
    review: list[tuple[str, str, MatchDecision]]
    pairs_compared: int
    #: Blocking keys whose block exceeded the cap (and so yielded no pairs), with sizes.
    oversized_blocks: dict[str, int]


def match_all(records: Mapping[str, Demographics], rules: MatchRules) -> Matching:
    blocks = Blocks(rules)
    for record_id, d in records.items():
        blocks.add(record_id, d)
    cache: dict[tuple[str, str], MatchDecision] = {}

    def judge(a: str, b: str) -> MatchDecision:
        key = pair(a, b)
        if key not in cache:
            cache[key] = decide(records[key[0]], records[key[1]], rules)
        return cache[key]

    links: list[tuple[str, str, MatchDecision]] = []
    reviews: list[tuple[str, str, MatchDecision]] = []
    compared = 0
    for a, b in blocks.pairs():
        decision = decide(records[a], records[b], rules)
        compared += 1
        if decision.outcome == "link":
            links.append((a, b, decision))
            cache[(a, b)] = decision
        elif decision.outcome == "review":
            reviews.append((a, b, decision))
    people = cluster(records, links, judge)
    person = {rid: i for i, members in enumerate(people) for rid in members}
    # A link refused because other records forbid the merge is a question for a person too.
    queue = [(a, b, d) for a, b, d in (*links, *reviews) if person[a] != person[b]]
    return Matching(people, sorted(queue, key=link_order), compared, blocks.oversized)
