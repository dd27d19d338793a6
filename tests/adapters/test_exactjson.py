"""Sources' JSON read with its numbers as written (adapters.exactjson)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from adapters.exactjson import exact, loads


def test_spaced_decimals_and_long_integers_read_as_written() -> None:
    """A float would make ``7.50`` ``7.5`` and round a number of 19 digits or more."""
    body = b'{"a": 7.50, "b": [ -9300000000000000000, 123456789012345678901 ], "c": 3}'
    doc = loads(body, checked=True)
    assert doc == {
        "a": Decimal("7.50"),
        "b": [Decimal("-9300000000000000000"), Decimal("123456789012345678901")],
        "c": 3,
    }
    assert orjson.dumps(doc, default=exact) == body.replace(b" ", b"")


@pytest.mark.parametrize(
    "body", [b'{"a": 7.50, "b": NaN}', b'{"a": 7.50, "b": "\\ud800"}', b'{"a": 7.50, "b": 1e400}']
)
def test_json_from_outside_is_refused_where_orjson_refuses_it(body: bytes) -> None:
    """What no JSON writer could write again must not get in by the slower, laxer parse."""
    with pytest.raises(orjson.JSONDecodeError):
        loads(body, checked=True)
