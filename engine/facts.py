"""The policy's facts about each stored row, kept beside its body: its section and its labels,
exactly as ``consent.meta_of`` derives them, so a read judges a row from its columns and parses
only what it releases.

Ingest writes them (``row_facts``); ``restamp`` derives them for rows stored without them. A
row's facts are trusted only under the ``facts_version`` they were derived by: a row stored
under other section rules, or before the facts existed, is judged from its body as before, so
a stale fact never decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, bindparam, or_, select, update

from consent import Policy, load, meta_of
from engine.models import Resource

R = cast(Table, Resource.__table__)
#: Written at ingest beside the body; ``engine.store`` copies them from staging.
FACT_COLUMNS = ("section", "policy_labels", "facts_version")


@cache
def ingest_policy() -> Policy:
    """The policy ingest derives facts by: the same files the server loads, read once."""
    return load()


def row_facts(
    resource: Mapping[str, Any], source_org: str, labels: str, policy: Policy | None = None
) -> dict[str, str]:
    """The fact columns of a row about to be stored, from its body and its label column."""
    policy = policy or ingest_policy()
    meta = meta_of(resource, source_org, labels, policy)
    return {
        "section": meta.section,
        "policy_labels": " ".join(sorted(meta.labels)),
        "facts_version": policy.facts_version,
    }


def restamp(conn: Connection, policy: Policy, batch: int = 2000) -> int:
    """Derive the facts of every row stored without them or under other rules, in batches
    along the primary key; the number of rows changed."""
    stale = or_(R.c.facts_version.is_(None), R.c.facts_version != policy.facts_version)
    write = (
        update(R)
        .where(R.c.id == bindparam("row_id"))
        .values(
            section=bindparam("new_section"),
            policy_labels=bindparam("new_labels"),
            facts_version=bindparam("new_version"),
        )
    )
    changed, last = 0, ""
    while True:
        rows = conn.execute(
            select(R.c.id, R.c.body, R.c.source_org, R.c.labels)
            .where(R.c.id > last, stale)
            .order_by(R.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return changed
        params = []
        for row in rows:
            facts = row_facts(orjson.loads(row.body), row.source_org, row.labels, policy)
            params.append(
                {
                    "row_id": row.id,
                    "new_section": facts["section"],
                    "new_labels": facts["policy_labels"],
                    "new_version": facts["facts_version"],
                }
            )
        conn.execute(write, params)
        changed += len(rows)
        last = rows[-1].id
