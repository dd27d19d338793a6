"""The policy's facts about each stored row, kept beside its body, so a read judges and gathers
from columns and parses only what it releases.

- ``section`` and ``policy_labels``: exactly what ``consent.meta_of`` derives;
- ``relation``: what the row says about the person: for a relationship type the
  ``consent.Tie`` it records, for a ``Consent`` the ``consent.directive`` (both as JSON), for
  an ``Organization`` its ODS code; ``relation_ref``: the ``Organization`` id a tie names by
  reference, so the read resolves it in the same statement;
- ``facts_version``: the rules they were derived by (``Policy.facts_version``).

Ingest writes them (``row_facts``); ``restamp`` derives them for rows stored without them or
under other rules (``scr db restamp``). A row's facts are trusted only under the
``facts_version`` they were derived by: any other row is judged and gathered from its body as
before, so a stale fact never decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, or_, select, update

from consent import ConsentDirective, Policy, Tie, directive, load, meta_of, ods_code, tie
from engine.models import Resource

R = cast(Table, Resource.__table__)
#: Written at ingest beside the body; ``engine.store`` copies them from staging.
FACT_COLUMNS = ("section", "policy_labels", "relation", "relation_ref", "facts_version")
_ORGANIZATION = "Organization/"
_TIMES = frozenset({"recorded", "start", "end"})


@cache
def ingest_policy() -> Policy:
    """The policy ingest derives facts by: the same files the server loads, read once."""
    return load()


def row_facts(
    resource: Mapping[str, Any], source_org: str, labels: str, policy: Policy | None = None
) -> dict[str, str | None]:
    """The fact columns of a row about to be stored, from its body and its label column."""
    policy = policy or ingest_policy()
    meta = meta_of(resource, source_org, labels, policy)
    relation, ref = _relation(resource, policy)
    return {
        "section": meta.section,
        "policy_labels": " ".join(sorted(meta.labels)),
        "relation": relation,
        "relation_ref": ref,
        "facts_version": policy.facts_version,
    }


def _relation(resource: Mapping[str, Any], policy: Policy) -> tuple[str | None, str | None]:
    """(``relation``, ``relation_ref``) of one body."""
    kind = resource.get("resourceType")
    if kind == "Consent":
        found = directive(resource, policy.sensitive, policy.sections)
        return (_encode(found) if found is not None else None), None
    if kind == "Organization":
        return ods_code(resource), None
    recorded = tie(resource)
    if recorded is None:
        return None, None
    ref = recorded.reference
    org_id = ref[len(_ORGANIZATION) :] if ref and ref.startswith(_ORGANIZATION) else None
    return _encode(recorded), org_id


def _encode(fact: Tie | ConsentDirective) -> str:
    doc = {f.name: getattr(fact, f.name) for f in fields(fact)}
    kept = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}
    return orjson.dumps({k: v for k, v in kept.items() if v is not None}).decode()


def _decode(relation: str) -> dict[str, Any]:
    """Times as ``isoformat`` wrote them: ``fromisoformat`` gives back the same instant and
    offset."""
    doc: dict[str, Any] = orjson.loads(relation)
    return {k: datetime.fromisoformat(v) if k in _TIMES else v for k, v in doc.items()}


def stored_tie(relation: str) -> Tie:
    """The ``Tie`` a relationship row's ``relation`` holds."""
    return Tie(**_decode(relation))


def stored_directive(relation: str) -> ConsentDirective:
    """The directive a ``Consent`` row's ``relation`` holds."""
    return ConsentDirective(**({"recorded": None} | _decode(relation)))


def restamp(conn: Connection, policy: Policy, batch: int = 2000) -> int:
    """Derive the facts of every row stored without them or under other rules, in batches
    along the primary key; the number of rows derived.

    A row an ingest changes meanwhile (a new ``version_id``) is left as that ingest wrote it,
    so facts derived from a body it replaced are never written over its own."""
    stale = or_(R.c.facts_version.is_(None), R.c.facts_version != policy.facts_version)
    write = (
        update(R)
        .where(and_(R.c.id == bindparam("row_id"), R.c.version_id == bindparam("seen")))
        .values({c: bindparam(f"new_{c}") for c in FACT_COLUMNS})
    )
    changed, last = 0, ""
    while True:
        rows = conn.execute(
            select(R.c.id, R.c.version_id, R.c.body, R.c.source_org, R.c.labels)
            .where(R.c.id > last, stale)
            .order_by(R.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return changed
        params = []
        for row in rows:
            derived = row_facts(orjson.loads(row.body), row.source_org, row.labels, policy)
            new = {f"new_{c}": v for c, v in derived.items()}
            params.append({"row_id": row.id, "seen": row.version_id, **new})
        conn.execute(write, params)
        changed += len(rows)
        last = rows[-1].id
