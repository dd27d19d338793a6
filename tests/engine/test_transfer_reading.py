"""What the pages read of a stored message: the subject's name, the coded reason, NEWS2, and
narrative text stripped of tags in linear time."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from engine.transfer import news2
from engine.transfer.form import NEWS2_TOTAL, REASON, claimed_news2, transfer_message
from engine.transfer.reading import bag_of, sections, triage
from tests.api.transfers import BASE, CARE_HOME, FORM, HOSPITAL


def message() -> dict[str, Any]:
    return transfer_message(FORM, sender=CARE_HOME, destination=HOSPITAL,
                            now=datetime.now(UTC), base=BASE)  # fmt: skip


def test_the_inbox_reads_the_subject_and_the_coded_reason_not_the_first_patient_or_a_title() -> (
    None
):
    doc = message()
    decoy = {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000000",
             "resource": {"resourceType": "Patient", "name": [{"family": "Decoy"}]}}  # fmt: skip
    doc["entry"].insert(1, decoy)
    composition = next(e["resource"] for e in doc["entry"]
                       if e["resource"]["resourceType"] == "Composition")  # fmt: skip
    reason = next(s for s in composition["section"] if s["title"] == "Reason for transfer")
    reason["title"] = "Why"
    found = triage(doc)
    assert found["name"] == f"{FORM.person.given} {FORM.person.family}"
    assert found["reason"] == FORM.reason and found["news2"] == "8"
    assert found["risk"] == "high"


def test_the_pages_read_the_composition_the_header_names_not_the_first() -> None:
    """The rules judge the focus; a Composition ahead of it (which the rules now refuse) must
    never be what a stored message is read by."""
    doc = message()
    decoy = copy.deepcopy(doc["entry"][1])
    decoy["fullUrl"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
    for section in decoy["resource"]["section"]:
        section["text"]["div"] = "<div>Routine review</div>"
    doc["entry"].insert(1, decoy)
    assert triage(doc)["reason"] == FORM.reason
    assert "Routine review" not in {s.text for s in sections(doc)}


def test_a_tag_never_spans_another_opening_bracket() -> None:
    """``<[^>]+>`` rescanned to the end of the text from every ``<`` with no ``>``: a sender's
    200,000 brackets stalled every inbox showing them. A tag now stops at the next ``<``."""
    doc = message()
    composition = next(e["resource"] for e in doc["entry"]
                       if e["resource"]["resourceType"] == "Composition")  # fmt: skip
    composition["section"][0]["text"]["div"] = "<div>a < b <i>c</i></div>"
    first, *_ = sections(doc)
    assert first.text == "a < b c"


def test_a_total_sent_as_an_integer_is_read_and_checked_as_one() -> None:
    """R4 lets a score be a valueInteger: it is read as the total, not as none."""
    doc = message()
    total = next(e["resource"] for e in doc["entry"]
                 if NEWS2_TOTAL in str(e["resource"].get("code")))  # fmt: skip
    total["valueInteger"] = total.pop("valueQuantity")["value"]
    assert triage(doc)["news2"] == "8"
    claim = claimed_news2(doc["entry"])
    assert claim is not None and claim.vitals is not None
    assert claim.total == news2.total(claim.vitals) == 8


def test_the_inbox_shows_a_total_whatever_system_its_code_was_sent_under() -> None:
    """The rules check (and refuse) a total coded without SNOMED's system; a message stored
    before then still shows its NEWS2."""
    doc = message()
    total = next(e["resource"] for e in doc["entry"]
                 if NEWS2_TOTAL in str(e["resource"].get("code")))  # fmt: skip
    del total["code"]["coding"][0]["system"]
    assert triage(doc)["news2"] == "8"


def test_each_section_carries_the_resources_its_entries_reference() -> None:
    """What the rules checked, not only the sender's summary of it: the allergy section holds
    the AllergyIntolerance its entry names, found by fullUrl within the Bundle."""
    shown = {s.code: s for s in sections(message())}
    allergies = shown["allergies-and-adverse-reaction"].entries
    assert [r["resourceType"] for r in allergies] == ["AllergyIntolerance"]
    assert shown[REASON].entries == () and shown[REASON].text == FORM.reason


def test_the_bag_is_read_an_item_a_line_to_start_the_discharge_from() -> None:
    assert bag_of(message()) == ["Glasses", "Hearing aid"]
    empty = transfer_message(replace(FORM, belongings=()), sender=CARE_HOME,
                             destination=HOSPITAL, now=datetime.now(UTC), base=BASE)  # fmt: skip
    assert bag_of(empty) == []
    doc = message()
    composition = doc["entry"][1]["resource"]
    composition["section"] = [s for s in composition["section"]
                              if s["code"]["coding"][0]["code"] != "belongings"]  # fmt: skip
    assert bag_of(doc) == []


def test_the_risk_band_is_shown_only_where_the_readings_give_the_total() -> None:
    """A message stored before the rules checked totals may carry one its readings do not
    give: its band would be the readings', not the total's, so none is shown."""
    doc = message()
    total = next(e["resource"] for e in doc["entry"]
                 if NEWS2_TOTAL in str(e["resource"].get("code")))  # fmt: skip
    total["valueQuantity"]["value"] = 2
    assert triage(doc)["news2"] == "2" and triage(doc)["risk"] == ""
