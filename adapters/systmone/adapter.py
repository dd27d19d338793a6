"""The SystmOne-style adapter: reading in ``read.py``, mapping by ``mappings/systmone/*.json``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.base import ExtractStamp, SourceRecord, SourceRef
from adapters.extract import TableAdapter
from adapters.systmone.read import JOINED_BY, STYLE, extract_stamp, read_extract, row_joins


class SystmOneAdapter(TableAdapter):
    kind = STYLE
    joined_by = JOINED_BY

    def row_joins(self, ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
        return row_joins(ref, fields, today)

    def stamp(self, location: str) -> ExtractStamp | None:
        return extract_stamp(Path(location))

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)
