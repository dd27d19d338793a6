"""The EMIS-style adapter: reading in ``read.py``, mapping by ``mappings/emis/*.json``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.base import SourceRecord, SourceRef
from adapters.emis.read import JOINED_BY, STYLE, read_extract, row_joins
from adapters.extract import TableAdapter


class EmisAdapter(TableAdapter):
    kind = STYLE
    joined_by = JOINED_BY

    def row_joins(self, ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
        return row_joins(ref, fields, today)

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)
