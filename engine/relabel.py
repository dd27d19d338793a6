"""Labels passed back: what a run labels a record with reaches the stored records naming it.

A course, an issue or a result recorded under a problem is labelled with the problem's
confidentiality and sensitive category when it is read: by the reader when the problem is in
the same extract, from the store when an earlier one brought it (``_pointed_records``). A later
extract that makes the problem confidential, or recodes it as sensitive, without bringing those
records again would leave them as they were, and release them. So at the end of a run, inside
its transaction, each label the run's records carry that passes on (``labels.passes_on``) is
added to the stored records that name them (``pointer``), then to the records naming those,
until nothing changes; each change is a new version, as an update is.

Labels are only added here, never taken away: a record keeps one it inherited until its own row
comes again and is read afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, insert, select, update

from adapters import labels
from engine.canonical import content_hash, dumps, loads
from engine.db import member_of
from engine.facts import FACT_COLUMNS, row_facts
from engine.store import RS, SI, P, R, S, V


def relabelled(
    body: dict[str, Any], codes: set[str], canonical_base: str, version: int, stamp: str
) -> dict[str, Any] | None:
    """``body`` as its next version with the labels ``codes`` added, or ``None`` when it
    already has them all (pure: the stored body is not changed)."""
    have = set(labels.column(body, canonical_base).split())
    missing = sorted(codes - have)
    if not missing:
        return None
    out: dict[str, Any] = loads(dumps(body))
    labels.add_labels(out, labels.confidential_labels(canonical_base, *missing))
    out["meta"]["versionId"] = str(version)
    out["meta"]["lastUpdated"] = stamp
    return out


def pass_back(conn: Connection, run_id: str, canonical_base: str, now: datetime) -> int:
    """Add the labels the run gave its records to the stored records naming them; call with
    the run's rows and pointers applied, before its staging area is cleared. Returns how many
    records were relabelled.

    A record the run took in saw, when read, the labels of what it names as its extract gave
    them (met) or as they were stored (``staged_inherit``): it takes a label from a record the
    run read only if it saw that record as stored; from a record relabelled here, always.
    """
    mine = select(S.c.source_key, S.c.labels).where(S.c.run_id == run_id, S.c.labels != "")
    gained = _passing((row.source_key, row.labels) for row in conn.execute(mine))
    count, read = 0, True
    while gained:
        holders = _holders(conn, run_id, gained, read)
        changed = _relabel(conn, run_id, holders, canonical_base, now)
        count += len(changed)
        gained, read = _passing(changed), False
    return count


def _passing(rows: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Source key → the label codes its rows pass on, for ``(source_key, labels)`` pairs."""
    out: dict[str, set[str]] = {}
    for key, column in rows:
        codes = {c for c in column.split() if labels.passes_on(c)}
        if codes:
            out.setdefault(key, set()).update(codes)
    return out


#: For a record naming others: the codes it should carry if the run did not take it in, and
#: if it did.
Holder = tuple[set[str], set[str]]


def _holders(
    conn: Connection, run_id: str, gained: Mapping[str, set[str]], read: bool
) -> dict[str, Holder]:
    """The records naming any of ``gained`` and the codes they should carry from them;
    ``read``: ``gained`` are records the run read (else records relabelled here)."""
    inherited = exists().where(
        SI.c.run_id == run_id, SI.c.from_key == P.c.from_key, SI.c.to_key == P.c.to_key
    )
    out: dict[str, Holder] = {}
    for cond in member_of(conn, P.c.to_key, list(gained)):
        for row in conn.execute(select(P.c.from_key, P.c.to_key, inherited).where(cond)):
            untaken, taken = out.setdefault(row.from_key, (set(), set()))
            codes = gained[row.to_key]
            untaken.update(codes)
            if row[2] or not read:
                taken.update(codes)
    return out


def _relabel(
    conn: Connection,
    run_id: str,
    holders: Mapping[str, Holder],
    canonical_base: str,
    now: datetime,
) -> list[tuple[str, str]]:
    """Write a new version of each active stored row of ``holders`` that lacks one of the
    codes it should carry; ``(source_key, labels)`` of each row written."""
    taken = exists().where(RS.c.run_id == run_id, RS.c.resource_id == R.c.id)
    stamp = now.isoformat()
    updates: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    changed: list[tuple[str, str]] = []
    for cond in member_of(conn, R.c.source_key, list(holders)):
        rows = conn.execute(
            select(R.c.id, R.c.source_key, R.c.source_org, R.c.version_id, R.c.body, taken).where(
                cond, R.c.status == "active"
            )
        )
        for row in rows:
            version = row.version_id + 1
            codes = holders[row.source_key][1 if row[5] else 0]
            body = relabelled(loads(row.body), codes, canonical_base, version, stamp)
            if body is None:
                continue
            column = labels.column(body, canonical_base)
            content = {
                "version_id": version,
                "last_updated": now,
                "content_hash": content_hash(body),
                "body": dumps(body),
            }
            updates.append(
                {
                    "rid": row.id,
                    **content,
                    "labels": column,
                    "run_id": run_id,
                    **row_facts(body, row.source_org, column),
                }
            )
            versions.append(
                {"resource_id": row.id, **content, "status": "active", "run_id": run_id}
            )
            changed.append((row.source_key, column))
    if updates:
        columns = ("version_id", "last_updated", "content_hash", "body", "labels", "run_id")
        conn.execute(
            update(R)
            .where(R.c.id == bindparam("rid"))
            .values({c: bindparam(c) for c in (*columns, *FACT_COLUMNS)}),
            updates,
        )
        conn.execute(insert(V), versions)
    return changed
