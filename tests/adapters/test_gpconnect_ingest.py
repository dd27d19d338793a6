"""GP Connect bundles through the ingest pipeline: one bad bundle among good ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from adapters.base import SourceRef
from adapters.codes import CodeMaps
from adapters.gpconnect import GpConnectAdapter
from engine.ingest import RunSummary, ingest
from engine.models import Resource
from engine.settings import Settings
from tests.adapters.test_gpconnect import NHS, PRACTICE, bundle, organization, patient
from tests.factories import nhs_numbers

SCT = "http://snomed.info/sct"
OTHER_NHS = next(n for n in nhs_numbers() if n != NHS)


def _ingest(
    engine: Engine, settings: Settings, codes: CodeMaps, folder: Path, *docs: Any
) -> RunSummary:
    """Ingest a folder holding ``docs`` (dicts, or bytes as written) as ``1.json``, ``2.json``..."""
    folder.mkdir(parents=True)
    for i, doc in enumerate(docs, start=1):
        (folder / f"{i}.json").write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return ingest(engine, settings, codes, GpConnectAdapter(), str(folder))


def _rid(table: str, row: str) -> str:
    return SourceRef("gpconnect", PRACTICE, table, row).resource_id(table)


def _row(engine: Engine, rid: str) -> Any:
    R = Resource.__table__
    with engine.connect() as conn:
        return conn.execute(select(R).where(R.c.id == rid)).first()


def _observation(rid: str, subject: str = "Patient/p1", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": SCT, "code": "75367002"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2019-07-01T10:30:00+00:00",
        **extra,
    }


def test_one_malformed_bundle_is_quarantined_and_the_others_are_taken_in(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """One odd bundle (a Patient ``identifier`` that is a number) must not stop the run and so
    every other patient's record in the folder."""
    bad = patient(OTHER_NHS)
    bad["identifier"] = 5
    summary = _ingest(
        engine,
        settings,
        codes,
        tmp_path / "gpc",
        bundle(patient(), organization(), _observation("o1")),
        bundle(bad, organization()),
    )
    assert summary.status == "completed"
    assert summary.reasons == {"Patient.Patient.identifier": 1}
    assert _row(engine, _rid("Observation", "o1")) is not None
