"""Blocking: which pairs of records are worth comparing at all, so linking stays near-linear.

Comparing every record with every other is quadratic; instead each record gets a few keys
(from the rules file, e.g. its NHS number, its birth date, its family-name sound and birth
year, its postcode and birth year) and only records sharing a key are compared. The keys are
chosen so that each kind of noise the sources show leaves at least one key intact: a moved
address keeps the birth date; a married-name change keeps the birth date and postcode; a
day/month swap keeps the *unordered* birth date (year plus the two numbers sorted).

A block bigger than ``max_block_size`` yields no pairs. A key shared by that many records
carries almost no evidence of identity (a common surname in a common birth year), it would make
the cost quadratic again, and its records still meet through their other keys. Oversized
blocks are counted (``Blocks.oversized``) so a benchmark or an operator can see when the cap
bites and add a more selective key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from itertools import product

from engine.identity.features import Demographics, phonetic
from engine.identity.rules import BlockingKey, MatchRules


def _birth_date_unordered(d: Demographics) -> tuple[str, ...]:
    if d.birth_date is None:
        return ()
    low, high = sorted((d.birth_date.day, d.birth_date.month))
    return (f"{d.birth_date.year:04d}-{low:02d}-{high:02d}",)


def _one(value: object) -> tuple[str, ...]:
    return (str(value),) if value else ()


def _sound(name: str) -> str:
    """A name's metaphone code; the folded name itself where metaphone has none (it reads
    Latin letters only), so names in every script get a ``names-year`` key."""
    return phonetic(name) or name


#: The parts a blocking key may be built from (the schema lists the same names).
PARTS: dict[str, Callable[[Demographics], tuple[str, ...]]] = {
    "nhs_number": lambda d: _one(d.nhs_number),
    "birth_date": lambda d: _one(d.birth_date.isoformat() if d.birth_date else None),
    "birth_date_unordered": _birth_date_unordered,
    "birth_year": lambda d: _one(d.birth_year),
    "family_phonetic": lambda d: tuple(dict.fromkeys(_sound(f) for f in d.all_families)),
    "given_phonetic": lambda d: _one(_sound(d.given)),
    "postcode": lambda d: _one(d.postcode),
    "postcode_sector": lambda d: _one(d.postcode_sector),
    "sex": lambda d: _one(d.sex),
}


def blocking_keys(d: Demographics, keys: Sequence[BlockingKey]) -> frozenset[str]:
    """Every key value of one record; a key with a missing part gives none."""
    out: set[str] = set()
    for key in keys:
        values = [PARTS[part](d) for part in key.parts]
        for combo in product(*values):
            out.add(f"{key.name}:{'|'.join(combo)}")
    return frozenset(out)


class Blocks:
    """Records by blocking key; yields each candidate pair once. Holds keys only, not records."""

    def __init__(self, rules: MatchRules) -> None:
        self._keys = rules.blocking_keys
        self._cap = rules.max_block_size
        self._by_key: defaultdict[str, list[str]] = defaultdict(list)
        self._of: dict[str, frozenset[str]] = {}

    def add(self, record_id: str, d: Demographics) -> None:
        keys = blocking_keys(d, self._keys)
        self._of[record_id] = keys
        for key in keys:
            self._by_key[key].append(record_id)

    @property
    def oversized(self) -> dict[str, int]:
        """Keys whose block exceeds the cap, with their size: these produced no pairs."""
        return {k: len(v) for k, v in self._by_key.items() if len(v) > self._cap}

    def candidates(self, record_id: str) -> set[str]:
        """Records sharing a usable block with ``record_id`` (itself excluded)."""
        found: set[str] = set()
        for key in self._of[record_id]:
            members = self._by_key[key]
            if len(members) <= self._cap:
                found.update(members)
        found.discard(record_id)
        return found

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Each candidate pair once, as ``(a, b)`` with ``a < b``, in a deterministic order."""
        for record_id in sorted(self._of):
            for other in sorted(self.candidates(record_id)):
                if other > record_id:
                    yield record_id, other
