"""The SystmOne-style adapter: reading in ``read.py``, mapping by ``mappings/systmone/*.json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.base import SourceRecord
from adapters.extract import TableAdapter
from adapters.systmone.read import STYLE, read_extract


class SystmOneAdapter(TableAdapter):
    kind = STYLE

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read_extract(Path(location), self.notes)
