"""Every stored resource version has a Provenance naming its source record and ingest run."""

from __future__ import annotations

from sqlalchemy import select

from adapters.systmone import SystmOneAdapter
from engine.ingest import ingest
from engine.models import IngestRun, Resource
from engine.provenance import RunFacts, provenance_for, view_provenance
from engine.validate import validate_resource
from tests.factories import nhs_numbers, s1_code, s1_patient, write_systmone


def test_provenance_of_each_stored_resource_is_valid_r4(engine, settings, codes, tmp_path):
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(nhs_numbers()))], [s1_code("9", "1")]
    )
    summary = ingest(engine, settings, codes, SystmOneAdapter(), str(folder))
    with engine.connect() as conn:
        run = conn.execute(select(IngestRun).where(IngestRun.id == summary.run_id)).one()
        rows = conn.execute(select(Resource)).all()
    facts = RunFacts(run.id, run.kind, run.finished_at)
    for row in rows:
        prov = provenance_for(
            row.resource_type,
            row.id,
            row.version_id,
            row.source_key,
            facts,
            settings.canonical_base,
        )
        assert validate_resource(prov) == []
        assert prov["target"][0]["reference"] == f"{row.resource_type}/{row.id}/_history/1"
        assert prov["entity"][0]["what"]["identifier"]["value"] == row.source_key
        assert prov["agent"][0]["who"]["identifier"]["value"] == "Y00001"
        view = view_provenance(
            row.resource_type, row.id, row.source_key, run.finished_at, settings.canonical_base
        )
        assert validate_resource(view) == []
        assert view["target"] == [{"reference": f"{row.resource_type}/{row.id}"}]
        assert run.id not in str(view) and "activity" not in view
    again = provenance_for(
        rows[0].resource_type, rows[0].id, 1, rows[0].source_key, facts, settings.canonical_base
    )
    assert again == provenance_for(
        rows[0].resource_type, rows[0].id, 1, rows[0].source_key, facts, settings.canonical_base
    )
