"""``mask`` with ``withheld``: a released resource names nothing the decision withholds from the
record (an encounter's diagnosis, a problem list's entries), and ``hidden_in_record`` says what
that is, whatever a read asked for."""

from __future__ import annotations

from typing import Any

from consent import Request, decide, hidden_by, hidden_in_record, mask, referenced_id
from tests.consent.personas import (
    GP,
    NOW,
    POLICY,
    directive,
    facts,
    hospital_clinician,
    meta,
    typical,
    who,
)

MASKED = {"extension": [{
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked",
}]}  # fmt: skip
EVERYTHING = Request("everything")
PROBLEM = "c0ffee00-0000-4000-8000-00000000c001"
READING = "c0ffee00-0000-4000-8000-00000000a001"


def test_a_reference_names_its_target_by_id_however_written() -> None:
    for written in (
        f"Condition/{PROBLEM}",
        f"https://fhir.example.org/R4/Condition/{PROBLEM}",
        f"Condition/{PROBLEM}/_history/3",
        f"https://fhir.example.org/R4/Condition/{PROBLEM}/_history/3",
        f"urn:uuid:{PROBLEM}",
    ):
        assert referenced_id(written) == PROBLEM, written
    assert referenced_id("#problem") is None, "a contained one is judged among the contained"


def _gp() -> Any:
    user = who("clinical")
    return decide(user, facts(typical(user)), "TREAT", EVERYTHING, NOW, POLICY)


def visit() -> dict[str, Any]:
    return {
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "meta": {"versionId": "3", "lastUpdated": "2026-01-05T10:00:00+00:00"},
        "diagnosis": [{"condition": {"reference": f"Condition/{PROBLEM}",
                                     "display": "Hypertension"}, "rank": 1}],
        "reasonReference": [{"reference": f"Observation/{READING}", "display": "BP"}],
        "extension": [{"url": "https://example.org/about",
                       "valueReference": {"reference": f"urn:uuid:{PROBLEM}"}}],
        "contained": [{"resourceType": "Practitioner", "id": "p",
                       "extension": [{"url": "https://example.org/for",
                                      "valueReference": {"reference": f"Condition/{PROBLEM}",
                                                         "display": "Hypertension"}}]}],
    }  # fmt: skip


def test_a_reference_to_a_withheld_item_is_marked_masked_wherever_it_is() -> None:
    """Its display and target go, as for a contained resource taken out; the rest stays, and
    the resource leaves without its version (a change to the problem alone would show)."""
    shown = mask(visit(), _gp(), POLICY, GP, frozenset({PROBLEM}))
    assert "Hypertension" not in str(shown) and PROBLEM not in str(shown)
    assert shown["diagnosis"] == [{"condition": MASKED, "rank": 1}]
    assert shown["reasonReference"] == visit()["reasonReference"]
    assert shown["extension"][0]["valueReference"] == MASKED
    assert shown["contained"][0]["extension"][0]["valueReference"] == MASKED
    assert "meta" not in shown


def test_nothing_named_withheld_leaves_the_resource_whole() -> None:
    d = _gp()
    assert mask(visit(), d, POLICY, GP, frozenset({"another-id"})) == visit()
    assert mask(visit(), d, POLICY, GP) == visit()


def problems(*entries: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "List", "id": "l1", "status": "current", "mode": "working",
        "meta": {"versionId": "2"},
        "entry": [{"item": {"reference": ref, "display": "named"}} for ref in entries],
    } | extra  # fmt: skip


def test_a_list_says_nothing_of_what_it_holds_that_is_withheld() -> None:
    """An entry for a withheld item is dropped, not marked: a marked one would count them."""
    d = _gp()
    shown = mask(problems(f"Condition/{PROBLEM}", f"Observation/{READING}"), d, POLICY, GP,
                 frozenset({PROBLEM}))  # fmt: skip
    assert shown["entry"] == [{"item": {"reference": f"Observation/{READING}", "display": "named"}}]
    assert "meta" not in shown
    emptied = mask(problems(f"urn:uuid:{PROBLEM}"), d, POLICY, GP, frozenset({PROBLEM}))
    assert "entry" not in emptied and "meta" not in emptied


def test_a_list_entry_for_a_contained_item_taken_out_is_dropped_too() -> None:
    """A Device no profile may see, contained in a list, goes with its entry."""
    device = {"resourceType": "Device", "id": "dev", "deviceName": [
        {"name": "Pulse oximeter", "type": "user-friendly-name"}]}  # fmt: skip
    listed = problems("#dev", f"Observation/{READING}", contained=[device])
    shown = mask(listed, _gp(), POLICY, GP)
    assert "contained" not in shown and "Pulse" not in str(shown)
    assert [e["item"]["reference"] for e in shown["entry"]] == [f"Observation/{READING}"]


CONDITION = {
    "resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "active"}]},
    "code": {"text": "Hypertension"},
}  # fmt: skip


def test_what_the_record_withholds_does_not_depend_on_what_was_asked() -> None:
    """A search of encounters does not ask for the problem (``hidden_by``: not a type asked
    for), but it is withheld from the record only under the person's restriction."""
    user = hospital_clinician()
    asked = Request("search", frozenset({"Encounter"}))
    restricted = facts(
        typical(user), directives=(directive("restrict-category", category="problems-active"),)
    )
    for patient, reason in ((facts(typical(user)), None),
                            (restricted, "consent.restricted-section")):  # fmt: skip
        narrowed = decide(user, patient, "TREAT", asked, NOW, POLICY)
        whole = decide(user, patient, "TREAT", EVERYTHING, NOW, POLICY)
        assert hidden_by(meta(CONDITION, GP), narrowed) == "profile.types"
        assert hidden_in_record(meta(CONDITION, GP), narrowed) == reason
        assert hidden_by(meta(CONDITION, GP), whole) == reason
