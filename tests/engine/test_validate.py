"""Validation with an ingest run's element memo finds exactly what validation without it finds."""

from __future__ import annotations

import copy
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.validate import ElementMemo, validate_resource
from tests.factories import JUNK


def _observation(patient: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"source": "https://fhir.scr.example/source/x/1"},
        "identifier": [{"system": "https://fhir.scr.example/Id/source-record", "value": "x|1"}],
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "163030003"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2009-10-19T13:15:57+00:00",
        "valueQuantity": {"value": 123, "unit": "mmHg"},
        "performer": [{"reference": "Organization/o"}, {"reference": "Practitioner/p"}],
        "category": [{"coding": [{"system": "http://x", "code": "vital-signs"}]}],
    }


_paths = st.sampled_from(
    [
        ("code",),
        ("code", "coding"),
        ("code", "coding", 0, "code"),
        ("code", "coding", 0, "system"),
        ("subject",),
        ("subject", "reference"),
        ("valueQuantity", "value"),
        ("valueQuantity",),
        ("performer",),
        ("performer", 1),
        ("performer", 0, "reference"),
        ("category", 0, "coding"),
        ("meta", "source"),
        ("identifier", 0),
        ("status",),
    ]
)


def _put(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


@pytest.mark.parametrize("nested", [False, True])
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_paths, JUNK), max_size=3), st.integers(0, 2))
def test_memo_changes_no_outcome(
    nested: bool, edits: list[tuple[tuple[str | int, ...], Any]], who: int
) -> None:
    """Whatever is broken where, the issues are the same with a warm memo as without one."""
    memo = ElementMemo(nested=nested)
    for warm in (_observation("p0"), _observation("p1"), _observation("p2")):
        assert validate_resource(warm, memo) == []
    doc = _observation(f"p{who}")
    for path, value in edits:
        try:
            _put(doc, path, copy.deepcopy(value))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced the parent; the later one has nowhere to go
    assert validate_resource(doc, memo) == validate_resource(doc)
    assert validate_resource(doc, memo) == validate_resource(doc)  # and again, memo warmer


#: Values holding UUIDs, valid and not, where each may go: the memo's keys rename UUIDs.
_UUIDISH = st.uuids().flatmap(
    lambda u: st.sampled_from([
        f"urn:uuid:{u}", str(u), f"urn:uuid:{str(u).upper()}", f"urn:uuid:{u}\n",
        f" urn:uuid:{u}", f"Patient/{u}", f"{u}{u}", "00000000-0000-0000-0000-000000000000",
        {"reference": f"urn:uuid:{u}"}, [{"reference": f"urn:uuid:{u}"}],
    ])
)  # fmt: skip


def _by_uuid(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` referring as a message does, to a new ``urn:uuid:`` each time."""
    doc["subject"] = {"reference": f"urn:uuid:{uuid.uuid4()}"}
    doc["performer"] = [{"reference": f"urn:uuid:{uuid.uuid4()}"} for _ in range(2)]
    return doc


@pytest.mark.parametrize("nested", [False, True])
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_paths, st.one_of(JUNK, _UUIDISH)), max_size=3))
def test_a_memo_warmed_on_other_uuids_changes_no_outcome(
    nested: bool, edits: list[tuple[tuple[str | int, ...], Any]]
) -> None:
    """Elements met before with other UUIDs are taken as those were: the issues are the same
    as without a memo, whatever is broken where, UUIDs put in places they may and may not go."""
    memo = ElementMemo(nested=nested)
    for _ in range(3):
        assert validate_resource(_by_uuid(_observation()), memo) == []
    doc = _by_uuid(_observation())
    for path, value in edits:
        try:
            _put(doc, path, copy.deepcopy(value))
        except (KeyError, IndexError, TypeError):
            continue
    assert validate_resource(doc, memo) == validate_resource(doc)
    assert validate_resource(doc, memo) == validate_resource(doc)


def test_elements_differing_only_in_their_uuids_share_one_entry_unless_one_recurs() -> None:
    memo = ElementMemo()
    for _ in range(20):
        assert validate_resource(_by_uuid(_observation()), memo) == []
    # The code, the value, the category, and one Reference for every subject and performer.
    assert len(memo) == 4
    for first, second, entries in ((1, 1, 5), (2, 2, 5), (3, 4, 6)):
        doc = _by_uuid(_observation())
        a, b = (uuid.UUID(int=n) for n in (first, second))
        doc["category"] = [{"coding": [{"system": f"urn:uuid:{a}", "code": str(b)}]}]
        assert validate_resource(doc, memo) == []
        assert len(memo) == entries  # the same UUID twice is a shape of its own


def test_a_bad_element_is_reported_every_time_at_its_path() -> None:
    memo = ElementMemo()
    bad = {"coding": [{"system": "http://snomed.info/sct", "code": 163030003}]}
    first, second = _observation("p1"), _observation("p2")
    first["code"] = bad
    second["code"] = copy.deepcopy(bad)
    for doc in (first, second):
        issues = validate_resource(doc, memo)
        assert [i.field for i in issues] == ["Observation.code.coding[0].code"]
    # Two subjects, the value, two performers and the category; never the bad code.
    assert len(memo) == 6
    assert validate_resource(_observation("p1"), memo) == []


def test_elements_that_carry_identity_are_not_remembered_and_memory_is_bounded() -> None:
    memo = ElementMemo(capacity=4)
    for n in range(50):
        assert validate_resource(_observation(f"p{n}"), memo) == []
    assert len(memo) == 4


def test_a_value_that_is_not_json_is_left_to_the_model() -> None:
    memo = ElementMemo()
    doc = _observation()
    doc["valueQuantity"] = {"value": Decimal("120.5"), "unit": "mmHg"}
    assert validate_resource(doc, memo) == validate_resource(doc) == []
    doc["valueQuantity"] = {"value": 2**70, "unit": "mmHg"}
    assert validate_resource(doc, memo) == validate_resource(doc)


def test_a_value_the_model_cannot_read_is_an_issue_naming_its_element() -> None:
    """fhir.resources raises AttributeError for a number where a url goes."""
    doc = {
        "resourceType": "MessageHeader",
        "eventCoding": {"system": "https://x", "code": "x"},
        "source": {"endpoint": "https://x"},
        "destination": [{"endpoint": 2}],
    }
    for memo in (None, ElementMemo()):
        issues = validate_resource(doc, memo)
        assert [i.field for i in issues] == ["MessageHeader.destination"]
        assert issues[0].reason.startswith("not valid R4: ")


def test_contained_resources_are_validated_by_the_resource_itself() -> None:
    memo = ElementMemo()
    doc = _observation()
    doc["contained"] = [{"resourceType": "Patient", "id": "c", "birthDate": "not a date"}]
    assert validate_resource(doc, memo) == validate_resource(doc) != []


def test_a_nested_memo_keeps_an_element_s_elements_and_never_a_bad_one() -> None:
    memo = ElementMemo(nested=True)
    assert validate_resource(_observation("p1"), memo) == []
    doc = _observation("p2")
    doc["category"] = [{"coding": [{"system": "http://x", "code": 7}]}]
    issues = validate_resource(doc, memo)
    assert [i.field for i in issues] == ["Observation.category[0].coding[0].code"]
    assert issues == validate_resource(doc)
    # The first copy's code, subject, value, two performers and category, the coding in its
    # code and in its category, and the second subject; the bad category and its coding never.
    assert len(memo) == 9


def test_one_memo_serves_many_threads_with_the_outcomes_of_none() -> None:
    """Threads sharing a small memo (so it is always evicting) each get what no memo gives."""
    memo = ElementMemo(capacity=8, nested=True)
    docs = [_observation(f"p{n % 5}") for n in range(40)]
    for n, doc in enumerate(docs[::3]):
        doc["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": n}]}
    expected = [validate_resource(doc) for doc in docs]
    failures: list[str] = []

    def work() -> None:
        for _ in range(5):
            for doc, want in zip(docs, expected, strict=True):
                if validate_resource(doc, memo) != want:
                    failures.append(doc["subject"]["reference"])

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(memo) <= 8
