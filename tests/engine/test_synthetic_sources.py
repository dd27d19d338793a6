"""Every synthetic source style ingests; a re-run changes nothing; what is quarantined is the
noise scr synth put there on purpose, each item naming its file, line and field."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from sqlalchemy import select

from adapters.synth import synthesise
from engine.ingest import ingest
from engine.models import Resource
from engine.quarantine import list_items
from engine.registry import adapter_for
from engine.validate import validate_resource

STYLES = ("systmone", "emis", "council")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("synth")
    synthesise(60, 11, out)
    return out


def test_all_styles_ingest_idempotently(engine, settings, codes, sources):
    first = {s: ingest(engine, settings, codes, adapter_for(s), str(sources / s)) for s in STYLES}
    for style, summary in first.items():
        assert summary.status == "completed"
        assert summary.created > 0, style
        assert summary.quarantined <= summary.read * 0.05, (style, summary.reasons)
    again = {s: ingest(engine, settings, codes, adapter_for(s), str(sources / s)) for s in STYLES}
    for style, summary in again.items():
        assert (summary.created, summary.updated, summary.deleted) == (0, 0, 0), style
        assert summary.quarantined == first[style].quarantined
    items = list_items(engine)
    assert len(items) == sum(s.quarantined for s in first.values())
    assert all(i.file and i.line > 1 and i.reason for i in items)


def test_every_stored_resource_is_valid_r4_with_provenance(engine, settings, codes, sources):
    for style in STYLES:
        ingest(engine, settings, codes, adapter_for(style), str(sources / style))
    with engine.connect() as conn:
        rows = conn.execute(select(Resource.body, Resource.source_system)).all()
    kinds = Counter(system for _, system in rows)
    assert set(kinds) == set(STYLES)
    for body, _ in rows:
        resource = orjson.loads(body)
        assert validate_resource(resource) == []
        assert resource["meta"]["source"].startswith(settings.canonical_base + "source/")
        assert resource["meta"]["versionId"] == "1"
