"""Inspect and replay quarantined records.

Replay maps the kept record again with today's maps (and, when a person corrects a value, with
that correction), through the same pipeline as an ingest; an item that still fails stays open
with its new reason, one that succeeds is closed as ``replayed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Engine, Table, Text, select

from adapters.base import CorrectionRefused, MapContext, SourceRecord, source_key
from adapters.codes import MAPPINGS_DIR, CodeMaps
from adapters.mapper import compiled_table_map
from engine.canonical import loads
from engine.identity import Members, members_of_patient
from engine.ingest import RunSummary, run_records
from engine.models import QuarantineItem, Resource
from engine.registry import adapter_for
from engine.settings import Settings

Q = cast(Table, QuarantineItem.__table__)
R = cast(Table, Resource.__table__)


@dataclass(frozen=True)
class Item:
    id: int
    kind: str
    source_key: str
    file: str
    line: int
    field: str | None
    reason: str
    status: str
    record: dict[str, Any]

    def brief(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source_key": self.source_key,
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "status": self.status,
        }


def person_of(engine: Engine, item: Item) -> Members | None:
    """The stored person a quarantined source row is about, when its table map names the
    row's patient (``patient``: a column, or the row itself) and that patient is stored: an
    operator shown the row reads about them, and their access report must say so."""
    ref = SourceRecord.from_json(item.record).ref
    if not (MAPPINGS_DIR / ref.system / f"{ref.table}.json").exists():
        return None  # a source without table maps (a GP Connect bundle) names no column
    patient = compiled_table_map(ref.system, ref.table).patient
    if patient == "self":
        key = ref.key
    elif isinstance(patient, Mapping):
        pid = str(item.record["fields"].get(patient["column"], "")).strip()
        if not pid:
            return None
        key = source_key(ref.system, ref.org, patient["table"], pid)
    else:
        return None
    with engine.connect() as conn:
        found = conn.execute(
            select(R.c.id).where(R.c.source_key == key, R.c.resource_type == "Patient")
        ).scalar()
        return members_of_patient(conn, found) if found else None


#: An item's columns, its record as the text it was written as, so that a decimal it holds is
#: read back as written (``loads``), not as a binary float.
_ITEM = select(*(c for c in Q.c if c.name != "record"), Q.c.record.cast(Text).label("record"))


def _item(row: Any) -> Item:
    return Item(
        row.id,
        row.kind,
        row.source_key,
        row.file,
        row.line,
        row.field,
        row.reason,
        row.status,
        loads(row.record.encode()),
    )


def list_items(engine: Engine, status: str | None = "open", limit: int = 1000) -> list[Item]:
    query = _ITEM.order_by(Q.c.id).limit(limit)
    if status:
        query = query.where(Q.c.status == status)
    with engine.connect() as conn:
        return [_item(r) for r in conn.execute(query)]


def get_item(engine: Engine, item_id: int) -> Item | None:
    with engine.connect() as conn:
        row = conn.execute(_ITEM.where(Q.c.id == item_id)).first()
    return _item(row) if row else None


def _open_items(engine: Engine, ids: Sequence[int]) -> Iterator[Item]:
    query = _ITEM.where(Q.c.status == "open").order_by(Q.c.id)
    if ids:
        query = query.where(Q.c.id.in_(list(ids)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    for row in rows:
        yield _item(row)


def _check_free(engine: Engine, key: str, item_id: int) -> None:
    """A corrected key must name no other record: taken as given, it would update a stored
    one with this row's values, or close another open item that was never taken in."""
    with engine.connect() as conn:
        stored = conn.execute(select(R.c.id).where(R.c.source_key == key).limit(1)).first()
        other = conn.execute(
            select(Q.c.id).where(Q.c.source_key == key, Q.c.status == "open", Q.c.id != item_id)
        ).first()
    if stored is not None:
        raise CorrectionRefused(
            f"the corrected key {key} names a record already stored: a correction cannot make "
            "one record another (if this row is that one, the source has sent it since)"
        )
    if other is not None:
        raise CorrectionRefused(
            f"the corrected key {key} names open item {other.id}: a correction cannot make "
            "one record another"
        )


class OneRecordOnly(CorrectionRefused):
    """Corrections were given for more than one record (or for all open items)."""


def replay(
    engine: Engine,
    settings: Settings,
    codes: CodeMaps,
    ids: Sequence[int] = (),
    corrections: dict[str, str] | None = None,
) -> RunSummary:
    """Replay open items (all, or the given ids) in the order they were quarantined.

    ``corrections`` replaces field values before mapping; a person making one has looked at the
    row, so problems found while reading it (a truncated line) no longer stand. A correction is
    about one record: given to several, one NHS number would go to different people and
    linking would merge them, so it needs exactly one item id. Each record is first worked
    out again as its reader would (its key, whether it has ended by today), so a corrected
    key or end date is taken as if the source had sent it; a correction the record cannot
    take on its own is refused (:class:`CorrectionRefused`) before anything is run.
    """
    if corrections and len(set(ids)) != 1:
        raise OneRecordOnly("a correction is for one record: give exactly one item id")
    ctx = MapContext(codes=codes, canonical_base=settings.canonical_base)
    today = date.today().isoformat()
    items = list(_open_items(engine, ids))
    records: list[SourceRecord] = []
    renamed: dict[str, str] = {}
    for item in items:
        kept = SourceRecord.from_json(item.record)
        try:
            rec = adapter_for(kept.ref.system).correct(kept, corrections or {}, today)
            if rec.ref.key != item.source_key:
                _check_free(engine, rec.ref.key, item.id)
                renamed[rec.ref.key] = item.source_key
        except CorrectionRefused as exc:
            raise CorrectionRefused(f"item {item.id} ({item.source_key}): {exc}") from None
        records.append(rec)

    def map_fn(rec: SourceRecord) -> Any:
        return adapter_for(rec.ref.system).map(rec, ctx)

    notes: list[str] = []
    return run_records(
        engine,
        settings,
        codes,
        "replay",
        ",".join(str(i.id) for i in items) or "(none)",
        _still_open(engine, items, records, notes),
        map_fn,
        resolution="replayed",
        renamed=renamed,
        notes=notes,
    )


def _still_open(
    engine: Engine, items: Sequence[Item], records: Sequence[SourceRecord], notes: list[str]
) -> Iterator[SourceRecord]:
    """The records to replay, read when the run holds the ingest lock: an ingest that finished
    while the replay waited may have taken in the source's own fix (closing the item) or held
    a newer row in it, which the row read before would overwrite. Such an item is left, and
    the run's notes say so."""
    now = {i.id: i for i in _open_items(engine, [i.id for i in items])} if items else {}
    for item, rec in zip(items, records, strict=True):
        current = now.get(item.id)
        if current is None or current.record != item.record:
            notes.append(f"item {item.id}: closed or changed by an ingest meanwhile; not replayed")
            continue
        if rec.ref.key != item.source_key:
            try:
                _check_free(engine, rec.ref.key, item.id)
            except CorrectionRefused as exc:
                notes.append(f"item {item.id}: {exc}; not replayed")
                continue
        yield rec
