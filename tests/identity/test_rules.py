"""Each hard case of issue 3, by name, with the outcome the rules must give it.

"Not linked" means ``review`` or ``apart``: a review pair is left for a person to decide.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.schema import MapFileError
from engine.identity.compare import given_name
from engine.identity.decide import (
    HOUSEHOLD,
    INVALID_NHS_IGNORED,
    NAMES_DIFFER,
    NHS_CONFLICT,
    NHS_UNVERIFIED,
    NHS_VERIFIED,
    SCORE,
    SEX_CONFLICT,
    MatchDecision,
    decide,
)
from engine.identity.features import Demographics
from engine.identity.rules import RULES_FILE, rules_from_doc
from tests.identity.people import MISTYPED, NHS_A, NHS_B, NHS_C, RULES, person


def both_ways(a: Demographics, b: Demographics) -> MatchDecision:
    """The decision, checked to be the same whichever record comes first."""
    there, back = decide(a, b, RULES), decide(b, a, RULES)
    assert there == back
    return there


# --- NHS numbers ------------------------------------------------------------------------------


def test_verified_equal_nhs_numbers_link_even_when_spelt_differently() -> None:
    gp = person(nhs=NHS_A, given=("John",))
    other = person(nhs=NHS_A, given=("Jon",), postcode="BO1 1AA", line="3 Mill Road")
    d = both_ways(gp, other)
    assert (d.outcome, d.rule) == ("link", NHS_VERIFIED)


def test_verified_equal_nhs_numbers_on_a_mother_and_her_baby_are_held_for_review() -> None:
    """A source copies the mother's verified number onto her newborn's record: the birth date
    and the given name (and sex) disagree. Held apart for a person to check, never merged."""
    mother = person(nhs=NHS_A, given=("Jane",), born="1990-02-02", sex="female")
    baby = person(nhs=NHS_A, given=("Tom",), born="2024-06-01", sex="male")
    d = both_ways(mother, baby)
    assert (d.outcome, d.rule) == ("review", NHS_VERIFIED)
    assert d.forbids_merge
    renamed = person(nhs=NHS_A, family="Patterson", given=("Tom",), postcode="BO2 2BB", line="1 X")
    assert both_ways(person(nhs=NHS_A), renamed).outcome == "link"


def test_a_fathers_verified_number_on_his_namesake_sons_record_is_held_for_review() -> None:
    """The son's record carries his father's verified number: same name, sex and home, birth
    dates 30 years apart. A keying slip (one digit, a day, day and month swapped) still links."""
    father = person(nhs=NHS_A, given=("John",), born="1960-05-01")
    son = person(nhs=NHS_A, given=("John",), born="1990-07-12")
    d = both_ways(father, son)
    assert (d.outcome, d.rule) == ("review", NHS_VERIFIED)
    for slip in ("1960-05-07", "1960-05-02", "1960-01-05", "1980-05-01"):
        assert both_ways(father, person(nhs=NHS_A, given=("John",), born=slip)).outcome == "link"


def test_conflicting_nhs_numbers_stay_apart() -> None:
    d = both_ways(person(nhs=NHS_A), person(nhs=NHS_B, postcode="BO1 1AA", line="3 Mill Road"))
    assert (d.outcome, d.rule) == ("apart", NHS_CONFLICT)
    assert d.forbids_merge


def test_conflicting_nhs_numbers_with_every_detail_equal_go_to_review() -> None:
    """Likely one person registered twice: a person must retire one number, never the engine."""
    d = both_ways(person(nhs=NHS_A), person(nhs=NHS_B))
    assert (d.outcome, d.rule) == ("review", NHS_CONFLICT)
    assert d.forbids_merge


def test_an_unverified_number_that_differs_puts_agreeing_demographics_on_review() -> None:
    """The GP's number was replaced on the Spine; the council still holds the old one
    (untraced) and the man has moved since: a stale number, not proof of two people."""
    gp = person(nhs=NHS_C, line="9 Hill Rd", postcode="BO2 2BB")
    council = person(nhs=NHS_A, status="02", council_style=True)
    d = both_ways(gp, council)
    assert (d.outcome, d.rule) == ("review", NHS_CONFLICT)
    assert d.forbids_merge
    twin = person(nhs=NHS_A, status="02", given=("Tom",))
    assert both_ways(person(nhs=NHS_C), twin).outcome == "apart"


def test_a_number_its_source_doubts_is_weaker_evidence() -> None:
    """EMIS NHSNumberStatus 05: the trace found a conflict between number and details."""
    doubted = person(nhs=NHS_B, status="05")
    moved = person(nhs=NHS_A, line="9 Hill Rd", postcode="BO2 2BB")
    assert (both_ways(doubted, moved).outcome, both_ways(doubted, moved).rule) == (
        "review",
        NHS_CONFLICT,
    )
    stranger = person(nhs=NHS_B, given=("Tom",), born="1988-10-30", line="9 X", postcode="BO2 2BB")
    d = both_ways(doubted, stranger)
    assert d.rule != NHS_UNVERIFIED and d.outcome == "apart"
    assert "a doubted NHS number (trace status 05) was ignored" in d.reasons


def test_mistyped_nhs_number_is_treated_as_no_number() -> None:
    gp = person(nhs=NHS_A)
    council = person(nhs=MISTYPED, status="02", council_style=True)
    d = both_ways(gp, council)
    assert (d.outcome, d.rule) == ("link", SCORE)
    assert INVALID_NHS_IGNORED in d.reasons


def test_mistyped_nhs_number_never_conflicts_with_a_valid_one() -> None:
    d = both_ways(person(nhs=NHS_B), person(nhs=MISTYPED))
    assert d.rule != NHS_CONFLICT


def test_strangers_sharing_a_placeholder_nhs_number_are_not_linked() -> None:
    """Same first name and birthday only (11.9 bits): a placeholder number adds nothing."""
    a = person(nhs="9999999999", status="02", family="Archer")
    b = person(nhs="9999999999", status="02", family="Grundy", line="3 Mill Rd", postcode="BO3 3CC")
    d = both_ways(a, b)
    assert (d.outcome, d.rule) == ("apart", SCORE)
    assert INVALID_NHS_IGNORED in d.reasons


def test_unverified_nhs_number_with_agreeing_demographics_links() -> None:
    d = both_ways(person(nhs=NHS_A), person(nhs=NHS_A, status="02", council_style=True))
    assert (d.outcome, d.rule) == ("link", NHS_UNVERIFIED)


def test_unverified_nhs_number_with_disagreeing_demographics_is_not_linked() -> None:
    gp = person(nhs=NHS_A)
    other = person(
        nhs=NHS_A, status="02", given=("Tom",), born="1988-10-30", postcode="BO2 2BB", line="9 X"
    )
    d = both_ways(gp, other)
    assert (d.outcome, d.rule) == ("review", NHS_UNVERIFIED)


# --- households -------------------------------------------------------------------------------


def test_twins_same_birth_date_different_names_stay_apart() -> None:
    d = both_ways(person(given=("Kirsty",), sex="female"), person(given=("Pat",), sex="female"))
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)


def test_twins_same_birth_date_sound_alike_names_are_not_linked() -> None:
    """Neil and Noel sound alike (same metaphone): within a household that is not enough."""
    d = both_ways(person(given=("Neil",)), person(given=("Noël",)))
    assert (d.outcome, d.rule) == ("review", HOUSEHOLD)


def test_twins_born_a_day_apart_stay_apart() -> None:
    a = person(given=("Kirsty",), sex="female", born="1990-06-01")
    b = person(given=("Pat",), sex="female", born="1990-06-02")
    d = both_ways(a, b)
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)


def test_twins_apart_even_when_one_record_carries_the_others_unverified_number() -> None:
    a = person(nhs=NHS_A, given=("Kirsty",), sex="female")
    b = person(nhs=NHS_A, status="02", given=("Pat",), sex="female")
    assert both_ways(a, b).outcome == "review"


def test_father_and_son_same_name_same_address_stay_apart() -> None:
    d = both_ways(person(born="1950-02-11"), person(born="1979-08-23"))
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)


def test_household_spelling_variant_without_nhs_number_goes_to_review() -> None:
    d = both_ways(person(nhs=NHS_A, given=("Sean",)), person(given=("Shaun",)))
    assert (d.outcome, d.rule) == ("review", HOUSEHOLD)


def test_household_spelling_variant_settled_by_equal_nhs_number() -> None:
    d = both_ways(
        person(nhs=NHS_A, given=("Sean",)), person(nhs=NHS_A, status="02", given=("Shaun",))
    )
    assert (d.outcome, d.rule) == ("link", NHS_UNVERIFIED)


def test_twins_with_close_first_names_at_one_home_are_not_linked() -> None:
    """Louise and Louisa: inside a household a close first name is a question, not a link."""
    d = both_ways(person(given=("Louise",), sex="female"), person(given=("Louisa",), sex="female"))
    assert (d.outcome, d.rule) == ("review", HOUSEHOLD)
    assert d.forbids_merge


def test_twins_with_compound_first_names_sharing_the_first_part_are_not_linked() -> None:
    """Mary-Jane and Mary-Ann: every part of the first name is compared, not the first word."""
    a = person(given=("Mary-Jane",), sex="female")
    d = both_ways(a, person(given=("Mary-Ann",), sex="female"))
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)
    assert both_ways(a, person(given=("Mary",), sex="female")).outcome == "link"
    assert both_ways(a, person(given=("Mary-Jayne",), sex="female")).outcome != "apart"


def test_twins_with_compound_first_names_never_link_when_one_record_is_elsewhere() -> None:
    """'maryjane'/'maryann' scores Jaro-Winkler 0.921, at the close cut-off: compared whole,
    the council's Mary-Ann at her student address linked to the GP's Mary-Jane."""
    gp = person(nhs=NHS_A, given=("Mary-Jane",), sex="female")
    council = person(given=("Mary-Ann",), sex="female", line="9 Hill Rd", postcode="BO2 2BB")
    assert both_ways(gp, council).outcome != "link"


def test_twins_with_compound_first_names_written_with_a_space_are_not_linked() -> None:
    """Mary Jane and Mary Ann: every adapter keeps each word of a first name as a given name of
    its own, so the two differ only in their middle names, and those are compared too."""
    jane = person(given=("Mary", "Jane"), sex="female")
    d = both_ways(jane, person(given=("Mary", "Ann"), sex="female"))
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)
    assert both_ways(jane, person(given=("Mary",), sex="female")).outcome == "link"
    assert both_ways(jane, person(given=("Mary", "J"), sex="female")).outcome == "link"
    assert both_ways(jane, person(given=("Mary", "Jane", "Ann"), sex="female")).outcome == "link"
    assert both_ways(jane, person(given=("Mary", "Jayne"), sex="female")).outcome != "apart"


def test_twin_sisters_one_since_married_at_one_home_are_not_linked() -> None:
    """Jane Archer and her twin Sarah Smith née Archer: a surname that is the other's earlier one
    makes one family at one home, as an exact one does."""
    jane = person(nhs=NHS_A, given=("Jane",), sex="female", born="1980-02-02")
    sarah = person(family="Smith", previous="Archer", given=("Sarah",), sex="female",
                   born="1980-02-02", council_style=True)  # fmt: skip
    assert (both_ways(jane, sarah).outcome, both_ways(jane, sarah).rule) == ("apart", HOUSEHOLD)
    married = person(family="Smith", previous="Archer", given=("Jane",), sex="female",
                     born="1980-02-02", council_style=True)  # fmt: skip
    assert both_ways(jane, married).outcome == "link"


def test_a_daughter_since_married_holding_her_mothers_unverified_number_is_not_linked() -> None:
    """Mary Archer (1950) and her daughter Mary Smith née Archer (1975), one home; the council
    copied the mother's number onto the daughter's record, unverified."""
    mother = person(nhs=NHS_A, given=("Mary",), sex="female", born="1950-06-01")
    daughter = person(nhs=NHS_A, status="02", family="Smith", previous="Archer", given=("Mary",),
                      sex="female", born="1975-09-12", council_style=True)  # fmt: skip
    d = both_ways(mother, daughter)
    assert (d.outcome, d.rule) == ("review", HOUSEHOLD)
    assert d.forbids_merge


def test_twins_one_holding_the_others_verified_number_are_held_for_review() -> None:
    """Philip and Philippa, one birth date: another recorded sex and a first name not the same
    are two people, whatever number one record copied."""
    philip = person(nhs=NHS_A, given=("Philip",), born="2015-05-05")
    philippa = person(nhs=NHS_A, given=("Philippa",), sex="female", born="2015-05-05")
    d = both_ways(philip, philippa)
    assert (d.outcome, d.rule) == ("review", NHS_VERIFIED)
    assert d.forbids_merge


def test_a_nickname_at_the_same_home_is_a_question_not_silently_apart() -> None:
    """William (GP, verified) and Bill (council, no number): same surname, birth date and home
    (27.5 bits). A twin and a nickname look alike here, so a person decides."""
    gp = person(nhs=NHS_A, given=("William",))
    d = both_ways(gp, person(given=("Bill",), council_style=True))
    assert (d.outcome, d.rule) == ("review", HOUSEHOLD)
    assert both_ways(gp, person(given=("Bill",), born="1981-06-02")).outcome == "apart"
    assert both_ways(gp, person(given=("Robert",))).outcome == "apart"


def test_twins_stay_apart_when_a_source_abbreviates_the_street() -> None:
    """Amy and Beth; one source writes 'Church Ln': same postcode is a household too."""
    amy = person(given=("Amy",), sex="female", line="12 Church Lane")
    beth = person(given=("Beth",), sex="female", line="12 Church Ln", council_style=True)
    assert (both_ways(amy, beth).outcome, both_ways(amy, beth).rule) == ("apart", HOUSEHOLD)
    moved = person(given=("Beth",), sex="female", line="12 Church Lane", postcode="BO2 2BB")
    assert both_ways(amy, moved).rule == HOUSEHOLD


def test_father_and_son_stay_apart_when_a_source_respells_the_surname() -> None:
    """'Archar' or 'Archer Jr' must not take the pair out of the household rule."""
    father = person(family="Archer", born="1951-03-04")
    for son in ("Archar", "Archer Jr"):
        d = both_ways(father, person(family=son, born="1979-08-21"))
        assert (d.outcome, d.rule) == ("apart", HOUSEHOLD), son


def test_father_and_son_stay_apart_when_one_source_holds_only_a_birth_year() -> None:
    """A year that contradicts the other's full date is a disagreement, not a missing value."""
    father = person(born="1951", line="12 Church Lane")
    son = person(born="1979-08-21", line="12 Church Ln")
    d = both_ways(father, son)
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)
    assert "birth_date=different (-5.3)" in d.reasons
    assert "birth_date=missing (+0.0)" in both_ways(person(born="1951"), person()).reasons


def test_twins_with_non_latin_names_at_one_home_stay_apart() -> None:
    d = both_ways(
        person(family="Иванов", given=("Иван",)), person(family="Иванов", given=("Пётр",))
    )
    assert (d.outcome, d.rule) == ("apart", HOUSEHOLD)


def test_strangers_whose_names_both_differ_are_never_linked_automatically() -> None:
    """Margaret Brown and Doris Patel share a care home and a birth date (16.4 bits)."""
    home = {"line": "Rose Court Care Home, 1 Mill Lane", "postcode": "BO4 4DD", "sex": "female"}
    a = person(family="Brown", given=("Margaret",), born="1938-05-17", **home)
    b = person(family="Patel", given=("Doris",), born="1938-05-17", **home)
    d = both_ways(a, b)
    assert (d.outcome, d.rule) == ("review", NAMES_DIFFER)
    assert d.forbids_merge


# --- sex --------------------------------------------------------------------------------------


def test_different_sex_otherwise_equal_is_never_linked() -> None:
    d = both_ways(person(sex="male"), person(sex="female"))
    assert (d.outcome, d.rule) == ("review", SEX_CONFLICT)
    assert d.forbids_merge


def test_different_sex_and_weak_demographics_stay_apart() -> None:
    a = person(sex="male", given=("Tom",), postcode="BO2 2BB", line="1 Back Lane")
    d = both_ways(a, person(sex="female", given=("Ruth",), born="1951-03-05"))
    assert d.outcome == "apart"


# --- demographic noise that must still link ---------------------------------------------------


def test_married_name_change_links_via_previous_surname() -> None:
    gp = person(nhs=NHS_A, family="Archer", given=("Jill",), sex="female", previous="Patterson")
    council = person(family="Patterson", given=("Jill",), sex="female", council_style=True)
    d = both_ways(gp, council)
    assert d.outcome == "link"
    assert "family_name=previous (+4.3)" in d.reasons


def test_married_name_change_and_a_move_links_or_reviews_but_never_apart() -> None:
    gp = person(family="Archer", given=("Jill",), sex="female", previous="Patterson")
    moved = person(
        family="Patterson", given=("Jill",), sex="female", postcode="BO2 2BB", line="1 X"
    )
    assert both_ways(gp, moved).outcome in ("link", "review")


def test_married_name_change_unrecorded_links_at_the_same_home() -> None:
    d = both_ways(person(family="Archer", sex="female"), person(family="Patterson", sex="female"))
    assert d.outcome == "link"


def test_transposed_birth_date_links() -> None:
    d = both_ways(person(born="1951-03-04"), person(born="1951-04-03", council_style=True))
    assert d.outcome == "link"
    assert any(r.startswith("birth_date=transposed") for r in d.reasons)


def test_moved_address_links_on_name_and_birth_date() -> None:
    d = both_ways(person(), person(postcode="BO2 7XW", line="110 Lakey Hill"))
    assert (d.outcome, d.rule) == ("link", SCORE)


def test_name_variant_and_a_move_links() -> None:
    d = both_ways(person(given=("John",)), person(given=("Jon",), postcode="BO2 7XW", line="1 X"))
    assert d.outcome == "link"


def test_missing_nhs_number_with_strong_demographics_links() -> None:
    d = both_ways(person(nhs=NHS_A), person(council_style=True))
    assert (d.outcome, d.rule) == ("link", SCORE)


def test_surname_respelt_by_another_source_links() -> None:
    d = both_ways(person(family="O'Neill"), person(family="ONEILL"))
    assert d.outcome == "link"
    assert any(r.startswith("family_name=exact") for r in d.reasons)


def test_same_name_different_birth_date_and_address_stays_apart() -> None:
    d = both_ways(person(), person(born="1963-01-15", postcode="BO2 2BB", line="2 Mill Road"))
    assert (d.outcome, d.rule) == ("apart", SCORE)


def test_same_name_a_day_apart_elsewhere_goes_to_review() -> None:
    d = both_ways(person(), person(born="1951-03-05", postcode="BO2 2BB", line="2 Mill Road"))
    assert (d.outcome, d.rule) == ("review", SCORE)
    assert d.forbids_merge


# --- the rules file ---------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    return copy.deepcopy(orjson.loads(RULES_FILE.read_bytes()))


def test_rules_file_weights_are_log2_of_m_over_u() -> None:
    assert RULES.weight("birth_date", "exact") == pytest.approx(14.23, abs=0.01)
    assert RULES.weight("sex", "missing") == 0.0


def test_rules_file_is_schema_checked_naming_the_path() -> None:
    doc = _doc()
    del doc["comparisons"]["sex"]["levels"]["different"]
    with pytest.raises(MapFileError, match="comparisons/sex/levels"):
        rules_from_doc(doc, "bad.json")


def test_rules_file_blocking_parts_are_a_closed_list() -> None:
    doc = _doc()
    doc["blocking"]["keys"][0]["parts"] = ["shoe_size"]
    with pytest.raises(MapFileError, match="blocking/keys/0/parts/0"):
        rules_from_doc(doc, "bad.json")


def test_rules_file_m_must_be_a_distribution() -> None:
    doc = _doc()
    doc["comparisons"]["sex"]["levels"]["same"]["m"] = 0.5
    with pytest.raises(MapFileError, match=r"sex: m sums to 0\.505"):
        rules_from_doc(doc, "bad.json")


def test_rules_file_review_threshold_below_link() -> None:
    doc = _doc()
    doc["thresholds"]["review"] = doc["thresholds"]["link"]
    with pytest.raises(MapFileError, match="review must be below link"):
        rules_from_doc(doc, "bad.json")


# --- properties -------------------------------------------------------------------------------

_people = st.builds(
    person,
    nhs=st.sampled_from([None, NHS_A, NHS_B, MISTYPED]),
    status=st.sampled_from(["01", "02"]),
    family=st.sampled_from(["Archer", "ARCHER", "Aldridge", "Smith-Jones", "Smith Jones"]),
    given=st.sampled_from([("John",), ("Jon",), ("Neil",), ("Noël",), ("J",), ("Tom", "John")]),
    previous=st.sampled_from([None, "Archer", "Grundy"]),
    born=st.sampled_from(["1951-03-04", "1951-04-03", "1951-03-05", "1979-08-23", "1951"]),
    sex=st.sampled_from(["male", "female", "unknown"]),
    line=st.sampled_from(["12 Church Lane", "3 Mill Road"]),
    postcode=st.sampled_from(["BO9 1RH", "BO9 1ZZ", "BO2 2BB", ""]),
    council_style=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(_people, _people)
def test_decision_is_symmetric_and_deterministic(a: Demographics, b: Demographics) -> None:
    first = decide(a, b, RULES)
    assert decide(b, a, RULES) == first
    assert decide(a, b, RULES) == first
    assert first.outcome in ("link", "review", "apart")
    if first.outcome == "link":
        assert not first.forbids_merge


def test_boy_girl_twins_with_a_diminutive_and_a_copied_unverified_number_are_not_linked() -> None:
    """James and Jamie at one home, born the same day: the diminutive makes them a question,
    and a number copied between them, unverified, does not settle it."""
    james = person(nhs=NHS_A, status="01", given=("James",), sex="male")
    jamie = person(nhs=NHS_A, status="02", given=("Jamie",), sex="female")
    assert decide(james, jamie, RULES).outcome == "review"
    jim = person(nhs=NHS_A, status="02", given=("Jamie",), sex="male")
    assert decide(james, jim, RULES).outcome == "review"


def test_the_same_forenames_split_otherwise_between_first_and_middle_are_one_name() -> None:
    """Mary-Jane-Ann from one source, Mary-Jane with middle name Ann from another."""
    gp = person(nhs=NHS_A, given=("Mary-Jane-Ann",), sex="female")
    council = person(given=("Mary-Jane", "Ann"), sex="female", line="40 New Rd", postcode="BO4 4NR")
    assert given_name(gp, council, RULES.similarity) == "exact"
    assert decide(gp, council, RULES).outcome != "apart"
