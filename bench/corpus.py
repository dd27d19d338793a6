"""A store of realistic size for the read benchmarks, built fast and honestly.

A few hundred synthetic people go through the real pipeline (``scr synth`` → ingest → relink),
so every row, label, index entry and person link is what scr itself writes. The store then
grows by cloning those people: each clone gets new ids for its person, Patients and resources
(every id inside a body rewritten to match), a new valid NHS number, and the same shape. Shared
rows (organisations, practitioners) are not cloned, as they are not per person. One heavy
person is a clone whose record (all but the Patients) is repeated to about 2,000 resources.
``resource_version`` is not cloned: no read touches it.
"""

from __future__ import annotations

import random
import re
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Row, Table, func, insert, select, text

from adapters.codes import load_all
from adapters.synth import synthesise
from adapters.synth.catalogue import SYSTMONE_PRACTICE
from adapters.values import nhs_number_valid
from engine.directory import read_directory, replace_directory
from engine.identity import relink_all
from engine.identity.tables import PatientNumber, Person, PersonLink
from engine.ingest import ingest
from engine.migrate import upgrade
from engine.models import Resource
from engine.registry import adapter_for
from engine.settings import Settings

R = cast(Table, Resource.__table__)
LINKS = cast(Table, PersonLink.__table__)
PEOPLE = cast(Table, Person.__table__)
NUMBERS = cast(Table, PatientNumber.__table__)
PRACTICE = SYSTMONE_PRACTICE.ods
STYLES = ("systmone", "emis", "council")
KINDS = frozenset({"gp-practice", "hospital", "council", "care-home", "ig-office"})
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NS = uuid.UUID("6c1f0b53-3a0e-4c59-9d0a-2b7f1d1e9a11")
_COLUMNS = [c.name for c in R.columns]
_BATCH = 5_000


@dataclass
class Template:
    """One ingested person: their Patients and every row that belongs to them."""

    person: str
    patients: list[str]
    rows: list[Row[Any]] = field(default_factory=list)
    #: The Patients that hold a valid NHS number (a clone's get new ones).
    numbered: set[str] = field(default_factory=set)
    #: Whether the benchmark's GP may read this person (a clone answers as its template does);
    #: ``None`` until asked. Some synthetic people have dissented or left the practice.
    readable: bool | None = None

    @property
    def registered(self) -> bool:
        """Registered at the practice the benchmark's GP works at (so the GP may read)."""
        return any(r.resource_type == "Patient" and r.source_org == PRACTICE for r in self.rows)


@dataclass
class Corpus:
    """The store's templates, the people made so far, and who the benchmark reads."""

    templates: list[Template]
    clones: int = 0
    #: Typical people (template, Patient id at the practice), in the order they were made.
    typical: list[tuple[Template, str]] = field(default_factory=list)
    heavy: str | None = None
    heavy_resources: int = 0


def _new_id(old: str, tag: str) -> str:
    return str(uuid.uuid5(_NS, f"{old}:{tag}"))


class _Numbers:
    """Fresh valid NHS numbers in the 999 (test) range, never one the synth already used."""

    def __init__(self, used: set[str]) -> None:
        self._next = 9_990_000_000
        self._used = used

    def take(self) -> str:
        while True:
            self._next += 1
            candidate = str(self._next)
            if nhs_number_valid(candidate) and candidate not in self._used:
                return candidate


def ingest_people(engine: Engine, url: str, people: int, seed: int) -> None:
    """The real pipeline over ``people`` synthetic people, and the region's directory."""
    upgrade(engine)
    settings = Settings(database_url=url)
    codes = load_all()
    with tempfile.TemporaryDirectory() as work:
        sources = Path(work)
        synthesise(people, seed, sources)
        for style in STYLES:
            ingest(engine, settings, codes, adapter_for(style), str(sources / style))
        version, entries = read_directory(sources / "organisations.json", KINDS)
    relink_all(engine)
    with engine.begin() as conn:
        replace_directory(conn, version, entries, datetime.now(UTC))


def load_templates(engine: Engine) -> list[Template]:
    """Every ingested person with their rows, in a stable order."""
    with engine.connect() as conn:
        links = conn.execute(select(LINKS.c.patient_id, LINKS.c.person_id)).all()
        numbered = set(conn.execute(select(NUMBERS.c.patient_id)).scalars())
        rows = conn.execute(select(R).where(R.c.patient_id.is_not(None)).order_by(R.c.id)).all()
    by_person: dict[str, Template] = {}
    owner: dict[str, Template] = {}
    for patient, person in sorted(links):
        t = by_person.setdefault(person, Template(person, []))
        t.patients.append(patient)
        owner[patient] = t
        if patient in numbered:
            t.numbered.add(patient)
    for row in rows:
        if row.patient_id in owner:
            owner[row.patient_id].rows.append(row)
    return sorted(by_person.values(), key=lambda t: t.person)


def _rewrite(body: bytes, ids: dict[bytes, bytes]) -> bytes:
    """Every id of the template in ``body`` replaced by the clone's (shared ids kept)."""
    return _UUID.sub(lambda m: ids.get(m[0], m[0]), body)


def _clone_rows(t: Template, tag: str, repeats: int = 1) -> tuple[Clone, list[dict[str, Any]]]:
    """A clone (person, Patient id map, numbered Patients) and its rows; ``repeats`` copies of
    all but the Patients."""
    person = _new_id(t.person, tag)
    patients = {p: _new_id(p, tag) for p in t.patients}
    out: list[dict[str, Any]] = []
    for n in range(repeats):
        rtag = tag if n == 0 else f"{tag}/{n}"
        ids = dict(patients) | {
            r.id: _new_id(r.id, rtag) for r in t.rows if r.resource_type != "Patient"
        }
        binary = {old.encode(): new.encode() for old, new in ids.items()}
        for r in t.rows:
            if n and r.resource_type == "Patient":
                continue
            values = dict(r._mapping)
            values["id"] = ids[r.id]
            values["patient_id"] = patients[r.patient_id]
            values["source_key"] = f"{r.source_key}#{rtag}"
            values["body"] = _rewrite(r.body, binary)
            out.append(values)
    return (person, patients, {patients[p] for p in t.numbered}), out


def _write(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Resource rows by COPY on PostgreSQL, by executemany on SQLite."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            conn.execute(insert(R), rows)
        return
    raw = engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        with cur.copy(f"COPY resource ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in _COLUMNS])
        raw.commit()
    finally:
        raw.close()


Clone = tuple[str, dict[str, str], set[str]]


def _link(engine: Engine, people: list[Clone], numbers: _Numbers) -> None:
    """The clones' people, person links and (where the template had one) NHS numbers."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(PEOPLE),
            [{"id": p, "created_at": now, "merged_into": None} for p, _, _ in people],
        )
        links = [
            {"patient_id": new, "person_id": p, "linked_at": now, "rule": "new"}
            for p, patients, _ in people
            for new in patients.values()
        ]
        conn.execute(insert(LINKS), links)
        held = [{"patient_id": n, "nhs_number": numbers.take()} for _, _, ns in people for n in ns]
        if held:
            conn.execute(insert(NUMBERS), held)


def _practice_patient(t: Template, patients: dict[str, str]) -> str:
    first = next(r for r in t.rows if r.resource_type == "Patient" and r.source_org == PRACTICE)
    return patients[first.id]


def own_patient(t: Template) -> str:
    """The template's own Patient at the practice (a clone has its own copy of it)."""
    return _practice_patient(t, {p: p for p in t.patients})


def _is_typical(t: Template) -> bool:
    return t.registered and 70 <= len(t.rows) <= 130


def _used_numbers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(NUMBERS.c.nhs_number)).scalars())


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(R)).scalar_one())


def grow(engine: Engine, corpus: Corpus, target: int) -> int:
    """Clone people (round robin over the templates) until the store holds ``target`` rows."""
    total = count(engine)
    numbers = _Numbers(_used_numbers(engine))
    batch: list[dict[str, Any]] = []
    people: list[Clone] = []
    i = corpus.clones
    while total < target:
        t = corpus.templates[i % len(corpus.templates)]
        clone, rows = _clone_rows(t, f"c{i}")
        i += 1
        batch.extend(rows)
        people.append(clone)
        total += len(rows)
        if _is_typical(t):
            corpus.typical.append((t, _practice_patient(t, clone[1])))
        if len(batch) >= _BATCH:
            _flush(engine, batch, people, numbers)
    _flush(engine, batch, people, numbers)
    corpus.clones = i
    analyse(engine)
    return total


def _flush(
    engine: Engine,
    batch: list[dict[str, Any]],
    people: list[Clone],
    numbers: _Numbers,
) -> None:
    if batch:
        _write(engine, batch)
        _link(engine, people, numbers)
    batch.clear()
    people.clear()


def readable(corpus: Corpus) -> list[str]:
    """The typical people the GP may read (their templates asked first, see ``readable``)."""
    return [patient for t, patient in corpus.typical if t.readable]


def add_heavy(engine: Engine, corpus: Corpus, resources: int) -> None:
    """One person whose record repeats a readable typical one to about ``resources`` rows."""
    t = next(t for t, _ in corpus.typical if t.readable is not False)
    repeats = max(1, round(resources / len(t.rows)))
    clone, rows = _clone_rows(t, "heavy", repeats)
    _write(engine, rows)
    _link(engine, [clone], _Numbers(_used_numbers(engine)))
    corpus.heavy = _practice_patient(t, clone[1])
    corpus.heavy_resources = len(rows)
    analyse(engine)


def analyse(engine: Engine) -> None:
    """Fresh planner statistics, as autovacuum would give a store this size."""
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.autocommit = True
            for table in ("resource", "person_link", "person", "patient_nhs_number"):
                driver.execute(f"VACUUM ANALYZE {table}")
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def build(engine: Engine, url: str, people: int, seed: int = 7) -> Corpus:
    """Ingest ``people`` through the pipeline and keep them as the templates to clone."""
    ingest_people(engine, url, people, seed)
    templates = load_templates(engine)
    corpus = Corpus(templates)
    corpus.typical = [(t, own_patient(t)) for t in templates if _is_typical(t)]
    return corpus


def sample(patients: Sequence[str], n: int, seed: int = 3) -> list[str]:
    """``n`` of ``patients`` spread over the whole store (not only the newest)."""
    rnd = random.Random(seed)
    return rnd.sample(list(patients), min(n, len(patients)))
