"""Canonical JSON keeps a FHIR decimal as it was written, however often it is read and written."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.mapper import _json_number
from engine.canonical import dumps, exact, loads
from engine.relabel import relabelled

#: FHIR's decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
decimals = st.from_regex(
    r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@given(decimals)
@example("5.10")
@example("120.0")
@example("1.0000000000000002")
@example("-0.0")
@example("-0")
@example("1E+400")
@example("20000000000000000000")
def test_a_decimal_reads_back_as_written(text: str) -> None:
    value = _json_number(Decimal(text))  # as the mappers give it
    body = dumps({"valueQuantity": {"value": value}, "note": [{"text": "1.10"}]})
    read = loads(body)
    assert str(read["valueQuantity"]["value"]) == str(value)
    assert dumps(read) == body


def test_a_body_without_such_numbers_reads_as_plain_json() -> None:
    """Ids hold hex like ``19e8``: not a number, so not the slower parse."""
    read = loads(b'{"b":3,"c":"x","id":"5610726d-19e8-5924-b8dc-c66082eca962","r":"A1E-4"}')
    assert read["b"] == 3 and read["id"].startswith("5610726d")
    assert loads(b'{"id":"19e8","v":[1,2]}') == {"id": "19e8", "v": [1, 2]}


@pytest.mark.parametrize("text", ["0.000001", "0.0000025", "-0.000009", "5.1", "1.5E+3"])
def test_every_fraction_is_written_again_as_it_was_stored(text: str) -> None:
    """What the mask path does (loads, then orjson with ``exact``), and relabel (``dumps``)."""
    body = (
        b'{"resourceType":"Observation","valueQuantity":{"unit":"mg/L","value":'
        + text.encode()
        + b"}}"
    )
    assert orjson.dumps(loads(body), default=exact, option=orjson.OPT_SORT_KEYS) == body
    assert dumps(loads(body)) == body


def test_a_relabelled_body_keeps_its_decimals() -> None:
    body = loads(
        dumps(
            {"resourceType": "Observation", "meta": {}, "valueQuantity": {"value": Decimal("4.0")}}
        )
    )
    out = relabelled(
        body, {"source-confidential"}, "https://fhir.scr.example/", 2, "2026-12-05T00:00:00+00:00"
    )
    assert out is not None
    assert b'"value":4.0' in dumps(out)
