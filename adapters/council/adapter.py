"""The council-style adapter: a folder (``read.py``) or an API URL (``api.py``), one set of maps.

Mapping is by ``mappings/council/*.json`` whichever way the records came, so a record pulled
from the API and the same row read from CSV become the same resources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from adapters.base import ExtractError, MapContext, MapOutcome, SourceRecord, SourceRef
from adapters.council.api import pull
from adapters.council.read import JOINED_BY, STYLE, read_extract, row_joins
from adapters.extract import TableAdapter

#: Where the API token comes from when the constructor is not given one.
TOKEN_ENV = "SCR_COUNCIL_TOKEN"


class CouncilAdapter(TableAdapter):
    """``org`` is the council's code when the source names none (no ``organisation.csv``, or the
    API); ``token`` and ``client`` are for the API (token default: ``$SCR_COUNCIL_TOKEN``)."""

    kind = STYLE
    joined_by = JOINED_BY

    def __init__(
        self,
        org: str | None = None,
        *,
        token: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__()
        self.org = org
        self.token = token
        self.client = client

    def row_joins(self, ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
        return row_joins(ref, fields, today)

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        """By the table's map; a placement also retires the key it had before 2026-12-06
        (person|care home|start, now person|start: an id made from the care home gave a
        restricted person's home away). What a store made before holds under it is withdrawn:
        no run would meet that key again, and left active it kept the home's relationship
        after the placement ended."""
        outcome = super().map(record, ctx)
        if record.ref.table != "placements" or not outcome.ok:
            return outcome
        f = record.fields
        parts = [str(f.get(c, "")).strip() for c in ("person_id", "care_home_ods", "start_date")]
        old = SourceRef(STYLE, record.ref.org, "placements", "|".join(parts))
        return replace(outcome, retires=(old.key,)) if all(parts) else outcome

    def read(self, location: str) -> Iterator[SourceRecord]:
        if location.startswith(("http://", "https://")):
            return self._pull(location)
        return read_extract(Path(location), self.org, self.notes)

    def _pull(self, url: str) -> Iterator[SourceRecord]:
        token = self.token or os.environ.get(TOKEN_ENV, "")
        if not token:
            raise ExtractError(
                f"{url}: no API token: pass CouncilAdapter(token=...) or set {TOKEN_ENV}"
            )
        if not self.org:
            raise ExtractError(f"{url}: the API names no council: pass CouncilAdapter(org=...)")
        return pull(url, token, org=self.org, client=self.client, notes=self.notes)
