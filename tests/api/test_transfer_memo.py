"""The process's element memo for messages (``engine.transfer.rules.ELEMENTS``) changes no
outcome: a message broken anywhere is refused with the very same problems, each at the same
FHIRPath, with the memo warm as with no memo at all."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.transfer import rules, signature
from engine.transfer.rules import Problem, check_shape
from engine.validate import ElementMemo
from tests.api.transfers import CARE_HOME, signed, unsigned
from tests.factories import JUNK, edited, paths_in

_KEY = signature.new_key()
_MESSAGE = signed(unsigned(), _KEY)
#: Every path inside the message's resources, so an edit can land anywhere.
_PATHS = [p for p in paths_in(_MESSAGE, 3) if p[0] == "entry" and p[2] == "resource"]


def _shape(doc: dict[str, Any], memo: ElementMemo | None) -> list[Problem]:
    """The problems found (a value fhir.resources cannot read is one of them too)."""
    before = rules.ELEMENTS
    rules.ELEMENTS = memo
    try:
        return check_shape(copy.deepcopy(doc))[0]
    finally:
        rules.ELEMENTS = before


@pytest.fixture(scope="module")
def warm() -> ElementMemo:
    memo = ElementMemo(nested=True)
    for _ in range(3):
        assert _shape(signed(unsigned(), _KEY, CARE_HOME), memo) == []
    return memo


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATHS), JUNK), min_size=1, max_size=3))
@example(  # the library raised TypeError, not a ValidationError, for a list where a url goes
    edits=[
        (("entry", 0, "resource", "destination", 0, "endpoint"), []),
        (("entry", 0, "resource", "focus"), [None]),
    ]
)
def test_a_warm_memo_refuses_each_broken_message_exactly_as_no_memo_does(
    warm: ElementMemo, edits: list[tuple[tuple[str | int, ...], Any]]
) -> None:
    doc = edited(_MESSAGE, edits)
    assert _shape(doc, warm) == _shape(doc, None)
    assert _shape(doc, warm) == _shape(doc, None)  # and again, the memo warmer


def test_the_server_s_memo_is_bounded_and_nested() -> None:
    assert rules.ELEMENTS is not None
    assert rules.ELEMENTS.nested
    assert rules.ELEMENTS.capacity == 2048
