"""Rows kept as taken in, so a delta bringing one side of a join is mapped with the other.

A SystmOne coded event is a problem-list Condition when an SRProblem row names it, else an
Observation (so is an EMIS observation with a CareRecord_Problem row). A delta carries only what
changed: a problem added or removed without its unchanged event, or the event without its
unchanged problem. Without the other side the event could not be mapped again (the Condition
stayed active once the problem was removed) or was taken for a plain observation (an
Observation beside the Condition). The rows of such tables are kept (``kept_row``); a reader
marks the joins it did not meet (``TAKE_STORED_JOINS``) and the joins it met for a row it did
not (``TAKE_STORED_ROW``), and each is mapped here with the other side as last taken in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from adapters.base import SourceRecord
from adapters.mapper import JOINS_KNOWN, TAKE_STORED_JOINS, TAKE_STORED_ROW
from engine import store

#: Records looked up together: one query each, only for chunks with a marked record.
_CHUNK = 500
#: What a reader marks a record with for this module; never part of a kept row.
MARKS = frozenset((TAKE_STORED_JOINS, TAKE_STORED_ROW))


def joined(record: SourceRecord, kept: Mapping[str, Any] | None) -> SourceRecord | None:
    """``record`` with what it takes from its row as last taken in (``kept``, as quarantine
    keeps a record). ``None`` for joins whose row is not kept (never taken in, deleted, or
    held in quarantine): there is nothing to map again. A row whose joins are not kept either
    (kept before rows were) is mapped as read, its joins unknown."""
    fields = record.fields
    replaced = fields.get(TAKE_STORED_ROW)
    if replaced is not None:
        if kept is None:
            return None
        row = SourceRecord.from_json(kept)
        merged = {k: v for k, v in row.fields.items() if k not in replaced and k not in MARKS}
        merged.update((k, v) for k, v in fields.items() if k != TAKE_STORED_ROW)
        return SourceRecord(row.ref, record.file, record.line, merged, record.read_issues)
    wanted = fields.get(TAKE_STORED_JOINS)
    if wanted is None or kept is None:
        return record
    stored = kept["fields"]
    merged = {k: v for k, v in fields.items() if k != TAKE_STORED_JOINS}
    merged.update((k, stored[k]) for k in wanted if k in stored)
    merged[JOINS_KNOWN] = "true"
    return replace(record, fields=merged)


def with_kept(
    engine: Engine, records: Iterable[SourceRecord], notes: list[str]
) -> Iterator[SourceRecord]:
    """``records`` in order, each marked one joined with its kept row (``joined``); joins for
    a row not kept are left out and counted in ``notes``."""
    unkept: Counter[str] = Counter()
    chunk: list[SourceRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= _CHUNK:
            yield from _joined_chunk(engine, chunk, unkept)
            chunk = []
    yield from _joined_chunk(engine, chunk, unkept)
    notes.extend(
        f"{count} row(s) of {file} changed what rows not stored are joined to (never taken in, "
        "deleted, or in quarantine): nothing to map again"
        for file, count in sorted(unkept.items())
    )


def _joined_chunk(
    engine: Engine, chunk: list[SourceRecord], unkept: Counter[str]
) -> Iterator[SourceRecord]:
    marked = [
        r.ref.key for r in chunk if TAKE_STORED_ROW in r.fields or TAKE_STORED_JOINS in r.fields
    ]
    if not marked:
        yield from chunk
        return
    with engine.connect() as conn:
        kept = store.kept_rows(conn, marked)
    for record in chunk:
        out = joined(record, kept.get(record.ref.key))
        if out is None:
            unkept[record.file] += 1
            continue
        yield out
