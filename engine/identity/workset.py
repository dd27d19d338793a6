"""One identity transaction's working set: the Patients, people and pins it touches, in memory.

:mod:`engine.identity.index` loads what a change touches (the Patients named, their block
candidates, every member of the people they belong to, the pins among them), makes its
decisions here with the same pure functions the benchmark uses, then writes the differences
back in a handful of set-based statements. Nothing outside the working set is read or changed,
which is what keeps a relink after new data proportional to the data, not to the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update

from engine.identity.blocking import blocking_keys
from engine.identity.cluster import Pins, cluster, pair
from engine.identity.decide import NO_EVIDENCE, MatchDecision, decide
from engine.identity.features import Demographics, demographics
from engine.identity.moves import Edge, plan
from engine.identity.rules import MatchRules
from engine.identity.tables import (
    IdentityBlock,
    LinkEvent,
    LinkPin,
    PatientNumber,
    Person,
    PersonLink,
    ReviewItem,
)
from engine.models import Resource
from engine.transfer.tables import TRANSFERS

R = cast(Table, Resource.__table__)
PEOPLE = cast(Table, Person.__table__)
LINKS = cast(Table, PersonLink.__table__)
EVENTS = cast(Table, LinkEvent.__table__)
PINS = cast(Table, LinkPin.__table__)
REVIEW = cast(Table, ReviewItem.__table__)
BLOCKS = cast(Table, IdentityBlock.__table__)
NUMBERS = cast(Table, PatientNumber.__table__)

SYSTEM_ACTOR = "scr-identity"
#: Keys longer than the column are cut: two keys sharing 160 characters only add candidates.
_KEY_LENGTH = 160
_CHUNK = 500
#: A member whose record is gone (deleted at source) gives no evidence and forbids nothing.
_NO_EVIDENCE = MatchDecision("review", 0.0, NO_EVIDENCE, ("a record has no demographics",))


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes for UTC columns; PostgreSQL aware ones."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class Actor:
    """Who makes the changes of one transaction, and why (the history records both)."""

    who: str
    manual: bool
    reason: str


_FIRST_SEEN = Actor(SYSTEM_ACTOR, False, "first seen")


class WorkingSet:
    def __init__(self, conn: Connection, rules: MatchRules, now: datetime) -> None:
        self.conn = conn
        self.rules = rules
        self.now = now
        self.demo: dict[str, Demographics | None] = {}
        self.person_of: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        self.pins = Pins()
        self._looked_up: set[str] = set()
        self._pins_loaded: set[str] = set()
        self._decisions: dict[tuple[str, str], MatchDecision] = {}
        self._mates: dict[str, set[str]] = {}
        self._created: dict[str, datetime] = {}
        self._fresh: set[str] = set()
        self._moved: dict[str, str] = {}
        self._placed_by: dict[str, str] = {}
        self._new_people: set[str] = set()
        self._merged: dict[str, str] = {}
        self._revived: set[str] = set()
        self._split_off: list[str] = []
        self._events: list[dict[str, Any]] = []
        #: Review items loaded or written: pair → (id, status).
        self.reviews: dict[tuple[str, str], tuple[int, str]] = {}
        self._reviews_loaded: set[str] = set()
        #: Counts for the caller's summary: people made, Patients moved by merges and splits.
        self.people_created = 0
        self.joined = 0
        self.split = 0

    # --- loading -------------------------------------------------------------------------

    def load_patients(self, ids: Iterable[str]) -> None:
        """Demographics of each id; None for an id that is not an active stored Patient."""
        wanted = sorted(set(ids) - self.demo.keys())
        for chunk in chunks(wanted):
            # The type is checked here, not in SQL, so the lookup is by primary key alone.
            found = self.conn.execute(
                select(R.c.id, R.c.body, R.c.status, R.c.resource_type).where(R.c.id.in_(chunk))
            )
            for row in found:
                active = row.status == "active" and row.resource_type == "Patient"
                self.demo[row.id] = demographics(orjson.loads(row.body)) if active else None
            for pid in chunk:
                self.demo.setdefault(pid, None)

    def load_people(self, ids: Iterable[str]) -> None:
        """The person of each id, every member of those people, their demographics and pins."""
        wanted = sorted(set(ids) - self._looked_up)
        self._looked_up.update(wanted)
        people: set[str] = set()
        for chunk in chunks(wanted):
            rows = self.conn.execute(
                select(LINKS.c.person_id).where(LINKS.c.patient_id.in_(chunk)).distinct()
            )
            people.update(r.person_id for r in rows)
        people -= self.members.keys()
        for chunk in chunks(sorted(people)):
            made = select(PEOPLE.c.id, PEOPLE.c.created_at).where(PEOPLE.c.id.in_(chunk))
            self._created.update((r.id, _aware(r.created_at)) for r in self.conn.execute(made))
            rows = self.conn.execute(
                select(LINKS.c.patient_id, LINKS.c.person_id).where(LINKS.c.person_id.in_(chunk))
            )
            for r in rows:
                self.person_of[r.patient_id] = r.person_id
                self.members.setdefault(r.person_id, set()).add(r.patient_id)
                self._looked_up.add(r.patient_id)
        everyone = set(wanted)
        for person in people:
            everyone |= self.members[person]
        self.load_patients(everyone)
        self._load_pins(everyone)

    def _load_pins(self, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids) - self._pins_loaded)
        self._pins_loaded.update(wanted)
        for chunk in chunks(wanted):
            rows = self.conn.execute(
                select(PINS.c.patient_a, PINS.c.patient_b, PINS.c.pin).where(
                    or_(PINS.c.patient_a.in_(chunk), PINS.c.patient_b.in_(chunk))
                )
            )
            for r in rows:
                target = self.pins.together if r.pin == "together" else self.pins.apart
                target.add((r.patient_a, r.patient_b))

    def candidates(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """Replace the blocking keys of ``ids`` and return each one's block-mates in the store."""
        for chunk in chunks(ids):
            self.conn.execute(delete(BLOCKS).where(BLOCKS.c.patient_id.in_(chunk)))
            self.conn.execute(delete(NUMBERS).where(NUMBERS.c.patient_id.in_(chunk)))
        keys_of: dict[str, set[str]] = {}
        numbers: list[dict[str, str]] = []
        for pid in ids:
            d = self.demo.get(pid)
            if d is not None:
                keys_of[pid] = {k[:_KEY_LENGTH] for k in blocking_keys(d, self.rules.blocking_keys)}
                # A number its own source doubts (trace status 03-08) finds no one: matching
                # ignores it, and a search by it would answer with someone it may not be.
                if d.nhs_number and not d.nhs_doubted:
                    numbers.append({"patient_id": pid, "nhs_number": d.nhs_number})
        rows = [{"key": k, "patient_id": p} for p, keys in keys_of.items() for k in sorted(keys)]
        if rows:
            self.conn.execute(insert(BLOCKS), rows)
        if numbers:
            self.conn.execute(insert(NUMBERS), numbers)
        out = self._block_mates(keys_of)
        for pid, mates in out.items():
            self._mates[pid] = mates
            for mate in mates & self._mates.keys():
                self._mates[mate].add(pid)
        return out

    def mates(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """Each id's block-mates as stored (read only; kept for the transaction).

        A miss fetches the mates of every placed record not yet fetched, in one go: those are
        the members later regroups ask about, and one query per regroup was most of its cost.
        """
        ids = set(ids)
        if ids - self._mates.keys():
            wanted = sorted({*ids, *self.person_of} - self._mates.keys())
            keys_of: dict[str, set[str]] = {pid: set() for pid in wanted}
            for chunk in chunks(wanted):
                query = select(BLOCKS.c.patient_id, BLOCKS.c.key).where(
                    BLOCKS.c.patient_id.in_(chunk)
                )
                for r in self.conn.execute(query):
                    keys_of[r.patient_id].add(r.key)
            found = self._block_mates(keys_of)
            self._mates.update(found)
            self.load_people(set().union(*found.values()))
        return {pid: self._mates[pid] for pid in ids}

    def _block_mates(self, keys_of: dict[str, set[str]]) -> dict[str, set[str]]:
        usable: dict[str, list[str]] = {}
        for chunk in chunks(sorted(set().union(*keys_of.values()))):
            sizes = self.conn.execute(
                select(BLOCKS.c.key, func.count())
                .where(BLOCKS.c.key.in_(chunk))
                .group_by(BLOCKS.c.key)
            )
            small = [k for k, n in sizes if n <= self.rules.max_block_size]
            if not small:
                continue
            for r in self.conn.execute(
                select(BLOCKS.c.key, BLOCKS.c.patient_id).where(BLOCKS.c.key.in_(small))
            ):
                usable.setdefault(r.key, []).append(r.patient_id)
        out: dict[str, set[str]] = {}
        for pid, keys in keys_of.items():
            mates = {m for k in keys for m in usable.get(k, ())}
            mates.discard(pid)
            out[pid] = mates
        return out

    # --- decisions -----------------------------------------------------------------------

    def judge(self, a: str, b: str) -> MatchDecision:
        key = pair(a, b)
        if key not in self._decisions:
            x, y = self.demo.get(key[0]), self.demo.get(key[1])
            if x is None or y is None:
                return _NO_EVIDENCE
            self._decisions[key] = decide(x, y, self.rules)
        return self._decisions[key]

    def ensure_person(self, pid: str, actor: Actor) -> str:
        """The Patient's person; a new person of its own if it has none yet."""
        if pid not in self.person_of:
            person = self._new_person()
            self.person_of[pid] = person
            self.members[person] = {pid}
            self._fresh.add(pid)
            self._placed_by[pid] = "new"
            self._event("new", pid, None, person, None, actor, None)
        return self.person_of[pid]

    def _new_person(self) -> str:
        person = str(uuid.uuid4())
        self._new_people.add(person)
        self._created[person] = self.now
        self.people_created += 1
        return person

    def _move(self, pid: str, to: str, action: str, edge: Edge, actor: Actor) -> None:
        before = self.person_of[pid]
        self.members[before].discard(pid)
        self.members.setdefault(to, set()).add(pid)
        self.person_of[pid] = to
        self._moved[pid] = to
        rule = "manual" if actor.manual else (edge.decision.rule if edge.decision else "split")
        self._placed_by[pid] = rule
        self._event(action, pid, edge.other, to, before, actor, edge.decision)

    def pinned_apart(self, left: Iterable[str], right: Iterable[str]) -> tuple[str, str] | None:
        right = list(right)
        for x in left:
            for y in right:
                if pair(x, y) in self.pins.apart:
                    return pair(x, y)
        return None

    def regroup(
        self, ids: Iterable[str], auto: Actor, manual: Actor | None = None
    ) -> list[tuple[str, str, MatchDecision]]:
        """Re-decide the people ``ids`` belong to, from every member's current data.

        Every pair among all their members is judged and clustered strongest link first, pins
        honoured, exactly as the whole population is in :func:`engine.identity.match_all`; so a
        stronger link found later displaces a weaker one made earlier, and a record whose data
        no longer supports its links leaves. Changes to ``ids`` themselves are recorded as
        ``manual``'s when given (the person who pinned them); all others as ``auto``'s.
        Returns the links refused because their records ended in different people.
        """
        ids = set(ids)
        old = self._bearing({self.person_of[i] for i in ids})
        members = sorted(set().union(*(self.members[p] for p in old)))
        links = [
            (a, b, d)
            for a, b in combinations(members, 2)
            if (d := self.judge(a, b)).outcome == "link"
        ]
        groups = cluster(members, links, self.judge, self.pins)
        if {frozenset(g) for g in groups} != {frozenset(self.members[p]) for p in old}:
            self._apply(groups, old, links, auto, manual if manual else auto, ids)
        return [(a, b, d) for a, b, d in links if self.person_of[a] != self.person_of[b]]

    def _bearing(self, people: set[str]) -> list[str]:
        """``people`` and the people of every active block-mate that links to a member or is
        a question with one.

        :func:`cluster` reads those mates' people: a stronger link elsewhere, a record there
        that holds a member back, a second person a member is torn between. Leaving them out
        let a held record join a namesake that ``match_all`` keeps it from. A mate apart from
        every member is left out: nothing can bring it into their people, and in a common
        name's block (200 John Smiths) loading them all had every re-sent record judge every
        pair of the block.
        """
        members = set().union(*(self.members[p] for p in people))
        near = set().union(*self.mates(members).values()) - members
        self.load_people(near)
        for other in sorted(near):
            if self.demo.get(other) is not None and any(
                self.judge(m, other).outcome != "apart" for m in members
            ):
                people.add(self.ensure_person(other, _FIRST_SEEN))
        return sorted(people)

    def _apply(
        self,
        groups: list[list[str]],
        old: list[str],
        links: list[tuple[str, str, MatchDecision]],
        auto: Actor,
        manual: Actor,
        ids: set[str],
    ) -> None:
        before = {m: p for p in old for m in self.members[p]}
        active = {m for m in before if self.demo.get(m) is not None}
        splits = any(sum(1 for g in groups if self.members[p] & set(g)) > 1 for p in old)
        formerly = self._merged_away(old, sorted(before)) if splits else {}
        created = self._created_at([*old, *formerly])
        changes = plan(groups, before, links, self.pins.together, active, formerly, created)
        people = [p or self._new_person() for p in changes.people]
        for person in set(people) & formerly.keys():
            self._merged.pop(person, None)
            self._revived.add(person)
        for move in changes.moves:
            actor = manual if move.patient in ids else auto
            if move.action == "link" and move.edge.decision and not actor.manual:
                actor = Actor(SYSTEM_ACTOR, False, move.edge.decision.reasons[0])
            self._move(move.patient, people[move.group], move.action, move.edge, actor)
            if move.action == "link":
                self.joined += 1
            else:
                self.split += 1
        for person, group in changes.merged.items():
            self._merged[person] = people[group]
        if splits:
            for together in map(set, groups):
                self._split_off += [m for m in together if self._parted(m, before, together)]
            self._stays_follow_numbers(groups, people, [*old, *formerly])

    def _stays_follow_numbers(
        self, groups: list[list[str]], people: list[str], parted: Sequence[str]
    ) -> None:
        """A hospital stay recorded under a person who has split goes with the group holding
        the NHS number its message named: the number says whose it is, the id only whom the
        records made one person then. Otherwise the receiving hospital keeps its relationship
        with whichever twin kept the id, and loses its own patient. A number no group holds,
        or several do, leaves the stay where it was."""
        holders: dict[str, set[str]] = {}
        for group, person in zip(groups, people, strict=True):
            for m in group:
                d = self.demo.get(m)
                if d is not None and d.nhs_number and not d.nhs_doubted:
                    holders.setdefault(d.nhs_number, set()).add(person)
        for number, persons in holders.items():
            if len(persons) == 1:
                (person,) = persons
                self.conn.execute(
                    update(TRANSFERS)
                    .where(TRANSFERS.c.person_id.in_(parted), TRANSFERS.c.nhs_number == number)
                    .values(person_id=person)
                )

    def _created_at(self, people: Sequence[str]) -> dict[str, datetime]:
        """When each person was made: between equal claims the older keeps its id, so which
        id survives follows the records, not the order of random uuids."""
        wanted = sorted(set(people) - self._created.keys())
        for chunk in chunks(wanted):
            query = select(PEOPLE.c.id, PEOPLE.c.created_at).where(PEOPLE.c.id.in_(chunk))
            self._created.update((r.id, _aware(r.created_at)) for r in self.conn.execute(query))
        return {p: self._created[p] for p in people if p in self._created}

    @staticmethod
    def _parted(m: str, before: dict[str, str], now: set[str]) -> bool:
        return any(p == before[m] and x not in now for x, p in before.items())

    def take_split_off(self) -> list[str]:
        """Active records that regroups have parted from records of their person, since the
        last call."""
        out = [p for p in self._split_off if self.demo.get(p) is not None]
        self._split_off = []
        return out

    def _merged_away(self, old: Sequence[str], members: Sequence[str]) -> dict[str, set[str]]:
        """People merged (at any remove) into ``old``, each with the Patients of ``members`` it
        gave up when it was merged: the last of its Patients to leave it, all in one go.

        Read only when a person splits, so an id merged away never leads to someone else.
        """
        found: set[str] = set()
        frontier = set(old)
        while frontier:
            into: set[str] = set()
            for chunk in chunks(sorted(frontier)):
                query = select(PEOPLE.c.id).where(PEOPLE.c.merged_into.in_(chunk))
                into.update(p for p in self.conn.execute(query).scalars() if p not in self._merged)
            into |= {p for p, keep in self._merged.items() if keep in frontier}
            frontier = into - found - self._revived
            found |= frontier
        if not found:
            return {}
        left: list[tuple[tuple[int, datetime], str, str]] = []
        for chunk in chunks(members):
            query = select(EVENTS.c.at, EVENTS.c.from_person_id, EVENTS.c.patient_id).where(
                EVENTS.c.patient_id.in_(chunk), EVENTS.c.from_person_id.in_(sorted(found))
            )
            left.extend(
                ((0, r.at), r.from_person_id, r.patient_id) for r in self.conn.execute(query)
            )
        mine = set(members)
        left.extend(
            ((1, e["at"]), e["from_person_id"], e["patient_id"])
            for e in self._events
            if e["from_person_id"] in found and e["patient_id"] in mine
        )
        last: dict[str, tuple[int, datetime]] = {}
        for when, person, _ in left:
            last[person] = max(last.get(person, when), when)
        return {
            person: {pid for when, p, pid in left if p == person and when == at}
            for person, at in last.items()
        }

    # --- pins and review -----------------------------------------------------------------

    def set_pin(self, a: str, b: str, pin: str, actor: Actor) -> None:
        key = pair(a, b)
        self.conn.execute(
            delete(PINS).where(PINS.c.patient_a == key[0], PINS.c.patient_b == key[1])
        )
        self.conn.execute(
            insert(PINS).values(
                patient_a=key[0],
                patient_b=key[1],
                pin=pin,
                who=actor.who,
                reason=actor.reason,
                at=self.now,
            )
        )
        self.pins.together.discard(key)
        self.pins.apart.discard(key)
        (self.pins.together if pin == "together" else self.pins.apart).add(key)

    def pinned(self, a: str, b: str) -> bool:
        key = pair(a, b)
        return key in self.pins.together or key in self.pins.apart

    def load_reviews(self, ids: Sequence[str]) -> None:
        """Review items involving ``ids`` (any status), so a pair is never inserted twice."""
        wanted = sorted(set(ids) - self._reviews_loaded)
        self._reviews_loaded.update(wanted)
        for chunk in chunks(wanted):
            rows = self.conn.execute(
                select(REVIEW.c.id, REVIEW.c.patient_a, REVIEW.c.patient_b, REVIEW.c.status).where(
                    or_(REVIEW.c.patient_a.in_(chunk), REVIEW.c.patient_b.in_(chunk))
                )
            )
            self.reviews.update({(r.patient_a, r.patient_b): (r.id, r.status) for r in rows})

    def open_review(self, a: str, b: str, decision: MatchDecision) -> bool:
        """Open (or refresh) the item for a pair; True when it was not open before."""
        key = pair(a, b)
        if not self._reviews_loaded & set(key):
            self.load_reviews([key[0]])
        existing = self.reviews.get(key)
        values = {
            "score": decision.score,
            "rule": decision.rule,
            "reasons": list(decision.reasons),
            "status": "open",
            "updated_at": self.now,
            "resolved_by": None,
        }
        if existing is None:
            inserted = self.conn.execute(
                insert(REVIEW)
                .values(patient_a=key[0], patient_b=key[1], created_at=self.now, **values)
                .returning(REVIEW.c.id)
            )
            item_id = int(inserted.scalar_one())
        else:
            item_id = existing[0]
            self.conn.execute(update(REVIEW).where(REVIEW.c.id == item_id).values(**values))
        self.reviews[key] = (item_id, "open")
        if existing is not None and existing[1] == "open":
            return False
        actor = Actor(SYSTEM_ACTOR, False, decision.reasons[0])
        self._event("review", key[0], key[1], None, None, actor, decision)
        return True

    def close_review(self, key: tuple[str, str], status: str, who: str | None) -> bool:
        """Close the pair's item if it is open; True when it was."""
        item = self.reviews.get(key)
        if item is None or item[1] != "open":
            return False
        self.conn.execute(
            update(REVIEW)
            .where(REVIEW.c.id == item[0])
            .values(status=status, updated_at=self.now, resolved_by=who)
        )
        self.reviews[key] = (item[0], status)
        return True

    # --- history and writing -------------------------------------------------------------

    def note(self, action: str, a: str, b: str, actor: Actor) -> None:
        """Record a manual decision that moved nothing (already together, already apart)."""
        self._event(action, a, b, self.person_of.get(a), self.person_of.get(a), actor, None)

    def _event(
        self,
        action: str,
        pid: str,
        other: str | None,
        person: str | None,
        before: str | None,
        actor: Actor,
        decision: MatchDecision | None,
    ) -> None:
        self._events.append(
            {
                "at": self.now,
                "action": action,
                "patient_id": pid,
                "other_patient_id": other,
                "person_id": person,
                "from_person_id": before,
                "manual": actor.manual,
                "who": actor.who,
                "reason": actor.reason,
                "score": decision.score if decision else None,
                "detail": {
                    "rules": self.rules.version,
                    "rule": decision.rule if decision else ("manual" if actor.manual else None),
                    "reasons": list(decision.reasons) if decision else [],
                },
            }
        )

    def write(self) -> None:
        """Write the people, memberships and history this working set changed (once, at the end)."""
        if self._new_people:
            self.conn.execute(
                insert(PEOPLE),
                [{"id": p, "created_at": self.now, "merged_into": None} for p in self._new_people],
            )
        if self._revived:
            self.conn.execute(
                update(PEOPLE)
                .where(PEOPLE.c.id.in_(sorted(self._revived)))
                .values(merged_into=None)
            )
        merged = []
        for drop, keep in sorted(self._merged.items()):
            while keep in self._merged:
                keep = self._merged[keep]
            merged.append({"drop": drop, "keep": keep})
        if merged:
            self.conn.execute(
                update(PEOPLE)
                .where(PEOPLE.c.id == bindparam("drop"))
                .values(merged_into=bindparam("keep")),
                merged,
            )
        fresh = [
            {
                "patient_id": p,
                "person_id": self.person_of[p],
                "linked_at": self.now,
                "rule": self._placed_by[p],
            }
            for p in sorted(self._fresh)
        ]
        if fresh:
            self.conn.execute(insert(LINKS), fresh)
        moved = [
            {"pid": p, "person": self._moved[p], "placed": self._placed_by[p]}
            for p in sorted(self._moved.keys() - self._fresh)
        ]
        if moved:
            self.conn.execute(
                update(LINKS)
                .where(LINKS.c.patient_id == bindparam("pid"))
                .values(
                    person_id=bindparam("person"), linked_at=self.now, rule=bindparam("placed")
                ),
                moved,
            )
        if self._events:
            self.conn.execute(insert(EVENTS), self._events)
