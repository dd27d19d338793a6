"""The benchmark store: clones look like ingested people to every read, and nothing collides."""

from __future__ import annotations

from collections import Counter

import orjson
from sqlalchemy import Engine, func, select

from adapters.values import nhs_number_valid
from bench.corpus import LINKS, NUMBERS, R, add_heavy, build, count, grow
from engine.identity import patients_of, person_of


def test_clones_are_whole_people_with_their_own_ids(engine: Engine, db_url: str) -> None:
    corpus = build(engine, db_url, 8)
    before = count(engine)
    total = grow(engine, corpus, before * 3)
    assert total == count(engine) >= before * 3
    with engine.connect() as conn:
        _, clone = corpus.typical[-1]
        person = person_of(conn, clone)
        assert person is not None
        members = patients_of(conn, person)
        rows = conn.execute(select(R.c.id, R.c.body).where(R.c.patient_id.in_(members))).all()
        template_patients = {p for t in corpus.templates for p in t.patients}
        numbers = conn.execute(select(NUMBERS.c.patient_id, NUMBERS.c.nhs_number)).all()
        people = conn.execute(select(func.count(func.distinct(LINKS.c.person_id)))).scalar_one()
    assert len(rows) > 10
    for row in rows:
        body = orjson.loads(row.body)
        assert body["id"] == row.id
        ref = body.get("subject", body.get("patient", {})).get("reference")
        assert ref is None or ref.removeprefix("Patient/") in members
    given = [n for patient, n in numbers if patient not in template_patients]
    assert given and all(nhs_number_valid(n) for n in given)
    assert max(Counter(given).values()) == 1
    assert not set(given) & {n for patient, n in numbers if patient in template_patients}
    assert people > len(corpus.templates) * 2


def test_the_heavy_person_has_about_the_size_asked(engine: Engine, db_url: str) -> None:
    corpus = build(engine, db_url, 8)
    add_heavy(engine, corpus, 500)
    assert corpus.heavy is not None
    with engine.connect() as conn:
        person = person_of(conn, corpus.heavy)
        assert person is not None
        members = patients_of(conn, person)
        held = conn.execute(
            select(func.count()).select_from(R).where(R.c.patient_id.in_(members))
        ).scalar_one()
    assert held == corpus.heavy_resources
    assert 400 <= held <= 600
