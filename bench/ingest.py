"""``ingest``: synthetic sources for N people through parse → map → validate → store.

The floor is the cheapest way to move the same rows: read the CSV files, ``orjson`` each row,
bulk-insert into a bare table. Each database is measured in its own child process so that peak
memory belongs to that run alone.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, insert

from adapters.codes import load_all
from bench.machine import facts, label, peak_rss_mb
from engine.db import make_engine, scratch_store
from engine.ingest import ingest
from engine.migrate import upgrade
from engine.registry import adapter_for
from engine.settings import Settings

STYLES = {"systmone": "cp1252", "emis": "utf-8-sig", "council": "utf-8"}


def _floor(url: str, sources: Path) -> tuple[int, float]:
    meta = MetaData()
    table = Table(
        "floor_row", meta, Column("id", String(64), primary_key=True), Column("body", LargeBinary)
    )
    engine = make_engine(url)
    meta.create_all(engine)
    rows = 0
    start = time.perf_counter()
    with engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for style, encoding in STYLES.items():
            for path in sorted((sources / style).glob("*.csv")):
                with path.open(encoding=encoding, newline="") as fh:
                    for i, row in enumerate(csv.DictReader(fh)):
                        batch.append({"id": f"{style}/{path.stem}/{i}", "body": orjson.dumps(row)})
                        if len(batch) == 1000:
                            conn.execute(insert(table), batch)
                            rows += len(batch)
                            batch = []
        if batch:
            conn.execute(insert(table), batch)
            rows += len(batch)
    seconds = time.perf_counter() - start
    meta.drop_all(engine)
    engine.dispose()
    return rows, seconds


def measure(url: str, sources: Path) -> dict[str, Any]:
    """One database: scr's ingest of every style, then the floor on the same files."""
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(database_url=url)
    codes = load_all()
    per_style: dict[str, Any] = {}
    total = 0
    start = time.perf_counter()
    for style in STYLES:
        t0 = time.perf_counter()
        summary = ingest(engine, settings, codes, adapter_for(style), str(sources / style))
        stored = summary.created + summary.updated + summary.deleted
        per_style[style] = {
            "resources": stored,
            "quarantined": summary.quarantined,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        total += stored
    seconds = time.perf_counter() - start
    engine.dispose()
    floor_rows, floor_seconds = _floor(url, sources)
    rate = total / seconds
    floor_rate = floor_rows / floor_seconds
    return {
        "database": label(url),
        "resources": total,
        "seconds": round(seconds, 2),
        "resources_per_s": round(rate),
        "floor_rows": floor_rows,
        "floor_resources_per_s": round(floor_rate),
        "ratio_to_floor": round(rate / floor_rate, 3),
        "peak_rss_mb": peak_rss_mb(),
        "per_style": per_style,
    }


def child(url: str, sources: str) -> None:
    with tempfile.TemporaryDirectory() as work, scratch_store(url, Path(work)) as db:
        print(orjson.dumps(measure(db, Path(sources))).decode())


def run(size: int, databases: list[str], seed: int = 7) -> dict[str, Any]:
    from adapters.synth import synthesise

    results = []
    with tempfile.TemporaryDirectory() as work:
        sources = Path(work) / "sources"
        t0 = time.perf_counter()
        synthesise(size, seed, sources)
        synth_seconds = round(time.perf_counter() - t0, 2)
        for url in databases:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.ingest", url, str(sources)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"ingest benchmark on {label(url)} failed:\n{proc.stderr}")
            line = proc.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            results.append(orjson.loads(line))
    return {
        "scenario": "ingest",
        "people": size,
        "synth_seconds": synth_seconds,
        "target_resources_per_s_postgresql": 5000,
        "results": results,
        "machine": facts(),
    }


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
