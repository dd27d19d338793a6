"""Writes and lookups on stored resources: staging a run batch by batch, then applying it whole.

Everything here is set-based SQL that runs the same on SQLite and PostgreSQL, so a run's cost
is a handful of statements per batch however many resources it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal,
    null,
    select,
    text,
    tuple_,
    update,
)

from adapters import labels
from engine.db import bulk_insert, in_one_trip, member_of
from engine.facts import FACT_COLUMNS
from engine.models import (
    KeptRow,
    Pointer,
    QuarantineItem,
    Resource,
    ResourceVersion,
    RunSeen,
    Staged,
    StagedInherit,
    StagedKeptRow,
    StagedPointer,
    StagedResolution,
)

R = cast(Table, Resource.__table__)
V = cast(Table, ResourceVersion.__table__)
S = cast(Table, Staged.__table__)
SR = cast(Table, StagedResolution.__table__)
RS = cast(Table, RunSeen.__table__)
Q = cast(Table, QuarantineItem.__table__)
P = cast(Table, Pointer.__table__)
SP = cast(Table, StagedPointer.__table__)
SI = cast(Table, StagedInherit.__table__)
K = cast(Table, KeptRow.__table__)
SK = cast(Table, StagedKeptRow.__table__)


@dataclass(frozen=True)
class Current:
    content_hash: str
    version_id: int
    status: str


@dataclass(frozen=True)
class Stored:
    """What the store holds of a batch's ids. A run does not change it until it applies."""

    #: The stored version of each id that is stored.
    current: dict[str, Current]
    #: Active Patients among the stored ids.
    patients: set[str]
    #: The ids stored active under each of the batch's source keys.
    live: dict[str, set[str]]


@dataclass(frozen=True)
class RunState:
    """What the run has written so far that a batch's checks ask about."""

    #: Ids this run has taken in already (changed or not), and the Patients among them.
    ids: set[str]
    patients: set[str]
    #: Open quarantine items by source key (a key is quarantined at most once).
    open: dict[str, int]


def stored(conn: Connection, ids: Sequence[str], keys: Sequence[str]) -> Stored:
    """The stored version of each of ``ids``, and what is stored active under each of
    ``keys``: one round trip on PostgreSQL.

    ``ids`` are a batch's resource ids and the patients they cite; each check only asks about
    its own ids, so one superset lookup answers all of them. ``keys`` are its records' source
    keys: what one of them holds that its record no longer yields is to be withdrawn.
    """
    selects = [
        *(
            select(
                literal("id"),
                R.c.id,
                R.c.content_hash,
                R.c.version_id,
                R.c.status,
                R.c.resource_type,
            ).where(cond)
            for cond in member_of(conn, R.c.id, ids)
        ),
        *(
            select(literal("key"), R.c.id, R.c.source_key, null(), null(), null()).where(
                cond, R.c.status == "active"
            )
            for cond in member_of(conn, R.c.source_key, keys, probe=True)
        ),
    ]
    found = Stored({}, set(), {})
    for kind, rid, value, version, status, rtype in in_one_trip(conn, selects):
        if kind == "key":
            found.live.setdefault(value, set()).add(rid)
            continue
        found.current[rid] = Current(value, version, status)
        if rtype == "Patient" and status == "active":
            found.patients.add(rid)
    return found


def withdrawn(conn: Connection, ids: Sequence[str]) -> list[Row[Any]]:
    """The stored rows of ``ids`` that are still active, bodies and all, to be withdrawn."""
    found: list[Row[Any]] = []
    for cond in member_of(conn, R.c.id, ids):
        found.extend(
            conn.execute(
                select(
                    R.c.id,
                    R.c.resource_type,
                    R.c.version_id,
                    R.c.content_hash,
                    R.c.status,
                    R.c.body,
                    R.c.source_key,
                    R.c.source_system,
                    R.c.source_org,
                    R.c.patient_id,
                    R.c.labels,
                ).where(cond, R.c.status == "active")
            )
        )
    return found


@dataclass
class Named:
    """What the stored records of one source key pass on to records naming them: labels,
    and whose they are (a record naming another patient's is wrongly joined)."""

    labels: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)


def named(conn: Connection, keys: Sequence[str]) -> dict[str, Named]:
    """For each of source ``keys`` stored, the labels its records pass on and their patients."""
    found: dict[str, Named] = {}
    for cond in member_of(conn, R.c.source_key, keys):
        rows = conn.execute(select(R.c.source_key, R.c.labels, R.c.patient_id).where(cond))
        for row in rows:
            entry = found.setdefault(row.source_key, Named())
            entry.labels.update(code for code in row.labels.split() if labels.passes_on(code))
            if row.patient_id:
                entry.patients.add(row.patient_id)
    return found


def pointers(conn: Connection, keys: Sequence[str]) -> dict[str, set[str]]:
    """The source keys each record of ``keys`` was stored naming."""
    found: dict[str, set[str]] = {}
    for cond in member_of(conn, P.c.from_key, keys):
        for row in conn.execute(select(P.c.from_key, P.c.to_key).where(cond)):
            found.setdefault(row.from_key, set()).add(row.to_key)
    return found


def run_state(conn: Connection, run_id: str, ids: Sequence[str], keys: Sequence[str]) -> RunState:
    """Which of ``ids`` the run has taken in, and the open quarantine items of ``keys``: one
    round trip on PostgreSQL. Ask only once the run's earlier batches are written."""
    selects = [
        *(
            select(literal("seen"), RS.c.resource_id, RS.c.resource_type, null()).where(
                RS.c.run_id == run_id, cond
            )
            for cond in member_of(conn, RS.c.resource_id, ids)
        ),
        *(
            select(literal("open"), Q.c.source_key, null(), Q.c.id).where(
                Q.c.status == "open", cond
            )
            for cond in member_of(conn, Q.c.source_key, keys)
        ),
    ]
    state = RunState(set(), set(), {})
    for row in in_one_trip(conn, selects):
        kind, key = row[0], row[1]
        if kind == "open":
            state.open[key] = row[3]
            continue
        state.ids.add(key)
        if row[2] == "Patient":
            state.patients.add(key)
    return state


_VERSION_COLUMNS = ("resource_id", "version_id", "last_updated", "content_hash", "body", "status")


def stage(
    conn: Connection,
    run_id: str,
    rows: list[dict[str, Any]],
    seen: list[dict[str, Any]],
    resolved: Iterable[str],
    pointed: Sequence[dict[str, Any]] = (),
    inherited: Sequence[dict[str, Any]] = (),
) -> None:
    """A batch's staged rows, and their versions straight into the history; every id it took
    in (``seen``: ``resource_id`` and ``resource_type``, changed or not); the source keys it
    took in that have open quarantine items; the changes to what its records name (``pointed``:
    ``from_key``, ``to_key`` and whether it is ``gone``), and what they took stored labels from
    (``inherited``: ``from_key``, ``to_key``).

    A version belongs to its run: it is history once the run completes, and a run that does
    not complete takes its versions with it (``discard_run``). Writing them batch by batch, on
    the writer thread, keeps that insert out of the apply that the whole run waits for; the
    server copies them from the rows just staged, so the bodies cross the wire once.
    """
    bulk_insert(conn, S, rows)
    bulk_insert(conn, RS, [{"run_id": run_id, **r} for r in seen])
    for cond in member_of(conn, S.c.resource_id, [r["resource_id"] for r in rows]):
        conn.execute(
            insert(V).from_select(
                [*_VERSION_COLUMNS, "run_id"],
                select(*(S.c[c] for c in _VERSION_COLUMNS), S.c.run_id).where(
                    S.c.run_id == run_id, cond
                ),
            )
        )
    res = [{"run_id": run_id, "source_key": k} for k in resolved]
    if res:
        conn.execute(insert(SR), res)
    bulk_insert(conn, SP, [{"run_id": run_id, **p} for p in pointed])
    bulk_insert(conn, SI, [{"run_id": run_id, **p} for p in inherited])


def stage_kept(conn: Connection, run_id: str, kept: Sequence[dict[str, Any]]) -> None:
    """A batch's source rows to keep (``source_key``, and ``record``, null for a row deleted),
    until the run applies them (``apply_kept``). The last of each key's rows replaces what the
    run staged for it before (a deleted row met twice is taken in twice)."""
    last = {k["source_key"]: k for k in kept}
    for cond in member_of(conn, SK.c.source_key, list(last)):
        conn.execute(delete(SK).where(SK.c.run_id == run_id, cond))
    bulk_insert(conn, SK, [{"run_id": run_id, **k} for k in last.values()])


def keep_rows(conn: Connection, run_id: str, kept: Sequence[dict[str, Any]]) -> None:
    """A batch's source rows to keep, straight into ``kept_row``: in the run's own transaction
    (PostgreSQL), where nothing is seen until the run commits, they need no staging."""
    last = {k["source_key"]: k["record"] for k in kept}
    for cond in member_of(conn, K.c.source_key, list(last)):
        conn.execute(delete(K).where(cond))
    rows = [{"source_key": k, "record": r, "run_id": run_id} for k, r in last.items() if r]
    bulk_insert(conn, K, rows)


def keep_open(conn: Connection, run_id: str, keys: Sequence[str]) -> None:
    """Leave open the quarantine items of ``keys``, quarantined again by a later batch of the
    run that an earlier batch had taken them in from (a row met twice: its first copy is
    taken in, its second quarantined as a duplicate)."""
    for cond in member_of(conn, SR.c.source_key, keys):
        conn.execute(delete(SR).where(SR.c.run_id == run_id, cond))


def update_items(conn: Connection, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Rewrite quarantine items in place (``(id, values)``, each with the same columns: a
    record quarantined again), in one statement run for all of them."""
    if not updates:
        return
    columns = list(updates[0][1])
    statement = (
        update(Q)
        .where(Q.c.id == bindparam("item_id"))
        .values({c: bindparam(f"new_{c}", type_=Q.c[c].type) for c in columns})
    )
    rows = [{"item_id": item, **{f"new_{c}": v[c] for c in columns}} for item, v in updates]
    conn.execute(statement, rows)


def apply_rows(
    conn: Connection, run_id: str, batch: Sequence[Mapping[str, Any]] | None = None
) -> None:
    """Copy the run's staged rows (only those of ``batch``, when given) into ``resource``.

    Inside the run's transaction, so whether it is done once at the end or batch by batch,
    nothing is visible until the run commits. A batch runs only the statements its rows need.
    """
    if batch is None:
        mine = S.c.run_id == run_id
        _apply_creates(conn, run_id, mine)
        _apply_updates(conn, run_id, mine)
        return
    for op, apply in (("create", _apply_creates), ("update", _apply_updates)):
        ids = [r["resource_id"] for r in batch if r["op"] == op]
        for cond in member_of(conn, S.c.resource_id, ids):
            apply(conn, run_id, and_(S.c.run_id == run_id, cond))


def _apply_creates(conn: Connection, run_id: str, mine: ColumnElement[bool]) -> None:
    conn.execute(
        insert(R).from_select(
            [
                "id",
                "resource_type",
                "version_id",
                "last_updated",
                "content_hash",
                "body",
                "status",
                "source_key",
                "source_system",
                "source_org",
                "patient_id",
                "labels",
                "run_id",
                *FACT_COLUMNS,
            ],
            select(
                S.c.resource_id,
                S.c.resource_type,
                S.c.version_id,
                S.c.last_updated,
                S.c.content_hash,
                S.c.body,
                S.c.status,
                S.c.source_key,
                S.c.source_system,
                S.c.source_org,
                S.c.patient_id,
                S.c.labels,
                literal(run_id),
                *(S.c[c] for c in FACT_COLUMNS),
            ).where(mine, S.c.op == "create"),
        )
    )


def _apply_updates(conn: Connection, run_id: str, mine: ColumnElement[bool]) -> None:
    conn.execute(
        update(R)
        .where(R.c.id == S.c.resource_id, mine, S.c.op == "update")
        .values(
            version_id=S.c.version_id,
            last_updated=S.c.last_updated,
            content_hash=S.c.content_hash,
            body=S.c.body,
            status=S.c.status,
            patient_id=S.c.patient_id,
            labels=S.c.labels,
            run_id=literal(run_id),
            **{c: S.c[c] for c in FACT_COLUMNS},
        )
    )


def apply_pointers(conn: Connection, run_id: str) -> None:
    """Make the run's staged changes to ``pointer``, inside the run's transaction."""
    mine = SP.c.run_id == run_id
    conn.execute(
        delete(P).where(
            tuple_(P.c.from_key, P.c.to_key).in_(
                select(SP.c.from_key, SP.c.to_key).where(mine, SP.c.gone)
            )
        )
    )
    conn.execute(
        insert(P).from_select(
            ["from_key", "to_key"],
            select(SP.c.from_key, SP.c.to_key).where(mine, SP.c.gone.is_(False)),
        )
    )


class Seen(NamedTuple):
    """A row as a run last saw it: kept (taken in) or held in quarantine, and that run."""

    record: dict[str, Any]
    run_id: str
    #: Why a held row is held (its item's reason); none for a kept row.
    reason: str | None = None


def kept_rows(conn: Connection, keys: Sequence[str]) -> dict[str, Seen]:
    """The source rows kept for ``keys`` (``engine.kept``), as quarantine keeps a record."""
    found: dict[str, Seen] = {}
    for cond in member_of(conn, K.c.source_key, keys):
        rows = conn.execute(select(K.c.source_key, K.c.record, K.c.run_id).where(cond))
        found.update((row.source_key, Seen(row.record, row.run_id)) for row in rows)
    return found


def open_records(conn: Connection, keys: Sequence[str]) -> dict[str, Seen]:
    """The records the open quarantine items of ``keys`` hold, with the run that held them
    and why."""
    found: dict[str, Seen] = {}
    for cond in member_of(conn, Q.c.source_key, keys):
        rows = conn.execute(
            select(Q.c.source_key, Q.c.record, Q.c.run_id, Q.c.reason).where(
                Q.c.status == "open", cond
            )
        )
        found.update((row.source_key, Seen(row.record, row.run_id, row.reason)) for row in rows)
    return found


def apply_kept(conn: Connection, run_id: str) -> None:
    """Make the run's staged kept rows the kept ones, inside the run's transaction: a row it
    deleted is kept no more."""
    mine = SK.c.run_id == run_id
    conn.execute(delete(K).where(K.c.source_key.in_(select(SK.c.source_key).where(mine))))
    conn.execute(
        insert(K).from_select(
            ["source_key", "record", "run_id"],
            select(SK.c.source_key, SK.c.record, SK.c.run_id).where(mine, SK.c.record.is_not(None)),
        )
    )


def finish_run(conn: Connection, run_id: str, resolution: str, now: datetime) -> None:
    """Close the quarantine items the run resolved and clear its staging area; its rows must
    have been applied (``apply_rows``) in the same transaction."""
    conn.execute(
        update(Q)
        .where(
            Q.c.status == "open",
            Q.c.source_key.in_(select(SR.c.source_key).where(SR.c.run_id == run_id)),
        )
        .values(status=resolution, resolved_at=now, resolved_run=run_id)
    )
    discard_staging(conn, run_id)


def refresh_statistics(conn: Connection) -> None:
    """PostgreSQL only: let the planner see how big the run's own tables have grown.

    Without fresh statistics (autovacuum may be off, or behind a bulk load) the planner keeps
    treating them as empty and scans them whole for every batch lookup, so an ingest slows as
    it goes. ``staged`` is refreshed only in the columns its statements filter on (sampling
    the bodies is most of the cost of analysing it). ``resource`` is left to autovacuum:
    sampling it reads most of the table, about 0.35 s a run at 170,000 resources and growing
    with the store, and its look-ups (a list probed against the primary key) are planned from
    its current size whatever its statistics say.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE staged (run_id, resource_id), run_seen, quarantine"))


def discard_staging(conn: Connection, run_id: str) -> None:
    conn.execute(delete(S).where(S.c.run_id == run_id))
    conn.execute(delete(RS).where(RS.c.run_id == run_id))
    conn.execute(delete(SR).where(SR.c.run_id == run_id))
    conn.execute(delete(SP).where(SP.c.run_id == run_id))
    conn.execute(delete(SI).where(SI.c.run_id == run_id))
    conn.execute(delete(SK).where(SK.c.run_id == run_id))


def discard_run(conn: Connection, run_id: str) -> None:
    """Everything a run that did not complete wrote: its versions and its staging area.

    Its versions are found through what it staged (each batch wrote both in one transaction),
    so the history's primary key finds them however long the history is.
    """
    mine = select(S.c.resource_id, S.c.version_id).where(S.c.run_id == run_id)
    conn.execute(
        delete(V).where(V.c.run_id == run_id, tuple_(V.c.resource_id, V.c.version_id).in_(mine))
    )
    discard_staging(conn, run_id)
