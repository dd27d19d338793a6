"""``scale``: the typical ``read`` p50 as the store grows ten-fold (default 100k then 1M).

One store grows in place (more cloned people, :mod:`bench.corpus`) while one ``scr serve``
keeps serving it; at each size the typical read is measured exactly as ``read`` measures it,
over typical people drawn from the whole store as it is then. ``growth_per_10x`` is the p50
ratio scaled to a ten-fold step of the sizes actually reached; on a shared machine the load
of others moves between sizes, so ``floor_adjusted_growth_per_10x`` is the same for the ratio
to the floor measured beside each p50 (which the same noise moves).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.corpus import build, count, grow, readable, sample
from bench.machine import facts, label, per_database
from bench.read import CLIENTS, TYPICAL_PEOPLE, ask_templates, ingested, measure
from bench.serve import gp_token, server
from engine.db import make_engine, scratch_store
from engine.settings import Settings

TARGET_GROWTH = 1.3


def growth(a: tuple[int, float], b: tuple[int, float]) -> float:
    """The p50 ratio per ten-fold step, from (resources, p50) at two sizes."""
    ratio: float = (b[1] / a[1]) ** (1 / math.log10(b[0] / a[0]))
    return round(ratio, 3)


def _one(url: str, sizes: list[int], work: Path, quick: bool) -> dict[str, Any]:
    with scratch_store(url, work) as store:
        engine = make_engine(store)
        corpus = build(engine, store, ingested(quick))
        data = work / f"data-{label(url)}"
        data.mkdir()
        headers = {"Authorization": f"Bearer {gp_token(Settings(data_dir=data, auth_mode='dev'))}"}
        points: list[dict[str, Any]] = []
        with server(store, data) as served:
            base = served.base
            for size in sizes:
                grow(engine, corpus, size)
                ask_templates(corpus, base, headers)
                typical = sample(readable(corpus), TYPICAL_PEOPLE)
                figures = measure(engine, base, headers, typical, [0], quick)
                points.append({"resources": count(engine)} | figures)
        engine.dispose()
    first, last = points[0], points[-1]
    return {
        "database": label(url),
        "clients": CLIENTS,
        "sizes": [p["resources"] for p in points],
        "p50_ms": [p["p50_ms"] for p in points],
        "single_client_p50_ms": [p["single_client"]["p50_ms"] for p in points],
        "growth_per_10x": growth(
            (first["resources"], first["p50_ms"]), (last["resources"], last["p50_ms"])
        ),
        "single_client_growth_per_10x": growth(
            (first["resources"], first["single_client"]["p50_ms"]),
            (last["resources"], last["single_client"]["p50_ms"]),
        ),
        "floor_adjusted_growth_per_10x": growth(
            (first["resources"], first["ratio_to_floor"]),
            (last["resources"], last["ratio_to_floor"]),
        ),
        "points": points,
    }


def run(size: int, databases: list[str]) -> dict[str, Any]:
    """``size`` is the largest store; it is measured at a tenth of that first."""
    quick = size < 100_000
    results = per_database(databases, lambda url, work: _one(url, [size // 10, size], work, quick))
    return {
        "scenario": "scale",
        "largest_resources": size,
        "target_growth_per_10x": TARGET_GROWTH,
        "results": results,
        "machine": facts(),
    }
