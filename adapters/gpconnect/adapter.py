"""The GP Connect Access Record: Structured adapter (FHIR STU3 bundles in, FHIR R4 out).

Which entry point the CLI calls:

* ``scr ingest gpconnect <path>`` -> :meth:`GpConnectAdapter.read` with a bundle file or a
  folder of ``*.json`` bundles (what a practice or the NHS GP2GP tooling saved);
* pulling live records -> :meth:`GpConnectAdapter.read_pulled` with the provider's FHIR base
  URL, the NHS numbers, the consumer's details (ASID, ODS code, the logged-on user) and the
  provider's ASID; the records are the same as from files, so the same ingest pipeline and
  quarantine apply.

Both yield records the pipeline then passes, one at a time, to :meth:`GpConnectAdapter.map`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from adapters.base import CorrectionRefused, ExtractStamp, MapContext, MapOutcome, SourceRecord
from adapters.gpconnect.constants import SYSTEM
from adapters.gpconnect.convert import map_record
from adapters.gpconnect.read import read, read_pulled
from adapters.gpconnect.request import Consumer


class GpConnectAdapter:
    kind = SYSTEM

    def __init__(self) -> None:
        #: Repairs and skipped entries are reported per record (warnings), so nothing run-wide.
        self.notes: list[str] = []

    def read(self, location: str) -> Iterator[SourceRecord]:
        return read(location)

    def read_pulled(
        self,
        base_url: str,
        nhs_numbers: Iterable[str],
        *,
        consumer: Consumer,
        provider_asid: str,
        client: httpx.Client | None = None,
        **options: Any,
    ) -> Iterator[SourceRecord]:
        return read_pulled(
            base_url,
            nhs_numbers,
            consumer=consumer,
            provider_asid=provider_asid,
            client=client,
            **options,
        )

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        return map_record(record, ctx)

    def stamp(self, location: str) -> ExtractStamp | None:
        """A structured record is a snapshot with no extract date of its own."""
        return None

    def correct(
        self, record: SourceRecord, corrections: Mapping[str, str], today: str
    ) -> SourceRecord:
        """A record is a FHIR resource, not a row of columns: it is corrected at its source."""
        if corrections:
            raise CorrectionRefused(
                f"{', '.join(corrections)}: a GP Connect record is a FHIR resource, not a row "
                "of columns; correct it at the practice and ingest or pull it again"
            )
        return record
