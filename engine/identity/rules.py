"""The reviewed match rules (``mappings/identity/match-rules.json``) as frozen :class:`MatchRules`.

Weights, thresholds and blocking keys are data so that a change to how people are linked is a
reviewed change to one file, not to code. The file gives each comparison level its ``m``
(how often two records of one person show that level) and ``u`` (how often two records of
different people do); the weight of a level is ``log2(m / u)`` bits, Fellegi–Sunter's
agreement weight, and a pair's score is the sum over comparisons. Reading the file is the only
I/O here; everything else is checked and built from the parsed document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adapters.schema import MapFileError, check
from engine.identity.compare import LEVELS, Similarity

RULES_FILE = Path(__file__).resolve().parents[2] / "mappings" / "identity" / "match-rules.json"
#: m (and u) over one comparison's levels are a probability distribution; allow rounding.
_SUM_TOLERANCE = 0.02


@dataclass(frozen=True)
class BlockingKey:
    name: str
    #: Feature parts joined into one key (see :mod:`engine.identity.blocking`).
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Thresholds:
    #: Score (bits) at or above which a pair is linked automatically.
    link: float
    #: Score at or above which (and below ``link``) a pair goes to the review queue.
    review: float
    #: Score at or above which an equal but unverified NHS number is corroborated.
    unverified_nhs: float


@dataclass(frozen=True)
class MatchRules:
    version: str
    similarity: Similarity
    #: comparison → level → weight in bits (``log2(m / u)``).
    weights: Mapping[str, Mapping[str, float]]
    thresholds: Thresholds
    blocking_keys: tuple[BlockingKey, ...]
    #: A block with more records than this yields no pairs (see blocking.py for why).
    max_block_size: int
    #: Folded first name → the groups of diminutives it belongs to (William, Bill, Will, ...).
    diminutives: Mapping[str, frozenset[int]]

    def weight(self, comparison: str, level: str) -> float:
        """A missing value (either side) is no evidence: weight 0."""
        return self.weights[comparison].get(level, 0.0)

    def variants(self, a: str, b: str) -> bool:
        """Two folded first names that are one name and its diminutive (William, Bill)."""
        return bool(self.diminutives.get(a, frozenset()) & self.diminutives.get(b, frozenset()))


def rules_from_doc(doc: Any, where: str) -> MatchRules:
    """Check ``doc`` against the ``match-rules`` schema and its own arithmetic, then build."""
    check("match-rules", doc, where)
    problems: list[str] = []
    weights: dict[str, dict[str, float]] = {}
    for comparison, levels in LEVELS.items():
        spec = doc["comparisons"][comparison]["levels"]
        for side in ("m", "u"):
            total = sum(spec[level][side] for level in levels)
            if abs(total - 1.0) > _SUM_TOLERANCE:
                problems.append(f"comparisons/{comparison}: {side} sums to {total:.3f}, not 1")
        weights[comparison] = {
            level: math.log2(spec[level]["m"] / spec[level]["u"]) for level in levels
        }
    limits = doc["thresholds"]
    if limits["review"] >= limits["link"]:
        problems.append("thresholds: review must be below link")
    if problems:
        raise MapFileError(f"{where} is inconsistent:\n  " + "\n  ".join(problems))
    sim = doc["similarity"]
    return MatchRules(
        version=doc["version"],
        similarity=Similarity(
            close=sim["jaro_winkler_close"],
            similar=sim["jaro_winkler_similar"],
            address_tokens=sim["address_word_overlap"],
        ),
        weights=weights,
        thresholds=Thresholds(
            link=limits["link"], review=limits["review"], unverified_nhs=limits["unverified_nhs"]
        ),
        blocking_keys=tuple(
            BlockingKey(k["name"], tuple(k["parts"])) for k in doc["blocking"]["keys"]
        ),
        max_block_size=doc["blocking"]["max_block_size"],
        diminutives=_diminutives(doc["given_name_variants"]["groups"]),
    )


def _diminutives(groups: list[list[str]]) -> dict[str, frozenset[int]]:
    found: dict[str, set[int]] = {}
    for i, group in enumerate(groups):
        for name in group:
            found.setdefault(name, set()).add(i)
    return {name: frozenset(ids) for name, ids in found.items()}


def load_rules(path: Path = RULES_FILE) -> MatchRules:
    """Read and check the rules file; a bad file stops the caller, naming every problem."""
    return rules_from_doc(orjson.loads(path.read_bytes()), str(path))
