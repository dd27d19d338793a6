"""The message schema's native validator only ever lets through what the jsonschema library
accepts: whatever it rejects, the library names every problem as before."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.transfer import signature
from engine.transfer.rules import _accepts, _schema
from tests.api.transfers import signed, unsigned

_MESSAGE = signed(unsigned(), signature.new_key())
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "x",
            "Bundle",
            "message",
            "urn:uuid:x",
            "VCH01\n",
            "vch01",
            "R9Z",
            "care-home-transfer",
            "care-home-transfer\n",
            "application/jose",
            "MessageHeader",
            "00000000-0000-4000-8000-000000000000\n",
            "https://x/CodeSystem/scr-message-event\n",
        ]
    ),
    st.just([]),
    st.just([{}]),
    st.just({}),
    st.just({"resourceType": "Patient"}),
)


def _places(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()  # fmt: skip
    for key, child in items:
        found.extend(_places(child, (*path, key)))
    return found


_PATHS = [p for p in _places(_MESSAGE) if p[0] != "entry" or len(p) < 5 or p[2] != "resource"
          or p[3] != "section"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _junk), min_size=1, max_size=3))
def test_the_native_validator_accepts_only_what_the_library_accepts(
    edits: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    doc = copy.deepcopy(_MESSAGE)
    for path, value in edits:
        node: Any = doc
        try:
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue
    if _accepts().is_valid(doc):
        assert list(_schema().iter_errors(doc)) == []


def test_a_good_message_passes_both() -> None:
    assert _accepts().is_valid(_MESSAGE)
    assert list(_schema().iter_errors(_MESSAGE)) == []
