"""The Provenance of a stored resource version, built from the ingest run that wrote it.

A run writes thousands of resources; storing a Provenance per version would double the store
for facts the run and resource rows already hold. So it is derived, the same every time, when a
reader asks for it (``$everything?_revinclude=Provenance:target`` serves one beside each
resource). A resource served masked (``consent.mask``) gets :func:`view_provenance` instead,
which says nothing of the version: a new version may come of a change to what was removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select

from adapters.base import SourceRef
from engine.models import IngestRun

_NAMESPACE = uuid.UUID("0b7f3e0a-5d2c-4a8e-9c61-2f4e8d9a7b31")
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


@dataclass(frozen=True)
class RunFacts:
    """What an ingest run recorded about itself."""

    run_id: str
    kind: str
    finished_at: datetime


def provenance_for(
    resource_type: str,
    resource_id: str,
    version_id: int,
    source_key: str,
    run: RunFacts,
    canonical_base: str,
) -> dict[str, Any]:
    """An R4 Provenance: this version came from that source record, through that run."""
    target = f"{resource_type}/{resource_id}/_history/{version_id}"
    found = _from_source(target, run.finished_at, source_key, canonical_base)
    found["activity"] = {
        "coding": [{"system": DATA_OPERATION, "code": "CREATE" if version_id == 1 else "UPDATE"}]
    }
    found["agent"].append(
        {
            "type": {"coding": [{"system": AGENT_TYPE, "code": "assembler"}]},
            "who": {"display": f"scr ingest run {run.run_id} ({run.kind})"},
        }
    )
    found["entity"].append(
        {
            "role": "source",
            "what": {
                "identifier": {"system": canonical_base + "Id/ingest-run", "value": run.run_id},
                "display": f"{run.kind} ingest run",
            },
        }
    )
    return found


def view_provenance(
    resource_type: str, resource_id: str, source_key: str, recorded: datetime, canonical_base: str
) -> dict[str, Any]:
    """An R4 Provenance of a masked resource as served at ``recorded``: the source record and
    its organisation, and nothing that tells one stored version from another (no
    ``_history``, no create or update, no ingest run or its time), so a change to what the
    mask removed does not show through it."""
    target = f"{resource_type}/{resource_id}"
    return _from_source(target, recorded, source_key, canonical_base)


def _from_source(
    target: str, recorded: datetime, source_key: str, canonical_base: str
) -> dict[str, Any]:
    """What every Provenance says: ``target`` came from the source record, by its organisation."""
    ref = SourceRef.from_key(source_key)
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid5(_NAMESPACE, target)),
        "target": [{"reference": target}],
        "recorded": recorded.isoformat(),
        "agent": [
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "author"}]},
                "who": {
                    "identifier": {"system": ODS, "value": ref.org},
                    "display": f"{ref.system} extract of {ref.org}",
                },
            },
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": canonical_base + "Id/source-record",
                        "value": source_key,
                    },
                    "display": f"{ref.table} row {ref.row_id}",
                },
            },
        ],
    }


def run_facts(conn: Connection, run_ids: Iterable[str]) -> dict[str, RunFacts]:
    """The runs that wrote the given resources, by id; a run still going has no facts yet."""
    runs = cast(Table, IngestRun.__table__)
    rows = conn.execute(
        select(runs.c.id, runs.c.kind, runs.c.finished_at).where(
            runs.c.id.in_(sorted(set(run_ids)))
        )
    )
    return {r.id: RunFacts(r.id, r.kind, r.finished_at) for r in rows if r.finished_at is not None}
