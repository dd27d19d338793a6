"""Reading a stored Patient into Demographics: what each source's spelling folds to."""

from __future__ import annotations

from datetime import date

from engine.identity.compare import given_name
from engine.identity.features import VERIFICATION_URL, demographics, fold
from tests.identity.people import MISTYPED, NHS_A, NHS_B, RULES, patient, person


def test_verified_nhs_number_is_read_with_its_status() -> None:
    d = person(nhs=NHS_A, status="01")
    assert (d.nhs_number, d.nhs_verified, d.nhs_number_invalid) == (NHS_A, True, False)


def test_nhs_number_not_traced_is_unverified() -> None:
    d = person(nhs=NHS_A, status="02")
    assert d.nhs_number == NHS_A and not d.nhs_verified


def test_a_trace_status_that_doubts_the_number_is_read() -> None:
    assert person(nhs=NHS_A, status="05").nhs_doubted
    assert not person(nhs=NHS_A, status="02").nhs_doubted
    assert not person(nhs=NHS_A, status="01").nhs_doubted


def test_a_verified_nhs_identifier_is_preferred_to_an_earlier_one() -> None:
    p = patient(nhs=NHS_B, status="02")
    p["identifier"].append({**p["identifier"][0], "value": NHS_A})
    p["identifier"][1]["extension"] = [
        {"url": VERIFICATION_URL, "valueCodeableConcept": {"coding": [{"code": "01"}]}}
    ]
    d = demographics(p)
    assert (d.nhs_number, d.nhs_verified) == (NHS_A, True)
    p["identifier"][0]["value"] = MISTYPED
    p["identifier"][1]["extension"] = []
    assert demographics(p).nhs_number == NHS_A


def test_an_ended_address_is_not_taken_as_home() -> None:
    p = patient()
    p["address"][0]["period"] = {"end": "2020-01-01"}
    assert demographics(p).postcode is None and not demographics(p).address_tokens


def test_mistyped_nhs_number_failing_modulus_11_counts_as_none() -> None:
    d = person(nhs=MISTYPED)
    assert d.nhs_number is None and not d.nhs_verified and d.nhs_number_invalid


def test_a_placeholder_nhs_number_counts_as_none() -> None:
    for placeholder in ("0000000000", "9999999999"):
        d = person(nhs=placeholder)
        assert d.nhs_number is None and not d.nhs_verified and d.nhs_number_invalid, placeholder


def test_names_fold_to_letters_without_accents_or_case() -> None:
    assert fold("O'NEILL") == fold("O'Neill") == "oneill"
    assert fold("Smith-Jones") == fold("Smith Jones") == "smithjones"
    assert fold("Zoë") == "zoe" and fold("Müller") == "muller"


def test_names_in_any_script_fold_to_their_letters() -> None:
    assert fold("Пётр") == fold("ПЕТР") == "петр" and fold("Иван") != fold("Пётр")
    assert person(given=("Иван",)).given == "иван" and fold("محمد") == "محمد"
    mariya, marina = person(given=("Мария",)), person(given=("Марина",))
    assert given_name(mariya, marina, RULES.similarity) == "different"


def test_a_compound_first_name_keeps_its_parts_apart_from_middle_names() -> None:
    d = person(given=("Mary-Jane", "Ruth"))
    assert (d.given, d.given_parts, d.other_given) == ("mary", ("mary", "jane"), ("jane", "ruth"))


def test_given_and_middle_names_and_previous_surname() -> None:
    d = person(family="Archer", given=("Jill", "Ruth"), previous="Patterson")
    assert (d.family, d.given, d.other_given) == ("archer", "jill", ("ruth",))
    assert d.previous_families == ("patterson",)
    assert d.all_families == ("archer", "patterson")


def test_previous_name_equal_to_current_is_not_repeated() -> None:
    assert person(family="Archer", previous="ARCHER").previous_families == ()


def test_birth_date_partial_dates_are_missing() -> None:
    assert person(born="1951-03-04").birth_date == date(1951, 3, 4)
    assert person(born="1951").birth_date is None
    assert person(born="1951-03").birth_date is None
    assert person(born="1951").birth_year == person(born="1951-03-04").birth_year == 1951


def test_unknown_sex_is_missing() -> None:
    assert person(sex="unknown").sex is None
    assert person(sex="female").sex == "female"


def test_postcode_normalised_and_sector() -> None:
    d = person(postcode="bo9 1rh")
    assert d.postcode == "BO91RH" and d.postcode_sector == "BO91"


def test_gp_lines_and_council_text_give_the_same_address_words() -> None:
    gp = person(line="Flat 2 Blossom Hill Road")
    council = person(line="Flat 2 Blossom Hill Road", council_style=True)
    assert gp.address_tokens == council.address_tokens
    assert {"flat", "2", "blossom", "ambridge"} <= gp.address_tokens


def test_a_patient_with_nothing_identifying_reads_as_empty() -> None:
    d = demographics({"resourceType": "Patient", "id": "x"})
    assert d.nhs_number is None and d.family == "" and d.given == ""
    assert d.birth_date is None and d.postcode is None and d.address_tokens == frozenset()


def test_old_name_is_not_taken_as_current() -> None:
    doc = patient()
    doc["name"] = [{"use": "old", "family": "Patterson"}, {"family": "Archer", "given": ["Jill"]}]
    d = demographics(doc)
    assert d.family == "archer" and d.previous_families == ("patterson",)
