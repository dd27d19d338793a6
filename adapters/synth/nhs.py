"""Synthetic NHS numbers: unique, in the never-issued 999 test range, passing modulus 11.

Uniqueness without remembering every number issued: the six digits after ``999`` run through
an affine permutation of 0..999,999 chosen from the seed, so the n-th call never repeats an
earlier one (for the first million calls) and memory stays constant however many are drawn.
"""

from __future__ import annotations

import random

from adapters.values import nhs_check_digit, nhs_number_valid

_PREFIX = "999"
_SPACE = 1_000_000


class NhsNumbers:
    """Issues distinct valid test-range NHS numbers in a seed-determined order."""

    def __init__(self, rng: random.Random) -> None:
        step = rng.randrange(1, _SPACE) | 1
        if step % 5 == 0:
            step += 2  # coprime with 10**6, so the map below is a permutation
        self._step = step
        self._offset = rng.randrange(_SPACE)
        self._n = 0

    def issue(self) -> str:
        while True:
            if self._n >= _SPACE:
                raise RuntimeError("the NHS test range is used up")
            body = f"{_PREFIX}{(self._step * self._n + self._offset) % _SPACE:06d}"
            self._n += 1
            check = nhs_check_digit(body)
            if check is not None:
                return f"{body}{check}"


def mistype(rng: random.Random, number: str) -> str:
    """One wrong digit after the prefix, as a person keying it in makes: always fails mod 11.

    Changing one digit of weight 2..10 by 1..9 changes the weighted sum by a product with no
    factor of 11, so the check digit can never agree.
    """
    pos = rng.randrange(len(_PREFIX), 9)
    wrong = rng.choice([d for d in "0123456789" if d != number[pos]])
    typed = f"{number[:pos]}{wrong}{number[pos + 1 :]}"
    assert not nhs_number_valid(typed)
    return typed
