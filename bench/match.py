"""``match``: identity linkage on ``scr synth`` output, scored against ``truth.json``.

For each size, two populations: seed A (7), on which the weights in
``mappings/identity/match-rules.json`` were tuned, and seed B (11), never looked at while
tuning, so the figures show whether the rules generalise. Only the Patient tables are read and
mapped (with the adapters and maps an ingest uses); matching is the pure path
(:func:`engine.identity.match_all`: block → decide → cluster), timed apart from mapping.

Scoring is over pairs of source patient records: a pair is *linked* when both records ended
in one person; a review-queue pair counts as not linked. ``false_merges`` counts linked pairs
that truth says are two people. A record the adapters quarantine whole cannot be linked at
all, so it costs recall; ``recall_mapped`` leaves such records out. A Patient row whose NHS
number fails modulus 11 is taken in without the number (and counted in
``nhs_number_withheld_records``), so it is matched on demographics as the ingest would. The
``floor`` is the simplest linkage there is, on the same records: equal NHS numbers and nothing
else, so the figures show what the rules add.

The default run measures 2,000 and 20,000 people; any other ``--size`` measures that size
alone. At the smallest size, ``relink`` is also timed on each database, over the same Patients
stored directly (no full ingest), and its people scored the same way.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert, select

from adapters.base import MapContext, MapOutcome, SourceRecord, SourceRef
from adapters.codes import load_all
from bench.machine import facts, label, peak_rss_mb
from engine import canonical
from engine.db import make_engine, scratch_store
from engine.identity import Demographics, demographics, load_rules, match_all, relink_all
from engine.identity.tables import PersonLink
from engine.migrate import upgrade
from engine.models import IngestRun, Resource
from engine.registry import adapter_for

SEEDS = {"A": 7, "B": 11}
DEFAULT_SIZES = (2000, 20000)
#: Each style's patient table.
PATIENT_TABLES = {"systmone": "SRPatient", "emis": "Admin_Patient", "council": "persons"}
TARGETS = {"precision": 0.999, "recall": 0.995, "review_queue_share": 0.02}
_BATCH = 1000
_KEEP = ("precision", "recall", "false_merges", "review_queue")


@dataclasses.dataclass
class Unmapped:
    """Patient rows the adapters quarantine whole, and rows taken in with a value withheld."""

    keys: list[str] = dataclasses.field(default_factory=list)
    #: Taken in without a value their map withholds (an NHS number failing modulus 11).
    withheld: int = 0


def _patient_records(kind: str, folder: Path) -> Iterable[SourceRecord]:
    """The patient table's records only: reading stops where the next table begins."""
    table = PATIENT_TABLES[kind]
    started = False
    for record in adapter_for(kind).read(str(folder / kind)):
        if record.ref.table == table:
            started = True
            yield record
        elif started:
            return


def _patient(outcome: MapOutcome) -> dict[str, Any]:
    return next(m.resource for m in outcome.resources if m.resource["resourceType"] == "Patient")


def mapped_patients(folder: Path, unmapped: Unmapped) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each mapped Patient with its source key, one at a time (memory stays flat)."""
    ctx = MapContext(codes=load_all())
    for kind in PATIENT_TABLES:
        adapter = adapter_for(kind)
        for record in _patient_records(kind, folder):
            outcome = adapter.map(record, ctx)
            if not outcome.ok:
                unmapped.keys.append(record.ref.key)
                continue
            unmapped.withheld += bool(outcome.withheld)
            yield record.ref.key, _patient(outcome)


@dataclasses.dataclass(frozen=True)
class Truth:
    pairs: set[tuple[str, str]]
    person: dict[str, str]
    cases: dict[str, list[str]]
    people: int


def load_truth(folder: Path) -> Truth:
    doc = orjson.loads((folder / "truth.json").read_bytes())
    pairs: set[tuple[str, str]] = set()
    person: dict[str, str] = {}
    cases: dict[str, list[str]] = {}
    for p in doc["people"]:
        ids = sorted(SourceRef.from_key(k).resource_id("Patient") for k in p["records"])
        pairs.update(itertools.combinations(ids, 2))
        person.update(dict.fromkeys(ids, p["person"]))
        cases[p["person"]] = p["cases"]
    return Truth(pairs, person, cases, len(doc["people"]))


def score(
    truth: Truth, people: Iterable[list[str]], review: int, present: set[str]
) -> dict[str, Any]:
    """Pairwise precision and recall of ``people`` against truth; review pairs are unlinked."""
    linked = {p for group in people for p in itertools.combinations(sorted(group), 2)}
    right = linked & truth.pairs
    missed = truth.pairs - linked
    false = linked - truth.pairs
    reachable = {p for p in truth.pairs if p[0] in present and p[1] in present}

    def by_case(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for a, b in pairs:
            labels = {*truth.cases[truth.person[a]], *truth.cases[truth.person[b]]}
            counts.update(sorted(labels) or ["none"])
        return dict(counts.most_common())

    return {
        "precision": round(len(right) / len(linked), 5) if linked else 1.0,
        "recall": round(len(right) / len(truth.pairs), 5) if truth.pairs else 1.0,
        "recall_mapped": round(len(right & reachable) / len(reachable), 5) if reachable else 1.0,
        "false_merges": len(false),
        "review_queue": review,
        "review_queue_share": round(review / truth.people, 5),
        "true_pairs": len(truth.pairs),
        "linked_pairs": len(linked),
        "missed_pairs": len(missed),
        "missed_unmapped": len(missed - reachable),
        "missed_by_case": by_case(missed & reachable),
        "false_merges_by_case": by_case(false),
    }


def _same_nhs_number(records: dict[str, Demographics]) -> list[list[str]]:
    """The floor: the simplest linkage there is, equal valid NHS numbers and nothing else."""
    groups: dict[str, list[str]] = {}
    for rid, d in records.items():
        groups.setdefault(d.nhs_number or rid, []).append(rid)
    return list(groups.values())


def measure(folder: Path) -> dict[str, Any]:
    """One population: map, match, score (run in a child so peak memory is this run's own)."""
    rules = load_rules()
    truth = load_truth(folder)
    unmapped = Unmapped()
    t0 = time.perf_counter()
    records = {r["id"]: demographics(r) for _, r in mapped_patients(folder, unmapped)}
    map_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    matching = match_all(records, rules)
    seconds = time.perf_counter() - t0
    result = {
        "people": truth.people,
        "records": len(records) + len(unmapped.keys),
        "quarantined_records": len(unmapped.keys),
        "nhs_number_withheld_records": unmapped.withheld,
        **score(truth, matching.people, len(matching.review), set(records)),
        "seconds": round(seconds, 2),
        "records_per_s": round(len(records) / seconds),
        "map_seconds": round(map_seconds, 2),
        "pairs_compared": matching.pairs_compared,
        "pairs_per_record": round(matching.pairs_compared / max(1, len(records)), 2),
        "oversized_blocks": len(matching.oversized_blocks),
    }
    floor = score(truth, _same_nhs_number(records), 0, set(records))
    result["floor"] = {"method": "equal NHS numbers only", **{k: floor[k] for k in _KEEP}}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _store(url: str, folder: Path) -> set[str]:
    """The mapped Patients as one completed run, written straight to ``resource``."""
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    stored: set[str] = set()
    with engine.begin() as conn:
        conn.execute(
            insert(cast(Table, IngestRun.__table__)).values(
                id=run_id,
                kind="bench",
                location="bench.match",
                started_at=now,
                finished_at=now,
                status="completed",
                summary={},
            )
        )
        rows: list[dict[str, Any]] = []
        for key, resource in mapped_patients(folder, Unmapped()):
            ref = SourceRef.from_key(key)
            stored.add(resource["id"])
            rows.append(
                {
                    "id": resource["id"],
                    "resource_type": "Patient",
                    "version_id": 1,
                    "last_updated": now,
                    "content_hash": canonical.content_hash(resource),
                    "body": canonical.dumps(resource),
                    "status": "active",
                    "source_key": key,
                    "source_system": ref.system,
                    "source_org": ref.org,
                    "patient_id": resource["id"],
                    "labels": "",
                    "run_id": run_id,
                }
            )
            if len(rows) == _BATCH:
                conn.execute(insert(cast(Table, Resource.__table__)), rows)
                rows = []
        if rows:
            conn.execute(insert(cast(Table, Resource.__table__)), rows)
    engine.dispose()
    return stored


def measure_relink(url: str, folder: Path) -> dict[str, Any]:
    """``relink`` over every stored Patient of one population, on one database."""
    truth = load_truth(folder)
    stored = _store(url, folder)
    engine = make_engine(url)
    t0 = time.perf_counter()
    summary = relink_all(engine)
    seconds = time.perf_counter() - t0
    links = cast(Table, PersonLink.__table__)
    with engine.connect() as conn:
        rows = conn.execute(select(links.c.person_id, links.c.patient_id)).all()
    engine.dispose()
    groups: dict[str, list[str]] = {}
    for person, patient in rows:
        groups.setdefault(person, []).append(patient)
    scored = score(truth, groups.values(), summary.review_opened, stored)
    return {
        "database": label(url),
        "patients": summary.patients,
        "seconds": round(seconds, 2),
        "patients_per_s": round(summary.patients / seconds),
        "pairs_compared": summary.pairs_compared,
        **{k: scored[k] for k in _KEEP},
        "peak_rss_mb": peak_rss_mb(),
    }


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.match", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"match benchmark step {args[0]} failed:\n{proc.stderr}")
    line = proc.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return cast(dict[str, Any], orjson.loads(line))


def run(size: int, databases: list[str]) -> dict[str, Any]:
    from adapters.synth import synthesise

    sizes = DEFAULT_SIZES if size == DEFAULT_SIZES[0] else (size,)
    results: list[dict[str, Any]] = []
    relinks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for n in sizes:
            for name, seed in SEEDS.items():
                folder = Path(work) / f"{n}-{seed}"
                synthesise(n, seed, folder)
                results.append(_child("measure", str(folder), f"{name} ({seed})"))
                if n == sizes[0] and name == "A":
                    relinks = [_child("relink", url, str(folder)) for url in databases]
    return {
        "scenario": "match",
        "targets": TARGETS,
        "results": results,
        "relink": relinks,
        "machine": facts(),
    }


def main(argv: list[str]) -> None:
    step, *rest = argv
    if step == "measure":
        print(orjson.dumps({"seed": rest[1], **measure(Path(rest[0]))}).decode())
        return
    with tempfile.TemporaryDirectory() as work, scratch_store(rest[0], Path(work)) as db:
        print(orjson.dumps(measure_relink(db, Path(rest[1]))).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
