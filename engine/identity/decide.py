"""Whether two Patient records are one person: hard rules first, then a Fellegi–Sunter score.

The hard rules exist because a score adds evidence up, and some evidence must never be
outvoted: two different valid NHS numbers, or a household (twins, a father and son of one name)
where everything but the given name or the birth date agrees. In order:

1. ``nhs-verified``: both NHS numbers verified (status ``01``) and equal → link; review
   instead when the birth date and the given name or sex disagree (a mother's number copied
   onto her baby's record), the birth dates differ by more than a keying slip (one digit,
   a day, day and month swapped: a father's number on his namesake son's record), or on one
   birth date the sexes and the first names are not the same (one twin's number on the
   other's record): NHS number first, but never a merge a person has not checked.
2. ``nhs-conflict``: both hold valid NHS numbers and they differ → apart. Review instead when
   both are verified and every demographic agrees exactly (a duplicate registration someone
   must retire by hand), or when one is not verified and the details alone would link (a
   number replaced on the Spine, still held by a source that never traced it).
3. ``household``: a family name exact, alike ("Archar", "Archer Jr") or the other's earlier
   one (a twin sister since married) at one address (same
   home, postcode or street), but the given names or the birth dates differ (twins, a parent
   and child of one name) → apart (review if the NHS numbers are equal). When the difference
   is only a looser spelling (even a close one: twins are named Louise and Louisa), a
   diminutive on the same birth date (William, Bill: a list in the rules file), a single day
   or a missing value → review, unless equal NHS numbers and a corroborating score settle
   it (link, as rule 6).
4. ``names-differ``: family and given names both differ → never linked automatically (two
   residents of one care home born the same day); review when the score reaches it.
5. ``sex-conflict``: both sexes recorded and different → never linked automatically; review
   when the rest of the score would reach the review threshold.
6. ``nhs-unverified``: equal NHS numbers, not both verified → link only when the demographic
   score corroborates it (``thresholds.unverified_nhs``), else review.
7. ``score``: otherwise, link at or above ``thresholds.link``, review at or above
   ``thresholds.review``, apart below.

An NHS number failing modulus 11, or a placeholder (0000000000), never reaches these rules
(features treat it as absent). A number its source doubts (trace status 03–08, such as ``05``:
number and details conflict) is not verified, and an equal doubted number links nothing: it is
ignored, and the reasons say so. The decision is pure and symmetric: ``decide(a, b)`` equals
``decide(b, a)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Final, Literal

from engine.identity.compare import compare
from engine.identity.features import Demographics
from engine.identity.rules import MatchRules

Outcome = Literal["link", "review", "apart"]

NHS_VERIFIED: Final = "nhs-verified"
NHS_CONFLICT: Final = "nhs-conflict"
HOUSEHOLD: Final = "household"
NAMES_DIFFER: Final = "names-differ"
SEX_CONFLICT: Final = "sex-conflict"
NHS_UNVERIFIED: Final = "nhs-unverified"
SCORE: Final = "score"
#: Not a rule: one of the records has no demographics (deleted at source), so no evidence.
NO_EVIDENCE: Final = "no-evidence"
INVALID_NHS_IGNORED: Final = (
    "an invalid NHS number (failing modulus 11, or a placeholder) was ignored"
)
#: Levels that together mean "every demographic agrees exactly".
_ALL_EXACT: Final = {
    "family_name": "exact",
    "given_name": "exact",
    "birth_date": "exact",
    "sex": "same",
    "address": "same_home",
}


@dataclass(frozen=True)
class MatchDecision:
    outcome: Outcome
    #: Sum of the demographic weights in bits (NHS numbers are rules, never weights).
    score: float
    #: The rule that decided (one of the module's rule ids).
    rule: str
    #: Why, for the review queue and the link history: the rule, then each comparison's level.
    reasons: tuple[str, ...]

    @property
    def forbids_merge(self) -> bool:
        """These two must not end up in one person through other links either.

        True for ``apart`` and for every ``review``: a chain of links (A–C, C–B) must not
        answer a question a direct comparison (A–B) left to a person. A comparison with a
        record that has no demographics (deleted at source) forbids nothing.
        """
        return self.outcome == "apart" or (self.outcome == "review" and self.rule != NO_EVIDENCE)


#: A family name this alike at one address is one family ("Archer", "Archar", "Archer Jr"),
#: and so is one that is the other's recorded earlier name (a twin sister since married).
_ONE_FAMILY: Final = frozenset({"exact", "previous", "close", "similar"})
#: One address, though a source may abbreviate the street or leave out the house.
_ONE_ADDRESS: Final = frozenset({"same_home", "same_postcode", "same_street"})


def _household(levels: dict[str, str], diminutive: bool) -> Outcome | None:
    """``apart`` or ``review`` for the twin / parent-and-child pattern; None when it is not one.

    Only an exact first name and birth date escape it: twins are often given close names
    (Louise, Louisa), so inside a household a close first name is a question, not a link. A
    first name that is the other's diminutive (William, Bill) on the same birth date is a
    question too: one man under his nickname looks like that, and apart would hide him.
    """
    if levels["family_name"] not in _ONE_FAMILY or levels["address"] not in _ONE_ADDRESS:
        return None
    given, born = levels["given_name"], levels["birth_date"]
    if given == "exact" and born in ("exact", "transposed"):
        return None
    if born == "different" or (given == "different" and not diminutive):
        return "apart"
    return "review"


def _keying_slip(a: date | None, b: date | None) -> bool:
    """Two full birth dates one digit apart (1951 keyed as 1961): a typo, not another person."""
    if a is None or b is None:
        return False
    return sum(x != y for x, y in zip(a.isoformat(), b.isoformat(), strict=True)) == 1


def _two_people(a: Demographics, b: Demographics, levels: dict[str, str]) -> bool:
    """Equal verified numbers on records of two people: a mother's number copied onto her
    baby's record (birth date and name or sex differ), a father's onto his namesake son's
    (birth dates apart by more than a keying slip, a day or a day/month swap), or one twin's
    onto the other's (one birth date, but another recorded sex and a first name not the same:
    Philip and Philippa). One person renamed keeps a verified number, and links."""
    if levels["birth_date"] != "different":
        return levels["sex"] == "different" and levels["given_name"] != "exact"
    names = "different" in (levels["given_name"], levels["sex"])
    return names or not _keying_slip(a.birth_date, b.birth_date)


def _unnumbered(d: Demographics) -> Demographics:
    return replace(d, nhs_number=None, nhs_status=None)


def decide(a: Demographics, b: Demographics, rules: MatchRules) -> MatchDecision:
    levels = compare(a, b, rules.similarity)
    weights = {c: rules.weight(c, level) for c, level in levels.items()}
    score = round(sum(weights.values()), 3)
    fields = tuple(f"{c}={levels[c]} ({weights[c]:+.1f})" for c in levels)
    both = a.nhs_number is not None and b.nhs_number is not None
    same = both and a.nhs_number == b.nhs_number
    doubted = [d.nhs_status or "" for d in (a, b) if d.nhs_doubted]
    notes: tuple[str, ...] = ()
    if a.nhs_number_invalid or b.nhs_number_invalid:
        notes += (INVALID_NHS_IGNORED,)
    if same and doubted:
        notes += (f"a doubted NHS number (trace status {min(doubted)}) was ignored",)
    limits = rules.thresholds
    nhs_equal = same and not doubted

    def made(outcome: Outcome, rule: str, why: str) -> MatchDecision:
        return MatchDecision(outcome, score, rule, (why, *notes, *fields))

    def at_most_review(rule: str, why: str) -> MatchDecision:
        high = nhs_equal or score >= limits.review
        return made("review" if high else "apart", rule, why)

    if nhs_equal and a.nhs_verified and b.nhs_verified:
        if _two_people(a, b, levels):
            why = "verified NHS numbers are equal, but the details are two people's"
            return made("review", NHS_VERIFIED, why)
        return made("link", NHS_VERIFIED, "verified NHS numbers are equal")
    if both and not same:
        if a.nhs_verified and b.nhs_verified:
            if levels == _ALL_EXACT:
                return made("review", NHS_CONFLICT, "NHS numbers differ but every detail agrees")
            return made("apart", NHS_CONFLICT, "NHS numbers differ")
        if decide(_unnumbered(a), _unnumbered(b), rules).outcome == "link":
            why = "NHS numbers differ, one not verified, but the details alone would link"
            return made("review", NHS_CONFLICT, why)
        return made("apart", NHS_CONFLICT, "NHS numbers differ")
    household = _household(levels, rules.variants(a.given, b.given))
    if household == "apart":
        why = "same family name and home, different given name or birth date"
        if nhs_equal:
            return made("review", HOUSEHOLD, why + "; NHS numbers equal but unverified")
        return made("apart", HOUSEHOLD, why)
    if household == "review":
        why = "same family name and home, names or dates not certain"
        # An unverified number may have been copied between twins: it settles a close name or
        # date, never a different first name (a diminutive) or a different recorded sex.
        settles = levels["given_name"] != "different" and levels["sex"] != "different"
        if nhs_equal and settles and score >= limits.unverified_nhs:
            return made("link", NHS_UNVERIFIED, why + "; equal NHS numbers settle it")
        return at_most_review(HOUSEHOLD, why)
    if levels["family_name"] == levels["given_name"] == "different":
        return at_most_review(NAMES_DIFFER, "family and given names both differ")
    if levels["sex"] == "different":
        return at_most_review(SEX_CONFLICT, "recorded sex differs")
    if nhs_equal:
        if score >= limits.unverified_nhs:
            return made("link", NHS_UNVERIFIED, "equal NHS numbers, corroborated by demographics")
        return made("review", NHS_UNVERIFIED, "equal NHS numbers, demographics disagree")
    if score >= limits.link:
        return made("link", SCORE, "demographic score at or above the link threshold")
    if score >= limits.review:
        return made("review", SCORE, "demographic score between the thresholds")
    return made("apart", SCORE, "demographic score below the review threshold")
