"""Field-by-field comparison of two :class:`Demographics`: each returns one named agreement level.

Levels are discrete so that each carries its own weight in the reviewed rules file (how often
the level is seen between records of one person, ``m``, and of two people, ``u``). Every function
is symmetric in its two arguments; ``MISSING`` means one side holds no value, which is no
evidence either way (weight 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import jellyfish

from engine.identity.features import Demographics, phonetic

MISSING: Final = "missing"

FAMILY_LEVELS: Final = ("exact", "previous", "close", "similar", "different")
GIVEN_LEVELS: Final = ("exact", "close", "similar", "other_given", "initial", "different")
BIRTH_DATE_LEVELS: Final = ("exact", "transposed", "one_day", "different")
SEX_LEVELS: Final = ("same", "different")
ADDRESS_LEVELS: Final = ("same_home", "same_postcode", "same_street", "same_sector", "different")

#: The comparisons in the order they are scored and reported.
LEVELS: Final = {
    "family_name": FAMILY_LEVELS,
    "given_name": GIVEN_LEVELS,
    "birth_date": BIRTH_DATE_LEVELS,
    "sex": SEX_LEVELS,
    "address": ADDRESS_LEVELS,
}


@dataclass(frozen=True)
class Similarity:
    """Cut-offs for the fuzzy levels (from the rules file, so they are reviewed with weights)."""

    #: Jaro–Winkler at or above this is a spelling of the same name ("close").
    close: float
    #: Jaro–Winkler at or above this *and* the same phonetic code is a "similar" name.
    similar: float
    #: Share of address words two addresses must have in common to be the same house.
    address_tokens: float


def _names_similar(a: str, b: str, sim: Similarity) -> str | None:
    """``close``, ``similar`` or None for two different folded names."""
    score = jellyfish.jaro_winkler_similarity(a, b)
    if score >= sim.close:
        return "close"
    # Metaphone gives "" outside Latin letters: an empty code is no agreement.
    if score >= sim.similar and (
        (phonetic(a) or None) == phonetic(b) or jellyfish.nysiis(a) == jellyfish.nysiis(b)
    ):
        return "similar"
    return None


def family_name(a: Demographics, b: Demographics, sim: Similarity) -> str:
    """``previous`` when one's current or old surname is the other's: a married-name change."""
    if not a.family or not b.family:
        return MISSING
    if a.family == b.family:
        return "exact"
    if set(a.all_families) & set(b.all_families):
        return "previous"
    return _names_similar(a.family, b.family, sim) or "different"


def given_name(a: Demographics, b: Demographics, sim: Similarity) -> str:
    """First names; ``other_given`` when one's first name is among the other's middle names.

    Compound first names are compared part by part when both have more than one part: Mary-Jane
    and Mary-Ann share a first word, but they are two names (often twins' names). The same words
    split otherwise between first and middle names (Mary-Jane-Ann; Mary-Jane, Ann) are one name.
    So are Mary Jane and Mary Ann, written with a space: every adapter keeps each word of a
    first name as a given name of its own, so they differ only in their middle names.
    """
    if not a.given or not b.given:
        return MISSING
    if a.given == b.given:
        x, y = a.given_parts, b.given_parts
        if a.other_given == b.other_given:
            return "exact"
        if len(x) > 1 and len(y) > 1 and x != y:
            return _compound(x, y, sim)
        return _middle(a.other_given, b.other_given, sim)
    level = _names_similar(a.given, b.given, sim)
    if level:
        return level
    if a.given in b.other_given or b.given in a.other_given:
        return "other_given"
    if (len(a.given) == 1 or len(b.given) == 1) and a.given[0] == b.given[0]:
        return "initial"
    return "different"


def _compound(x: tuple[str, ...], y: tuple[str, ...], sim: Similarity) -> str:
    """Two compound first names: as alike as their least alike part (Mary-Jane, Mary-Jayne).

    Compared whole, "maryjane" and "maryann" score Jaro-Winkler 0.921, a respelling; yet a
    part that differs (Jane, Ann) makes another name, so the pair is ``different``.
    """
    if len(x) != len(y):
        return "different"
    levels = {"exact" if p == q else _names_similar(p, q, sim) for p, q in zip(x, y, strict=True)}
    if None in levels:
        return "different"
    return "similar" if "similar" in levels else "close"


def _middle(x: tuple[str, ...], y: tuple[str, ...], sim: Similarity) -> str:
    """The words after one first name, where both records hold some: as alike as their least
    alike word, over the words both hold (a source may leave the later ones out), an initial
    agreeing with any word it begins. One record with none says nothing either way."""
    levels = {
        "exact" if p == q or (min(len(p), len(q)) == 1 and p[0] == q[0])
        else _names_similar(p, q, sim)
        for p, q in zip(x, y, strict=False)
    }  # fmt: skip
    if None in levels:
        return "different"
    return "similar" if "similar" in levels else "close" if "close" in levels else "exact"


def birth_date(a: Demographics, b: Demographics) -> str:
    """``transposed``: day and month swapped (03/04 against 04/03), the commonest keying slip.

    A date held only as a year is compared by its year: a contradicting year is ``different``.
    """
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        years = (a.birth_year, b.birth_year)
        return "different" if None not in years and years[0] != years[1] else MISSING
    if x == y:
        return "exact"
    if x.day != x.month and _swapped(x) == y:
        return "transposed"
    if abs(x - y) == timedelta(days=1):
        return "one_day"
    return "different"


def _swapped(d: date) -> date | None:
    try:
        return d.replace(month=d.day, day=d.month)
    except ValueError:
        return None


def sex(a: Demographics, b: Demographics) -> str:
    if a.sex is None or b.sex is None:
        return MISSING
    return "same" if a.sex == b.sex else "different"


def address(a: Demographics, b: Demographics, sim: Similarity) -> str:
    """Postcode and house words together, because they are not independent evidence."""
    words = _same_words(a.address_tokens, b.address_tokens, sim)
    if a.postcode and b.postcode:
        if a.postcode == b.postcode:
            return "same_home" if words is not False else "same_postcode"
        if words:
            return "same_street"
        if a.postcode_sector and a.postcode_sector == b.postcode_sector:
            return "same_sector"
        return "different"
    if words is None:
        return MISSING
    return "same_street" if words else "different"


def _same_words(a: frozenset[str], b: frozenset[str], sim: Similarity) -> bool | None:
    """Whether two addresses share enough words to be one house; None when one has none."""
    if not a or not b:
        return None
    return len(a & b) / len(a | b) >= sim.address_tokens


def compare(a: Demographics, b: Demographics, sim: Similarity) -> dict[str, str]:
    """Every comparison's level, keyed as in :data:`LEVELS`."""
    return {
        "family_name": family_name(a, b, sim),
        "given_name": given_name(a, b, sim),
        "birth_date": birth_date(a, b),
        "sex": sex(a, b),
        "address": address(a, b, sim),
    }
