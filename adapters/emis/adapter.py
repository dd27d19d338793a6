"""The EMIS-style adapter: reading in ``read.py``, mapping by ``mappings/emis/*.json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.base import MapContext, MapOutcome, SourceRecord
from adapters.emis.read import STYLE, read_extract
from adapters.extract import map_table_record


class EmisAdapter:
    kind = STYLE

    def __init__(self) -> None:
        self.notes: list[str] = []

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        return map_table_record(STYLE, record, ctx)
