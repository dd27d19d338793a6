"""Daily counts for the IG console's charts: accesses by organisation and by profile,
refusals, and break-glass uses. Pure: entries in, counts per UTC day out."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from audit.alerts import ACCESSES


@dataclass(frozen=True, slots=True)
class Daily:
    days: list[str]
    by_org: dict[str, list[int]] = field(default_factory=dict)
    by_profile: dict[str, list[int]] = field(default_factory=dict)
    refusals: list[int] = field(default_factory=list)
    break_glass: list[int] = field(default_factory=list)


def _series(counts: Mapping[str, Counter[str]], days: list[str]) -> dict[str, list[int]]:
    return {key: [counts[key][d] for d in days] for key in sorted(counts)}


def daily(entries: Iterable[Mapping[str, Any]], first: date, last: date) -> Daily:
    """Counts for every day from ``first`` to ``last`` inclusive (days with none show 0)."""
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    orgs: dict[str, Counter[str]] = defaultdict(Counter)
    profiles: dict[str, Counter[str]] = defaultdict(Counter)
    refused: Counter[str] = Counter()
    glass: Counter[str] = Counter()
    for e in entries:
        day = e["time"][:10]
        if e["outcome"] == "deny" and e.get("user_id"):
            refused[day] += 1
        elif e["action"] in ACCESSES and e.get("patient_id"):
            orgs[e["org"]][day] += 1
            profiles[e.get("profile") or "none"][day] += 1
        if e["action"] == "break-glass" and e["outcome"] == "permit":
            glass[day] += 1
    return Daily(
        days,
        _series(orgs, days),
        _series(profiles, days),
        [refused[d] for d in days],
        [glass[d] for d in days],
    )
