"""Writes and lookups on stored resources: staging a run batch by batch, then applying it whole.

Everything here is set-based SQL that runs the same on SQLite and PostgreSQL, so a run's cost
is a handful of statements per batch however many resources it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    and_,
    delete,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)

from engine.db import bulk_insert, member_of
from engine.facts import FACT_COLUMNS
from engine.models import QuarantineItem, Resource, ResourceVersion, Staged, StagedResolution

R = cast(Table, Resource.__table__)
V = cast(Table, ResourceVersion.__table__)
S = cast(Table, Staged.__table__)
SR = cast(Table, StagedResolution.__table__)
Q = cast(Table, QuarantineItem.__table__)


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


@dataclass(frozen=True)
class StagedIds:
    """Ids this run has staged already, and the Patients among them."""

    ids: set[str]
    patients: set[str]


def stored(conn: Connection, ids: Sequence[str]) -> Stored:
    """The stored version of each of ``ids``: one statement (a few on SQLite).

    ``ids`` are a batch's resource ids and the patients they cite; each check only asks about
    its own ids, so one superset lookup answers all of them.
    """
    current: dict[str, Current] = {}
    patients: set[str] = set()
    for cond in member_of(conn, R.c.id, ids):
        rows = conn.execute(
            select(R.c.id, R.c.content_hash, R.c.version_id, R.c.status, R.c.resource_type).where(
                cond
            )
        )
        for r in rows:
            current[r.id] = Current(r.content_hash, r.version_id, r.status)
            if r.resource_type == "Patient" and r.status == "active":
                patients.add(r.id)
    return Stored(current, patients)


def staged(conn: Connection, run_id: str, ids: Sequence[str]) -> StagedIds:
    """Which of ``ids`` the run has staged: ask only once its earlier batches are committed."""
    found: set[str] = set()
    patients: set[str] = set()
    for cond in member_of(conn, S.c.resource_id, ids):
        rows = conn.execute(
            select(S.c.resource_id, S.c.resource_type).where(S.c.run_id == run_id, cond)
        )
        for r in rows:
            found.add(r.resource_id)
            if r.resource_type == "Patient":
                patients.add(r.resource_id)
    return StagedIds(found, patients)


def open_quarantine(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    """Open quarantine items by source key (one per key: a key is quarantined at most once)."""
    out: dict[str, int] = {}
    for cond in member_of(conn, Q.c.source_key, keys):
        rows = conn.execute(select(Q.c.source_key, Q.c.id).where(Q.c.status == "open", cond))
        out.update({r.source_key: r.id for r in rows})
    return out


_VERSION_COLUMNS = ("resource_id", "version_id", "last_updated", "content_hash", "body", "status")


def stage(
    conn: Connection, rows: list[dict[str, Any]], resolved: Iterable[str], run_id: str
) -> None:
    """A batch's staged rows, and their versions straight into the history.

    A version belongs to its run: it is history once the run completes, and a run that does
    not complete takes its versions with it (``discard_run``). Writing them batch by batch, on
    the writer thread, keeps that insert out of the apply that the whole run waits for; the
    server copies them from the rows just staged, so the bodies cross the wire once.
    """
    bulk_insert(conn, S, rows)
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


def apply_run(conn: Connection, run_id: str, resolution: str, now: datetime) -> None:
    """Make a run's staged writes visible, all at once (call inside one transaction)."""
    mine = and_(S.c.run_id == run_id)
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
    conn.execute(
        update(Q)
        .where(
            Q.c.status == "open",
            Q.c.source_key.in_(select(SR.c.source_key).where(SR.c.run_id == run_id)),
        )
        .values(status=resolution, resolved_at=now, resolved_run=run_id)
    )
    discard_staging(conn, run_id)


def refresh_statistics(conn: Connection, first: bool) -> None:
    """PostgreSQL only: let the planner see how big the run's tables have grown.

    Without fresh statistics (autovacuum may be off, or behind a bulk load) the planner keeps
    treating ``resource`` and ``staged`` as empty and scans them whole for every batch lookup,
    so an ingest slows as it goes. ``resource`` changes only when a run is applied, so after the
    ``first`` batch only what the run grows is refreshed, and ``staged`` only in the columns its
    lookups filter on (sampling the bodies is most of the cost of analysing it).
    """
    if conn.dialect.name != "postgresql":
        return
    if first:
        conn.execute(text("ANALYZE staged, resource, quarantine"))
    else:
        conn.execute(text("ANALYZE staged (run_id, resource_id, resource_type), quarantine"))


def discard_staging(conn: Connection, run_id: str) -> None:
    conn.execute(delete(S).where(S.c.run_id == run_id))
    conn.execute(delete(SR).where(SR.c.run_id == run_id))


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
