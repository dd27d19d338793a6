"""``read``: ``GET /fhir/Patient/{id}/$everything`` over HTTP, policy and audit included.

The store (default 1,000,000 resources) is built by :mod:`bench.corpus`; ``scr serve --workers
2`` serves it and 16 closed-loop clients read as a GP at the practice the people are registered
with. Kinds of person:

- ``typical``: about 100 resources, 200 different people spread over the store, each read
  whole in one page (``_count=1000``);
- ``heavy``: one person of about 2,000 resources. At the largest page (``_count=1000``) the
  record takes two pages, so the clients alternate the first and second page: each figure is
  one page, and the whole record is two requests.

Beside the loaded figures, ``single_client`` is the same read by one client at a time (latency
with no queue: with 16 clients and 2 workers, a loaded p50 is mostly waiting for a turn). The
floor is the same rows the API released, read by primary key and turned into one JSON document
with ``orjson``, in this process, one at a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from bench import load
from bench.corpus import (
    Corpus,
    add_heavy,
    build,
    count,
    grow,
    own_patient,
    readable,
    sample,
)
from bench.machine import facts, label, per_database
from bench.serve import gp_token, server
from engine.db import make_engine, scratch_store
from engine.settings import Settings

CLIENTS = 16
TYPICAL_PEOPLE = 200
HEAVY_RESOURCES = 2_000
PAGE = 1000
TARGETS = {
    "typical": {"p50_ms": 10, "p99_ms": 40, "req_per_s": 400},
    "heavy": {"p50_ms": 80},
}


def everything(base: str, patient: str, offset: int = 0) -> str:
    return f"{base}/fhir/Patient/{patient}/$everything?_count={PAGE}&_offset={offset}"


def ask_templates(corpus: Corpus, base: str, headers: dict[str, str]) -> None:
    """Whether the GP may read each typical template (and so each of its clones)."""
    with httpx.Client(headers=headers, timeout=60) as client:
        for t, _ in corpus.typical:
            if t.readable is None:
                response = client.get(everything(base, own_patient(t)))
                t.readable = response.status_code == 200 and "entry" in orjson.loads(
                    response.content
                )
    if not readable(corpus):
        raise RuntimeError("the benchmark GP may read no one: check the directory and the store")


def released_ids(urls: Sequence[str], headers: dict[str, str]) -> list[list[str]]:
    """What the API releases for each URL (checked: every read must be permitted)."""
    out = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for url in urls:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            doc = orjson.loads(response.content)
            out.append([e["resource"]["id"] for e in doc.get("entry", [])])
    return out


def _by_key(engine: Engine, ids: list[str]) -> bytes:
    """The cheapest read of these rows: one driver query by primary key, parse, one document."""
    raw = engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.execute("SELECT body FROM resource WHERE id = ANY(%s)", (ids,))
        else:
            cur.execute(f"SELECT body FROM resource WHERE id IN ({', '.join('?' * len(ids))})", ids)
        bodies = [orjson.loads(b) for (b,) in cur.fetchall()]
        raw.rollback()
    finally:
        raw.close()
    return orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": b} for b in bodies]})


def floor_p50(engine: Engine, pages: Sequence[Sequence[str]], rounds: int) -> float:
    """The rows each read released, read by :func:`_by_key` one at a time; p50 in ms."""
    times = []
    for n in range(rounds + 3):
        ids = list(pages[n % len(pages)])
        t0 = time.perf_counter()
        _by_key(engine, ids)
        if n >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def measure(
    engine: Engine,
    base: str,
    headers: dict[str, str],
    patients: Sequence[str],
    offsets: Sequence[int],
    quick: bool,
    rate: float | None = None,
) -> dict[str, Any]:
    """Loaded and single-client figures for reading ``patients`` (at each offset), and the floor;
    with ``rate``, also the latency when the clients send that many requests a second."""
    urls = [everything(base, p, o) for p in patients for o in offsets]
    pages = released_ids(urls, headers)
    seconds, warmup, rounds = (2.0, 0.5, 30) if quick else (20.0, 3.0, 300)
    loaded = load.run(urls, headers, CLIENTS, seconds, warmup)
    single = load.sequential(urls, headers, rounds)
    floor = floor_p50(engine, pages, rounds)
    paced = {}
    if rate is not None:
        at = load.paced(urls, headers, CLIENTS, rate, seconds, warmup)
        paced = {"at_target_rate": {"offered_per_s": rate} | at.as_dict()}
    return (
        loaded.as_dict()
        | paced
        | {
            "people": len(patients),
            "resources_per_page": round(statistics.mean(len(p) for p in pages), 1),
            "single_client": {"p50_ms": single.p50_ms, "p99_ms": single.p99_ms},
            "floor_p50_ms": floor,
            "ratio_to_floor": round(loaded.p50_ms / floor, 2),
            "single_client_ratio_to_floor": round(single.p50_ms / floor, 2),
        }
    )


def ingested(quick: bool) -> int:
    """How many synthetic people go through the real pipeline before cloning."""
    return 20 if quick else 300


def _one(url: str, size: int, work: Path, quick: bool) -> dict[str, Any]:
    with scratch_store(url, work) as store:
        engine = make_engine(store)
        t0 = time.perf_counter()
        corpus = build(engine, store, ingested(quick))
        ingest_s = time.perf_counter() - t0
        grow(engine, corpus, size - HEAVY_RESOURCES)
        data = work / f"data-{label(url)}"
        data.mkdir()
        headers = {"Authorization": f"Bearer {gp_token(Settings(data_dir=data, auth_mode='dev'))}"}
        with server(store, data) as served:
            base = served.base
            ask_templates(corpus, base, headers)
            add_heavy(engine, corpus, HEAVY_RESOURCES)
            build_s = time.perf_counter() - t0
            assert corpus.heavy is not None
            people = sample(readable(corpus), TYPICAL_PEOPLE)
            rate = TARGETS["typical"]["req_per_s"]
            typical = measure(engine, base, headers, people, [0], quick, rate)
            heavy = measure(engine, base, headers, [corpus.heavy], [0, PAGE], quick)
        result = {
            "database": label(url),
            "resources": count(engine),
            "templates_ingested": len(corpus.templates),
            "typical_templates_readable": sum(1 for t in corpus.templates if t.readable),
            "build_seconds": {"ingest": round(ingest_s, 1), "total": round(build_s, 1)},
            "clients": CLIENTS,
            "workers": 2,
            "page": f"_count={PAGE}",
            "typical": typical,
            "heavy": heavy | {"record_resources": corpus.heavy_resources, "pages": 2},
        }
        engine.dispose()
    return result


def run(size: int, databases: list[str]) -> dict[str, Any]:
    quick = size < 100_000
    results = per_database(databases, lambda url, work: _one(url, size, work, quick))
    return {
        "scenario": "read",
        "target_resources": size,
        "targets": TARGETS,
        "results": results,
        "machine": facts(),
    }
