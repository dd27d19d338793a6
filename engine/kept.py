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

from adapters.base import Issue, SourceRecord
from adapters.extract import JOINED_PATIENT, JOINED_ROW_PROBLEM
from adapters.mapper import JOINS_KNOWN, TAKE_STORED_JOINS, TAKE_STORED_ROW
from engine import store

#: What a reader lists as the records a record names that it met in the extract.
MET_RECORDS = "_met_records"

#: Records looked up together: one query each, only for chunks with a marked record.
_CHUNK = 500
#: What a reader marks a record with for this module; never part of a kept row.
MARKS = frozenset((TAKE_STORED_JOINS, TAKE_STORED_ROW, JOINED_PATIENT))
#: How the ingest's reason for holding a later copy of a row one extract sent twice begins.
DUPLICATE = "duplicate row identifier"
#: What joins brought for a copy held as a duplicate are marked with: its item's reason, for
#: the ingest to hold them again in that item (``ingest._held_copy``).
HELD_COPY = "_HeldCopy"


def latest(
    record: SourceRecord, kept: store.Seen | None, held: store.Seen | None
) -> store.Seen | None:
    """The row ``record`` is joined with, as last seen: its open quarantine item's record
    (``held``: newer than the kept row, which a later run taking the row in would have
    replaced), unless ``record`` wants joins that one never knew, or the item is of the run
    that took the kept row in (one extract sending the row twice: the copy held is no newer
    version); else the kept row."""
    if (
        held is not None
        and (kept is None or held.run_id != kept.run_id)
        and (TAKE_STORED_ROW in record.fields or TAKE_STORED_JOINS not in held.record["fields"])
    ):
        return held
    return kept


def _held_as_copy(record: SourceRecord, row: store.Seen | None) -> str | None:
    """Why ``record``, joins brought for a row whose ``row`` as last seen is a copy held as a
    duplicate, is held again: the extract that sent the row twice took in neither copy, so
    which is the row is for a person to decide. Held in the copy's item, the joins wait there
    for the replay that decides."""
    if TAKE_STORED_ROW not in record.fields or row is None or row.reason is None:
        return None
    return row.reason if row.reason.startswith(DUPLICATE) else None


def joined(record: SourceRecord, row: Mapping[str, Any] | None) -> SourceRecord | None:
    """``record`` with what it takes from its ``row`` as last seen (``latest``, as quarantine
    keeps a record). ``None`` for joins of a row never seen, or deleted: there is nothing to
    map again. A row whose joins were never kept (kept before rows were) is mapped as read,
    its joins unknown.

    Joins brought for a row the extract does not hold are mapped with that row where it was
    read (its file and line, its read issues), as a replay is: it met none of the records it
    names, so takes their stored labels (a consultation made confidential since). A joined
    row naming another patient than the row holds the row in quarantine, saying so.
    """
    fields = record.fields
    replaced = fields.get(TAKE_STORED_ROW)
    if replaced is not None:
        if row is None:
            return None
        base = SourceRecord.from_json(row)
        skip = {*replaced, *MARKS, MET_RECORDS}
        merged = {k: v for k, v in base.fields.items() if k not in skip}
        merged.update((k, v) for k, v in fields.items() if k not in MARKS)
        issues = (
            *(i for i in base.read_issues if not _from(i, record.file)),
            *record.read_issues,
            *_other_patient(fields, base, record.file),
        )
        return SourceRecord(base.ref, base.file, base.line, merged, issues)
    wanted = fields.get(TAKE_STORED_JOINS)
    if wanted is None or row is None:
        return record
    base = SourceRecord.from_json(row)
    merged = {k: v for k, v in fields.items() if k != TAKE_STORED_JOINS}
    merged.update((k, base.fields[k]) for k in wanted["fields"] if k in base.fields)
    merged[JOINS_KNOWN] = "true"
    # The joins come with what held them: a problem row read with a problem, or another
    # patient's, holds the row again (a held row is the base only while it is in quarantine).
    taken = (i for i in base.read_issues if _from(i, wanted["file"]))
    return replace(record, fields=merged, read_issues=(*record.read_issues, *taken))


def _from(issue: Issue, file: str) -> bool:
    """Whether ``issue`` is a joined row's of ``file`` (the joins it goes with)."""
    return issue.field == JOINED_ROW_PROBLEM and issue.reason.startswith((f"{file}:", f"{file},"))


def _other_patient(fields: Mapping[str, Any], base: SourceRecord, file: str) -> tuple[Issue, ...]:
    column, patient = fields.get(JOINED_PATIENT) or ("", "")
    own = str(base.fields.get(column, "")).strip()
    if not patient or patient == own:
        return ()
    why = f"{file}: the joined row names patient {patient}, not this row's {column} {own}"
    return (Issue(JOINED_ROW_PROBLEM, f"{why}: correct it at the source and ingest again"),)


def with_kept(
    engine: Engine, records: Iterable[SourceRecord], notes: list[str]
) -> Iterator[SourceRecord]:
    """``records`` in order, each marked one joined with its row as last seen (``joined``);
    joins for a row never seen are left out and counted in ``notes``."""
    unkept: Counter[str] = Counter()
    chunk: list[SourceRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= _CHUNK:
            yield from _joined_chunk(engine, chunk, unkept)
            chunk = []
    yield from _joined_chunk(engine, chunk, unkept)
    notes.extend(
        f"{count} row(s) of {file} changed what rows never seen (or deleted) are joined to: "
        "nothing to map again"
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
        held = store.open_records(conn, marked)
    for record in chunk:
        key = record.ref.key
        row = latest(record, kept.get(key), held.get(key))
        out = joined(record, row.record if row is not None else None)
        if out is None:
            unkept[record.file] += 1
            continue
        reason = _held_as_copy(record, row)
        yield out if reason is None else replace(out, fields={**out.fields, HELD_COPY: reason})
