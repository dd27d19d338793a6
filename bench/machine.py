"""What every scenario shares: the machine facts printed beside every figure (so a number can be
read against where it ran), and the loop that measures each database in turn."""

from __future__ import annotations

import os
import platform
import resource
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def facts() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def label(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def per_database(
    databases: Sequence[str], measure: Callable[[str, Path], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each database measured in turn in one scratch folder, its line printed as soon as known."""
    results = []
    with tempfile.TemporaryDirectory() as work:
        for url in databases:
            result = measure(url, Path(work))
            print(orjson.dumps(result).decode(), flush=True)
            results.append(result)
    return results
