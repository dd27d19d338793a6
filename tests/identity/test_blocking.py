"""Blocking: the noise each key survives, the cap, and no all-pairs comparison."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from engine.identity import match_all
from engine.identity.blocking import Blocks, blocking_keys
from engine.identity.features import Demographics
from tests.identity.people import NHS_A, RULES, person


def keys(d: Demographics) -> frozenset[str]:
    return blocking_keys(d, RULES.blocking_keys)


def shared(a: Demographics, b: Demographics) -> set[str]:
    return {k.split(":")[0] for k in keys(a) & keys(b)}


def test_a_record_gets_a_key_per_rule_with_its_parts() -> None:
    got = keys(person(nhs=NHS_A, born="1951-03-04", postcode="BO9 1RH"))
    assert f"nhs:{NHS_A}" in got
    assert "born:1951-03-04" in got
    assert "postcode-year:BO91RH|1951" in got


def test_missing_parts_give_no_key() -> None:
    got = keys(person(born="1951", postcode=""))
    assert not any(k.startswith(("nhs:", "born:", "postcode-year:")) for k in got)


def test_transposed_birth_date_still_meets() -> None:
    assert "born" in shared(person(born="1951-03-04"), person(born="1951-04-03"))


def test_moved_address_still_meets() -> None:
    assert "born" in shared(person(), person(postcode="BO2 7XW"))


def test_married_name_change_still_meets_by_previous_name() -> None:
    married = person(family="Archer", previous="Patterson", born="1960-01-01", postcode="BO1 1AA")
    maiden = person(family="Patterson", born="1960-01-31", postcode="BO2 2BB")
    assert shared(married, maiden) == {"names-year"}


def test_a_block_over_the_cap_yields_no_pairs_and_is_reported() -> None:
    blocks = Blocks(RULES)
    crowd = RULES.max_block_size + 1
    for i in range(crowd):
        blocks.add(f"p{i:04d}", person(born=f"1951-01-{1 + i % 28:02d}", postcode=""))
    oversized = blocks.oversized
    assert any(k.startswith("names-year:") for k in oversized)
    assert max(oversized.values()) == crowd
    pairs = list(blocks.pairs())
    assert len(pairs) < crowd * 10  # only the small birth-date blocks remain
    assert all(a < b for a, b in pairs) and len(set(pairs)) == len(pairs)


def _population(n: int, rng: random.Random) -> list[Demographics]:
    """Records of ``n`` people, 40% of them held twice (a GP and a council record, one moved).

    Names come from 2,000 surnames and 300 given names, birth dates from 96 years: wide enough
    that chance agreement is rare, as in a real region.
    """
    surnames = ["".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(2000)]
    given = ["".join(rng.choices(string.ascii_lowercase, k=5)) for _ in range(300)]
    out = []
    for _ in range(n):
        year = rng.randint(1925, 2020)
        details = {
            "family": rng.choice(surnames),
            "given": (rng.choice(given),),
            "born": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
        out.append(person(**details, postcode=f"BO{rng.randint(1, 9)} {rng.randint(1, 9)}AX"))
        if rng.random() < 0.4:
            out.append(person(**details, postcode=f"BO{rng.randint(1, 9)} {rng.randint(1, 9)}BX"))
    return out


def _pairs_per_record(people: int) -> float:
    blocks = Blocks(RULES)
    records = _population(people, random.Random(people))
    for i, d in enumerate(records):
        blocks.add(f"r{i:06d}", d)
    return sum(1 for _ in blocks.pairs()) / len(records)


def test_candidate_pairs_grow_about_linearly_not_quadratically() -> None:
    """All-pairs would compare each record with every other: thousands per record here.

    With blocking, pairs per record are the record's own duplicates plus chance agreements
    on a key (mostly the birth date, about one per 35,000 records), so they grow slowly with
    the population (until the cap bounds them) instead of with it.
    """
    small, large = _pairs_per_record(2000), _pairs_per_record(8000)
    assert large < 1.5
    # Four times the people: all-pairs would make pairs per record four times larger.
    assert large / small < 2.5


@pytest.mark.parametrize(("family", "given"), [("Ivanova", "Olga"), ("Иванова", "Ольга")])
def test_a_one_day_slip_after_a_move_is_reviewed_whatever_the_script(
    family: str, given: str
) -> None:
    """Same woman, birth date a day out, moved house: only the names-year key brings the pair
    together. Metaphone gives '' outside Latin letters, so Cyrillic names had no such key."""
    one: dict[str, Any] = {"family": family, "given": (given,), "sex": "female"}
    records = {
        "a": person(pid="a", born="1985-03-04", **one),
        "b": person(pid="b", born="1985-03-05", line="9 Hill Rd", postcode="BO2 2BB", **one),
    }
    got = match_all(records, RULES)
    assert [(a, b, d.outcome) for a, b, d in got.review] == [("a", "b", "review")]
    assert any(k.startswith("names-year:") for k in keys(records["b"]))
