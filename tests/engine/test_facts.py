"""The facts stored beside each row are exactly what the policy derives from its body, whether
ingest wrote them or the migration derived them for rows stored before they existed."""

from __future__ import annotations

import shutil

import orjson
import pytest
from alembic import command
from sqlalchemy import event, select, update

from adapters.synth import synthesise
from consent import load, meta_of, ods_code, organisation_reference, relationship
from consent.policy import POLICY_DIR
from engine.facts import FACT_COLUMNS, restamp, row_facts
from engine.gate import RELATIONSHIP_TYPES, gather_facts
from engine.identity.tables import PersonLink
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


def facts(engine) -> dict[str, tuple[str | None, ...]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(select(Resource.id, *(Resource.__table__.c[c] for c in FACT_COLUMNS)))
        return {r[0]: tuple(r[1:]) for r in rows}


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
        "relation": None,
        "relation_ref": None,
        "facts_version": POLICY.facts_version,
    }


def test_restamp_derives_what_ingest_wrote(stored):
    written = facts(stored)
    with stored.begin() as conn:
        conn.execute(update(Resource).values(dict.fromkeys(FACT_COLUMNS)))
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


def _everyone(engine) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(select(PersonLink.person_id, PersonLink.patient_id)).all()
    people: dict[str, list[str]] = {}
    for person, patient in sorted(rows):
        people.setdefault(person, []).append(patient)
    return people


def _gathered(engine, people, policy=POLICY) -> dict[str, tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """Each person's facts, in an order that does not depend on the statement's."""
    out = {}
    with engine.connect() as conn:
        for person, patients in people.items():
            f = gather_facts(conn, person, patients, policy)
            out[person] = (
                sorted(f.relationships, key=repr), sorted(f.grants, key=repr),
                sorted(f.directives, key=repr), f.labels,
            )  # fmt: skip
    return out


def test_stored_relations_gather_the_same_facts_as_the_bodies(stored):
    """Every person's relationships, directives and labels, gathered from the stored facts,
    are those gathered from the bodies (every row's facts derived by other rules), and those
    gathered with only the organisations' facts stale."""
    people = _everyone(stored)
    fresh = _gathered(stored, people)
    assert sum(len(f[0]) for f in fresh.values()) > 30
    with stored.begin() as conn:
        organisations = Resource.resource_type == "Organization"
        conn.execute(update(Resource).where(organisations).values(facts_version="other"))
    assert _gathered(stored, people) == fresh
    with stored.begin() as conn:
        conn.execute(update(Resource).values(facts_version="other", relation=None))
    assert _gathered(stored, people) == fresh


def test_facts_are_gathered_in_one_statement(stored):
    """Relationships, the organisations they reference, directives, labels, grants, claims
    and hospital stays: one round trip when the stored facts are current."""
    people = _everyone(stored)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(stored, "before_cursor_execute", count)
    try:
        _gathered(stored, people)
    finally:
        event.remove(stored, "before_cursor_execute", count)
    assert len(statements) == len(people)
