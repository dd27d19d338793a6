"""The EMIS-style adapter: reading in ``read.py``, mapping by ``mappings/emis/*.json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import labels
from adapters.base import MapContext, MapOutcome, SourceRecord
from adapters.emis.read import PATIENT, STYLE, read_extract
from adapters.extract import map_table_record
from adapters.mapper import holds

#: EMIS ``SpineSensitive``: the person is restricted on the Spine, not just one item. The table
#: map gives every flagged patient row ``source-confidential``; a table map has one label set, so
#: the extra person-level label is added here.
SPINE_SENSITIVE: dict[str, Any] = {"column": "SpineSensitive", "in": ["true", "1", "y"]}


class EmisAdapter:
    kind = STYLE

    def __init__(self) -> None:
        self.notes: list[str] = []

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        outcome = map_table_record(STYLE, record, ctx)
        if outcome.ok and record.ref.table == PATIENT and holds(SPINE_SENSITIVE, record.fields):
            label = labels.scr_label(labels.RESTRICTED_PERSON, ctx.canonical_base)
            for mapped in outcome.resources:
                labels.add_labels(mapped.resource, [label])
        return outcome
