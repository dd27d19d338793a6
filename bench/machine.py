"""Machine facts printed beside every figure, so a number can be read against where it ran."""

from __future__ import annotations

import os
import platform
import resource
from typing import Any

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
