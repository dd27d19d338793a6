"""Canonical JSON keeps a FHIR decimal as it was written, however often it is read and written."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from adapters.mapper import _json_number
from engine.canonical import dumps, loads
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
def test_a_decimal_reads_back_as_written(text: str) -> None:
    value = _json_number(Decimal(text))  # as the mappers give it
    body = dumps({"valueQuantity": {"value": value}, "note": [{"text": "1.10"}]})
    read = loads(body)
    assert str(read["valueQuantity"]["value"]) == str(value)
    assert dumps(read) == body


def test_a_body_without_such_numbers_reads_as_plain_json() -> None:
    read = loads(b'{"a":5.1,"b":3,"c":"x"}')
    assert read == {"a": 5.1, "b": 3, "c": "x"}
    assert type(read["a"]) is float


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
