"""The EMIS-style adapter: reading in ``read.py``, mapping by ``mappings/emis/*.json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.base import SourceRecord
from adapters.emis.read import STYLE, read_extract
from adapters.extract import TableAdapter


class EmisAdapter(TableAdapter):
    kind = STYLE

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)
