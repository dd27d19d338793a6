"""The facts stored beside each row are exactly what the policy derives from its body, whether
ingest wrote them or the migration derived them for rows stored before they existed."""

from __future__ import annotations

import shutil

import orjson
import pytest
from alembic import command
from sqlalchemy import select, update

from adapters.synth import synthesise
from consent import load, meta_of, ods_code, organisation_reference, relationship
from consent.policy import POLICY_DIR
from engine.facts import restamp, row_facts
from engine.gate import RELATIONSHIP_TYPES
from engine.ingest import ingest
from engine.migrate import alembic_config, upgrade
from engine.models import Resource
from engine.registry import adapter_for

POLICY = load()
STYLES = ("systmone", "emis", "council")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("synth")
    synthesise(30, 5, out)
    return out


@pytest.fixture
def stored(engine, settings, codes, sources):  # type: ignore[no-untyped-def]
    for style in STYLES:
        ingest(engine, settings, codes, adapter_for(style), str(sources / style))
    return engine


def facts(engine) -> dict[str, tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            select(Resource.id, Resource.section, Resource.policy_labels, Resource.facts_version)
        ).all()
    return {r.id: (r.section, r.policy_labels, r.facts_version) for r in rows}


def test_stored_facts_are_what_the_policy_derives_from_every_body(stored):
    with stored.connect() as conn:
        rows = conn.execute(select(Resource)).all()
    assert len(rows) > 1000
    sections, labelled = set(), 0
    for row in rows:
        meta = meta_of(orjson.loads(row.body), row.source_org, row.labels, POLICY)
        assert row.facts_version == POLICY.facts_version, row.id
        assert row.section == meta.section, row.id
        assert frozenset(row.policy_labels.split()) == meta.labels, row.id
        sections.add(row.section)
        labelled += bool(meta.labels)
    assert len(sections) > 10 and labelled > 0


def test_row_facts_match_meta_of():
    body = {
        "resourceType": "Condition",
        "meta": {"security": [{"system": "https://x/CodeSystem/scr-security-label", "code": "b"}]},
    }
    meta = meta_of(body, "Y1", "a", POLICY)
    assert row_facts(body, "Y1", "a", POLICY) == {
        "section": meta.section,
        "policy_labels": "a b",
        "facts_version": POLICY.facts_version,
    }


def test_restamp_derives_what_ingest_wrote(stored):
    written = facts(stored)
    with stored.begin() as conn:
        conn.execute(update(Resource).values(section=None, policy_labels=None, facts_version=None))
        assert restamp(conn, POLICY, batch=97) == len(written)
        assert restamp(conn, POLICY) == 0
    assert facts(stored) == written


def test_the_migration_derives_the_facts_of_rows_stored_before_it(stored):
    written = facts(stored)
    cfg = alembic_config(stored)
    with stored.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    upgrade(stored)
    assert facts(stored) == written


def test_other_section_rules_change_the_facts_version(tmp_path):
    shutil.copytree(POLICY_DIR, tmp_path, dirs_exist_ok=True)
    sections = orjson.loads((tmp_path / "sections.json").read_bytes())
    rule = next(r for r in sections["rules"] if "when" in r)
    rule["when"]["in"].append("another-code")
    (tmp_path / "sections.json").write_bytes(orjson.dumps(sections))
    assert load().facts_version == POLICY.facts_version
    assert load(tmp_path).facts_version != POLICY.facts_version


def test_every_stored_body_is_what_parsing_and_writing_it_again_gives(stored):
    """So an item spliced into a Bundle as it is stored is byte for byte what the read path
    wrote when it parsed each body and wrote it again."""
    with stored.connect() as conn:
        bodies = conn.execute(select(Resource.body)).scalars().all()
    assert bodies and all(orjson.dumps(orjson.loads(b)) == b for b in bodies)


def test_resolving_only_the_relationship_reference_finds_every_relationship(stored):
    """gather_facts looks up only ``organisation_reference``: the same relationships as
    resolving every organisation in the store."""
    with stored.connect() as conn:
        rows = conn.execute(select(Resource.resource_type, Resource.body)).all()
    bodies = [(t, orjson.loads(b)) for t, b in rows]
    every = {f"Organization/{b['id']}": c for t, b in bodies if (c := ods_code(b))}
    found = 0
    for t, body in bodies:
        if t not in RELATIONSHIP_TYPES:
            continue
        ref = organisation_reference(body)
        only = {ref: every[ref]} if ref in every else {}
        assert relationship(body, only) == relationship(body, every)
        found += relationship(body, every) is not None
    assert found > 30
