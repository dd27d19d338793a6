"""Source values at the edge: UK wall-clock times across the clock changes, dates, NHS numbers."""

from __future__ import annotations

import pytest

from adapters import values
from tests.factories import nhs_numbers


def test_a_time_the_clocks_skipped_is_refused():
    """01:30 on 29 March 2026 never happened in the UK (01:00 GMT became 02:00 BST)."""
    with pytest.raises(values.ValueProblem, match="did not happen"):
        values.tpp_datetime("29 Mar 2026 01:30")


def test_in_the_hour_passed_twice_the_first_is_taken():
    """01:30 on 25 October 2026 happened at 00:30Z (BST) and again at 01:30Z (GMT)."""
    assert values.tpp_datetime("25 Oct 2026 01:30") == "2026-10-25T00:30:00+00:00"
    assert values.tpp_datetime("25 Oct 2026 02:30") == "2026-10-25T02:30:00+00:00"
    assert values.tpp_datetime("01 Jul 2026 12:00") == "2026-07-01T11:00:00+00:00"


@pytest.mark.parametrize("written", ["01 Mar 1950", "01 Mar 1950 00:00", "01 Mar 1950 23:59:59"])
def test_a_systmone_date_may_carry_a_time(written):
    """SystmOne writes 'dd MMM yyyy' or 'dd MMM yyyy HH:mm[:ss]' in any date column."""
    assert values.tpp_date(written) == "1950-03-01"


def test_an_nhs_number_in_other_digits_is_refused():
    """'٩' is a digit to Python, not to anyone searching for the number."""
    number = next(nhs_numbers())
    arabic = number.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert values.nhs_number_valid(number)
    assert not values.nhs_number_valid(arabic)
    with pytest.raises(values.ValueProblem):
        values.nhs_number(arabic)


def test_a_placeholder_nhs_number_is_refused():
    """0000000000 and 9999999999 pass modulus 11 but are what systems write for "unknown"."""
    for digit in "0123456789":
        placeholder = digit * 10
        assert not values.nhs_number_valid(placeholder)
        with pytest.raises(values.ValueProblem, match="placeholder"):
            values.nhs_number(placeholder)


@pytest.mark.parametrize("raw", ["28.5", "3e9", "2147483648", "1E+999999999", "x"])
def test_an_integer_fhir_cannot_hold_is_refused_not_cut(raw: str) -> None:
    with pytest.raises(values.ValueProblem):
        values.integer(raw)


@pytest.mark.parametrize(("raw", "whole"), [("28", 28), (" 7.0 ", 7), ("-2147483648", -(2**31))])
def test_a_whole_number_is_an_integer(raw: str, whole: int) -> None:
    assert values.integer(raw) == whole


@pytest.mark.parametrize("raw", ["1E+400", "2E+308", "-1.8E+308"])
def test_a_decimal_no_reader_could_hold_is_refused(raw: str) -> None:
    """Stored exactly, it would break every reader of the resource (a double holds at most
    about 1.8E+308): the record pages, restamp, most FHIR clients."""
    with pytest.raises(values.ValueProblem):
        values.decimal(raw)


@pytest.mark.parametrize("raw", ["1_5", "١٢", "Infinity", "NaN", "1e", "--1"])
def test_a_number_is_written_as_sources_write_numbers(raw: str) -> None:
    """``Decimal`` reads ``1_5`` as 15 and other scripts' digits: a value is never changed."""
    with pytest.raises(values.ValueProblem):
        values.decimal(raw)
