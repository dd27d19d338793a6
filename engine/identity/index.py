"""The master person index in the store: relink after new data, manual link and unlink, review.

Every function here runs in one transaction that first updates the ``identity_lock`` row, so a
relink after an ingest and an administrator's manual decision take turns on SQLite and
PostgreSQL alike. Manual decisions are pins: a manual unlink keeps two Patients apart and a
manual link keeps them together for every later automatic run, until a person decides again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    bindparam,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.orm import aliased

from audit import AuditEntry, append
from audit.entry import Action, Outcome
from engine.db import probe_each
from engine.identity.cluster import pair
from engine.identity.decide import MatchDecision
from engine.identity.rules import MatchRules, load_rules
from engine.identity.tables import IdentityLock
from engine.identity.workset import (
    BLOCKS,
    EVENTS,
    LINKS,
    NUMBERS,
    PEOPLE,
    PINS,
    REVIEW,
    SYSTEM_ACTOR,
    Actor,
    R,
    WorkingSet,
    chunks,
)

LOCK = cast(Table, IdentityLock.__table__)
T = TypeVar("T")
#: ``merged_into`` chains are short; a longer one means corrupt data, not a long history.
_MAX_HOPS = 100


class IdentityError(ValueError):
    """A manual decision that cannot be applied; the message says why."""


@dataclass
class LinkSummary:
    """What one relink did."""

    patients: int = 0
    pairs_compared: int = 0
    #: Patients that joined another person automatically.
    linked: int = 0
    #: Patients moved out of a person because their data (or a deletion) no longer supports it.
    unlinked: int = 0
    people_created: int = 0
    review_opened: int = 0
    review_closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ReviewEntry:
    id: int
    patient_a: str
    patient_b: str
    person_a: str | None
    person_b: str | None
    score: float
    rule: str
    reasons: list[str]
    created_at: datetime

    def brief(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    action: str
    patient_id: str
    other_patient_id: str | None
    person_id: str | None
    from_person_id: str | None
    manual: bool
    who: str
    reason: str
    score: float | None

    def brief(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@cache
def _default_rules() -> MatchRules:
    return load_rules()


def _now() -> datetime:
    return datetime.now(UTC)


def _take_turn(conn: Connection) -> None:
    conn.execute(update(LOCK).where(LOCK.c.id == 1).values(writes=LOCK.c.writes + 1))


def relink(
    engine: Engine, patient_ids: Iterable[str], rules: MatchRules | None = None
) -> LinkSummary:
    """Re-evaluate only these Patients against their block candidates already in the store.

    Call it with the Patients an ingest run created, updated or deleted. Each is compared with
    its block candidates; then its person and the people of the candidates it links to are
    re-decided together (every pair among their members, strongest link first, pins in
    force), so it joins, leaves or displaces a weaker link as the data now says. ``review``
    decisions, and links refused because another pair forbids the merge, open review items.
    Nothing else in the store is read or changed. Committed in chunks of 500 Patients.
    """
    rules = rules or _default_rules()
    summary = LinkSummary()
    for i, chunk in enumerate(chunks(sorted(set(patient_ids)))):
        with engine.begin() as conn:
            _take_turn(conn)
            if i & (i - 1) == 0 and i:
                _refresh_statistics(conn)
            ws = WorkingSet(conn, rules, _now())
            _relink_chunk(ws, list(chunk), summary, "re-evaluated after the record changed")
    return summary


def _refresh_statistics(conn: Connection) -> None:
    """Let the query planner see how big the identity tables have grown (both databases).

    A first relink of a large store grows them from nothing within one call; a planner still
    working from "empty" scans whole tables for every chunk. Refreshed after chunks 1, 2, 4,
    8, ..., so the statistics stay within a factor of two at a logarithmic cost.
    """
    for table in (BLOCKS, NUMBERS, LINKS, PEOPLE, PINS, REVIEW):
        conn.execute(text(f"ANALYZE {table.name}"))


def patients_of_run(engine: Engine, run_id: str) -> list[str]:
    """The Patients whose current version an ingest run wrote."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(R.c.id).where(R.c.run_id == run_id, R.c.resource_type == "Patient")
            ).scalars()
        )


def relink_run(engine: Engine, run_id: str, rules: MatchRules | None = None) -> LinkSummary:
    """Relink the Patients an ingest run created, updated or deleted."""
    return relink(engine, patients_of_run(engine, run_id), rules)


def relink_all(engine: Engine, rules: MatchRules | None = None) -> LinkSummary:
    """Relink every stored Patient (after the rules file changed, or on a store new to identity)."""
    with engine.connect() as conn:
        ids = list(conn.execute(select(R.c.id).where(R.c.resource_type == "Patient")).scalars())
    return relink(engine, ids, rules)


def _relink_chunk(ws: WorkingSet, chunk: list[str], summary: LinkSummary, why: str) -> None:
    """Relink each Patient of ``chunk`` in turn (and any record a regroup splits off), then
    write everything that changed."""
    first = Actor(SYSTEM_ACTOR, False, "first seen")
    again = Actor(SYSTEM_ACTOR, False, why)
    gone = Actor(SYSTEM_ACTOR, False, "the Patient record is no longer active")
    ws.load_people(chunk)
    found = ws.candidates(chunk)
    ws.load_people({c for mates in found.values() for c in mates})
    ws.load_reviews(chunk)
    reviewed: set[tuple[str, str]] = set()
    pending, done = list(reversed(chunk)), set(chunk)
    while pending:
        pid = pending.pop()
        summary.patients += 1
        if ws.demo[pid] is None:
            if pid in ws.person_of:  # deleted at source: it must not bridge two people
                ws.regroup([pid], gone)
            continue
        ws.ensure_person(pid, first)
        decisions = [(pid, other, ws.judge(pid, other)) for other in sorted(found[pid])]
        summary.pairs_compared += len(decisions)
        partners = [o for _, o, d in decisions if d.outcome == "link" and ws.demo.get(o)]
        for other in partners:
            ws.ensure_person(other, first)
        refused = ws.regroup([pid, *partners], again)
        # A record another's change pushed out meets its own candidates now, as a relink of
        # everything would have it, rather than waiting alone for its own next change.
        for other in sorted(set(ws.take_split_off()) - done):
            done.add(other)
            pending.append(other)
            found.update(ws.candidates([other]))
            ws.load_people(found[other])
        questions = [(a, b, d) for a, b, d in decisions if d.outcome == "review"] + refused
        for a, b, decision in questions:
            apart = ws.person_of.get(a) != ws.person_of.get(b)
            if apart and not ws.pinned(a, b) and ws.demo.get(a) and ws.demo.get(b):
                reviewed.add(pair(a, b))
                summary.review_opened += ws.open_review(a, b, _as_review(decision))
    mine = set(chunk)
    for key in sorted(ws.reviews.keys() - reviewed):
        if key[0] in mine or key[1] in mine:
            summary.review_closed += ws.close_review(key, "superseded", None)
    summary.people_created += ws.people_created
    summary.linked += ws.joined
    summary.unlinked += ws.split
    ws.write()


def _as_review(decision: MatchDecision) -> MatchDecision:
    """A link refused because other records forbid the merge is a question for a person."""
    if decision.outcome == "review":
        return decision
    why = "scored a link, but the merge would join records that must stay apart"
    return MatchDecision("review", decision.score, decision.rule, (why, *decision.reasons))


def _audited(
    engine: Engine, action: Action, who: str, a: str, b: str, change: Callable[[], T]
) -> T:
    """Make a manual decision, then record it (or its refusal) in the audit trail.

    The decision and its reason are already in ``link_event``, in the same transaction as the
    change; the audit entry adds it to the tamper-evident trail IG officers review.
    """

    def entry(outcome: Outcome, rule: str, person: str | None) -> AuditEntry:
        return AuditEntry(
            request_id=str(uuid.uuid4()), action=action, outcome=outcome, user_id=who,
            user_name=who, role_code="", profile=None, org="", purpose=None, rules=(rule,),
            patient_id=person, refs=(f"Patient/{a}", f"Patient/{b}"),
        )  # fmt: skip

    try:
        done = change()
    except IdentityError:
        append(engine, entry("deny", "identity.refused", None))
        raise
    person = done if isinstance(done, str) else None
    append(engine, entry("permit", "identity.manual", person))
    return done


def link(
    engine: Engine, a: str, b: str, *, who: str, reason: str, rules: MatchRules | None = None
) -> str:
    """Manually put two Patients in one person and pin them together; returns the person.

    Their people are re-decided together with the pin in force: a record the rules keep apart
    from one of the newcomers leaves (and is queued for review) rather than staying on the
    strength of a decision made about others. Refused, changing nothing, when it would join
    two Patients a person has kept apart. Audited either way.
    """
    return _audited(
        engine, "identity-link", who, a, b, lambda: _link(engine, a, b, who, reason, rules)
    )


def _link(engine: Engine, a: str, b: str, who: str, reason: str, rules: MatchRules | None) -> str:
    actor = _check_actor(a, b, who, reason)
    with engine.begin() as conn:
        _take_turn(conn)
        ws = WorkingSet(conn, rules or _default_rules(), _now())
        ws.load_people([a, b])
        _require_patients(ws, a, b, active=True)
        ws.ensure_person(a, actor)
        ws.ensure_person(b, actor)
        ws.set_pin(a, b, "together", actor)
        blocked = ws.pinned_apart(ws.members[ws.person_of[a]], ws.members[ws.person_of[b]])
        if blocked:
            raise IdentityError(
                f"{blocked[0]} and {blocked[1]} were kept apart by a person; unlink them first"
            )
        if ws.person_of[a] == ws.person_of[b]:
            ws.note("link", a, b, actor)
        ws.regroup([a, b], Actor(SYSTEM_ACTOR, False, "re-evaluated after a manual link"), actor)
        _resolve(ws, a, b, "linked", who)
        members = sorted(ws.members[ws.person_of[a]])
        _relink_chunk(ws, members, LinkSummary(), "re-evaluated after a manual link")
        return ws.person_of[a]


def unlink(
    engine: Engine, a: str, b: str, *, who: str, reason: str, rules: MatchRules | None = None
) -> tuple[str, str]:
    """Manually separate two Patients and pin them apart; returns their people.

    When they share a person, it is re-decided with the pin in force: every other record
    goes with whichever of the two its strongest links lead to, and may join no one. Audited.
    """
    return _audited(
        engine, "identity-unlink", who, a, b, lambda: _unlink(engine, a, b, who, reason, rules)
    )


def _unlink(
    engine: Engine, a: str, b: str, who: str, reason: str, rules: MatchRules | None
) -> tuple[str, str]:
    actor = _check_actor(a, b, who, reason)
    with engine.begin() as conn:
        _take_turn(conn)
        ws = WorkingSet(conn, rules or _default_rules(), _now())
        ws.load_people([a, b])
        _require_patients(ws, a, b, active=False)
        ws.ensure_person(a, actor)
        ws.ensure_person(b, actor)
        ws.set_pin(a, b, "apart", actor)
        if ws.person_of[a] != ws.person_of[b]:
            ws.note("keep-apart", a, b, actor)
        ws.regroup([a, b], Actor(SYSTEM_ACTOR, False, "re-evaluated after a manual unlink"), actor)
        _resolve(ws, a, b, "kept-apart", who)
        touched = sorted(ws.members[ws.person_of[a]] | ws.members[ws.person_of[b]])
        _relink_chunk(ws, touched, LinkSummary(), "re-evaluated after a manual unlink")
        return ws.person_of[a], ws.person_of[b]


def _check_actor(a: str, b: str, who: str, reason: str) -> Actor:
    if a == b:
        raise IdentityError("a Patient cannot be linked to or unlinked from itself")
    if not who.strip() or not reason.strip():
        raise IdentityError("a manual decision needs who made it and why")
    return Actor(who.strip(), True, reason.strip())


def _require_patients(ws: WorkingSet, a: str, b: str, *, active: bool) -> None:
    for pid in (a, b):
        if ws.demo.get(pid) is None and (active or pid not in ws.person_of):
            raise IdentityError(f"{pid} is not a stored, active Patient")


def _resolve(ws: WorkingSet, a: str, b: str, status: str, who: str) -> None:
    ws.load_reviews([a])
    ws.close_review(pair(a, b), status, who)


def queue(engine: Engine) -> list[ReviewEntry]:
    """Open review items whose Patients are still in different people, highest score first."""
    pa, pb = aliased(LINKS), aliased(LINKS)
    query = (
        select(REVIEW, pa.c.person_id.label("person_a"), pb.c.person_id.label("person_b"))
        .outerjoin(pa, pa.c.patient_id == REVIEW.c.patient_a)
        .outerjoin(pb, pb.c.patient_id == REVIEW.c.patient_b)
        .where(REVIEW.c.status == "open")
        .where(
            or_(
                pa.c.person_id.is_(None), pb.c.person_id.is_(None), pa.c.person_id != pb.c.person_id
            )
        )
        .order_by(REVIEW.c.score.desc(), REVIEW.c.id)
    )
    with engine.connect() as conn:
        return [
            ReviewEntry(
                r.id,
                r.patient_a,
                r.patient_b,
                r.person_a,
                r.person_b,
                r.score,
                r.rule,
                list(r.reasons),
                r.created_at,
            )
            for r in conn.execute(query)
        ]


def person_of(conn: Connection, patient_id: str) -> str | None:
    return conn.execute(
        select(LINKS.c.person_id).where(LINKS.c.patient_id == patient_id)
    ).scalar_one_or_none()


#: Built once, as each read and each transfer asks: a statement made per call costs more CPU
#: than running it does.
_PEOPLE_WITH_NUMBER = (
    select(LINKS.c.person_id)
    .join(NUMBERS, NUMBERS.c.patient_id == LINKS.c.patient_id)
    .where(NUMBERS.c.nhs_number == bindparam("nhs_number"))
    .distinct()
    .order_by(LINKS.c.person_id)
)
#: The person's ``merged_into`` and Patients together: one row per Patient, or one row with
#: no Patient (a link names only an existing person, so no row means no Patients either).
_PERSON_PATIENTS = (
    select(PEOPLE.c.merged_into, LINKS.c.patient_id)
    .select_from(PEOPLE.outerjoin(LINKS, LINKS.c.person_id == PEOPLE.c.id))
    .where(PEOPLE.c.id == bindparam("person_id"))
    .order_by(LINKS.c.patient_id)
)
_PATIENTS = (
    select(LINKS.c.patient_id)
    .where(LINKS.c.person_id == bindparam("person_id"))
    .order_by(LINKS.c.patient_id)
)


def _merged_people(dialect: str) -> CTE:
    """The person bound as ``person_id`` and everyone merged into them, at any remove: what
    was recorded under an id since merged away (a break-glass grant, a hospital stay) is the
    survivor's; an id a split revives is merged into no one, and takes its own back. Each
    remove is found through ``person.merged_into``'s index (``engine.db.probe_each``)."""
    anchor = cast_(bindparam("person_id", type_=String()), PEOPLE.c.id.type)
    found = select(anchor.label("id")).cte("merged_in", recursive=True)
    return found.union(probe_each(select(PEOPLE.c.id), PEOPLE.c.merged_into, found, dialect))


#: :func:`_merged_people` per dialect, built at import: one statement (the facts) reads it in
#: several parts, which must share the one CTE (two of the same name do not compile), and
#: statements are built on first use, by whichever of a worker's threads first asks. Built
#: then, two threads could each build their own and one statement hold both.
_MERGED = {dialect: _merged_people(dialect) for dialect in ("postgresql", "sqlite")}


def merged_people(dialect: str) -> Select[tuple[str]]:
    """The ids :func:`_merged_people` finds, to ask ``IN`` of, for a single row."""
    return select(_MERGED[dialect].c.id)


def merged_in(query: Select[Any], column: ColumnElement[Any], dialect: str) -> Select[Any]:
    """``query``'s rows whose ``column`` names the person bound as ``person_id`` or one merged
    into them, found through ``column``'s index: on PostgreSQL by ``engine.db.probe_each``
    (PostgreSQL cannot tell how few people the recursive query finds); SQLite looks ``IN`` up
    by index as it is. Its columns are ``query``'s, by name: order or limit the result through
    its ``selected_columns``.
    """
    if dialect == "postgresql":
        return probe_each(query, column, _MERGED[dialect], dialect)
    return query.where(column.in_(merged_people(dialect)))


#: The people holding the NHS number bound as ``nhs_number``, each with ``merged_into`` and its
#: Patients: one row per (person, Patient), or one row for a person with none. A subquery, so a
#: caller's one statement can carry it beside what else it reads (``engine.transfer.store``).
HOLDERS = (
    select(PEOPLE.c.id.label("person_id"), PEOPLE.c.merged_into, LINKS.c.patient_id)
    .select_from(PEOPLE.outerjoin(LINKS, LINKS.c.person_id == PEOPLE.c.id))
    .where(
        PEOPLE.c.id.in_(
            select(LINKS.c.person_id)
            .join(NUMBERS, NUMBERS.c.patient_id == LINKS.c.patient_id)
            .where(NUMBERS.c.nhs_number == bindparam("nhs_number"))
        )
    )
    .subquery("holder")
)


def people_with_nhs_number(conn: Connection, nhs_number: str) -> list[str]:
    """The people whose Patients hold this (valid) NHS number, in a stable order."""
    return list(conn.execute(_PEOPLE_WITH_NUMBER, {"nhs_number": nhs_number}).scalars())


def holders(conn: Connection, rows: Iterable[Any]) -> tuple[tuple[str, ...], list[str]]:
    """The people in :data:`HOLDERS` rows (``person_id``, ``merged_into``, ``patient_id``, in
    person then Patient order) and, when exactly one person holds the number, its Patients now:
    what :func:`people_with_nhs_number` and :func:`patients_of` say, from one statement (a
    person merged away still follows to the survivor, with :func:`patients_of`)."""
    rows = [r for r in rows if r.person_id is not None]
    people = tuple(dict.fromkeys(r.person_id for r in rows))
    if len(people) != 1:
        return people, []
    if rows[0].merged_into is not None:
        return people, patients_of(conn, people[0])
    return people, [r.patient_id for r in rows if r.patient_id is not None]


def patients_of(conn: Connection, person_id: str) -> list[str]:
    """The Patients of a person now; a merged-away person id follows to the survivor.

    One statement per person on the way (usually one in all): whether it was merged away,
    and its Patients if it was not."""
    for _ in range(_MAX_HOPS):
        rows = conn.execute(_PERSON_PATIENTS, {"person_id": person_id}).all()
        onward = rows[0].merged_into if rows else None
        if onward is None:
            return [r.patient_id for r in rows if r.patient_id is not None]
        person_id = onward
    return list(conn.execute(_PATIENTS, {"person_id": person_id}).scalars())


def history(engine: Engine, patient_id: str) -> list[HistoryEntry]:
    """Every recorded change involving a Patient, oldest first."""
    query = (
        select(EVENTS)
        .where(or_(EVENTS.c.patient_id == patient_id, EVENTS.c.other_patient_id == patient_id))
        .order_by(EVENTS.c.id)
    )
    with engine.connect() as conn:
        return [
            HistoryEntry(
                r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),  # SQLite keeps no offset
                r.action,
                r.patient_id,
                r.other_patient_id,
                r.person_id,
                r.from_person_id,
                r.manual,
                r.who,
                r.reason,
                r.score,
            )
            for r in conn.execute(query)
        ]


@dataclass(frozen=True)
class Span:
    """A person id a Patient belonged to, and when: ``None`` for an open end."""

    person_id: str
    start: datetime | None
    end: datetime | None


def spans(events: Sequence[HistoryEntry], patient_id: str, current: str | None) -> list[Span]:
    """Each person id ``patient_id`` has belonged to, with when, from its history (pure).

    An id counts for the Patient only while the Patient was in it: once a merge is undone, the
    id may go back to the other records, and what was recorded under it then is theirs.
    """
    moved = sorted(
        (e for e in events if e.patient_id == patient_id and e.person_id != e.from_person_id),
        key=lambda e: e.at,
    )  # a review or a decision that moved nothing leaves the Patient where it was
    if not moved:
        return [Span(current, None, None)] if current else []
    found: list[Span] = []
    if moved[0].from_person_id:
        found.append(Span(moved[0].from_person_id, None, moved[0].at))
    for this, after in zip(moved, [*moved[1:], None], strict=True):
        if this.person_id:
            found.append(Span(this.person_id, this.at, after.at if after else None))
    return found


def held(engine: Engine, patients: Iterable[tuple[str, str]]) -> list[Span]:
    """Every person id these Patients (each with its person now) have belonged to, with when
    (:func:`spans` of each one's history), once each, in a stable order: the entries about
    them are those recorded under one of these ids within its span. An unlink and relink or a
    merge can retire an id, and what was recorded under it then is still theirs; once a merge
    is undone the id may go back to someone else, whose entries are not."""
    found = {
        span
        for patient, person in patients
        for span in spans(history(engine, patient), patient, person)
    }
    return sorted(found, key=lambda s: (s.person_id, str(s.start)))
