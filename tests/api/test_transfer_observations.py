"""When the readings were taken, and the readings usual for the resident when well (the
baseline): what the form reads, the message carries, the rules judge and the pages show."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.transfer import news2, signature
from engine.transfer import rules as transfer_rules
from engine.transfer.entry import read_form
from engine.transfer.form import (
    BASELINE,
    NEWS2_TOTAL,
    VITAL_SIGNS,
    Baseline,
    Contact,
    transfer_message,
    usual_entries,
)
from engine.transfer.message import SECTIONS
from engine.transfer.reading import sections, triage
from tests.api.transfers import BASE, CARE_HOME, FORM, HOSPITAL, signed
from tests.engine.test_transfer_entry import NOW, TYPED
from tests.factories import JUNK, edited, paths_in

TAKEN = datetime(2026, 12, 5, 7, 45, tzinfo=UTC)
USUAL = Baseline(date(2026, 11, 2), respiration_rate=16, spo2=96, pulse=80, consciousness="A")


def _message(**over: Any) -> dict[str, Any]:
    form = replace(FORM, observed_at=TAKEN, baseline=USUAL, **over)
    return transfer_message(form, sender=CARE_HOME, destination=HOSPITAL, now=NOW, base=BASE)


def _resources(doc: dict[str, Any], code: str) -> list[dict[str, Any]]:
    """The resources of the section coded ``code``."""
    composition = doc["entry"][1]["resource"]
    (section,) = [s for s in composition["section"] if s["code"]["coding"][0]["code"] == code]
    by_url = {e["fullUrl"]: e["resource"] for e in doc["entry"]}
    return [by_url[r["reference"]] for r in section.get("entry", [])]


def _problems(doc: dict[str, Any]) -> list[tuple[str | None, str]]:
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key()))
    return [(p.expression, p.diagnostics) for p in problems]


def test_each_reading_now_carries_when_it_was_taken_and_the_vital_signs_category() -> None:
    now = _resources(_message(), "observations")
    assert len(now) == 8 and {r["effectiveDateTime"] for r in now} == {"2026-12-05T07:45:00+00:00"}
    vital = [r for r in now if r["code"]["coding"][0]["system"] == "http://loinc.org"]
    assert len(vital) == 5 and all(r["category"] == [VITAL_SIGNS] for r in vital)
    narrative = next(s for s in sections(_message()) if s.code == "observations").text
    assert narrative.startswith("Taken 2026-12-05 07:45. Respiration rate 22/min")


def test_the_usual_readings_travel_in_their_own_section_dated_the_day_they_were_taken() -> None:
    doc = _message()
    (section,) = [s for s in doc["entry"][1]["resource"]["section"]
                  if s["code"]["coding"][0]["code"] == BASELINE]  # fmt: skip
    assert section["code"]["coding"][0]["system"] == BASE + SECTIONS
    usual = _resources(doc, BASELINE)
    assert [(r["code"]["coding"][0]["code"], r.get("valueQuantity", {}).get("value",
             r.get("valueString")), r["effectiveDateTime"]) for r in usual] == [
        ("9279-1", 16, "2026-11-02"), ("59408-5", 96, "2026-11-02"), ("8867-4", 80, "2026-11-02"),
        ("1104441000000107", "A", "2026-11-02"),
    ]  # fmt: skip
    shown = next(s for s in sections(doc) if s.code == BASELINE).text
    assert shown == ("Usual when well, recorded 2026-11-02: respiration rate 16/min; SpO2 96%; "
                     "pulse 80/min; consciousness Alert")  # fmt: skip


def test_usual_readings_are_not_scored_into_the_news2_total() -> None:
    """The same codes as today's readings, in the baseline section: read as second readings
    they would refuse every transfer with a baseline; scored, they would change the total."""
    doc = _message()
    assert _problems(doc) == []
    assert triage(doc)["news2"] == str(news2.total(FORM.vitals))


def test_a_reading_now_called_usual_leaves_the_total_short_and_refused() -> None:
    """A sender cannot put a reading out of the NEWS2 check by calling it usual: the total
    then lacks it, and a transfer's total comes with every reading it is scored on."""
    doc = _message()
    composition = doc["entry"][1]["resource"]
    observations = next(s for s in composition["section"]
                        if s["code"]["coding"][0]["code"] == "observations")  # fmt: skip
    baseline = next(s for s in composition["section"]
                    if s["code"]["coding"][0]["code"] == BASELINE)  # fmt: skip
    by_url = {e["fullUrl"]: e["resource"] for e in doc["entry"]}
    spo2 = next(r for r in observations["entry"]
                if by_url[r["reference"]]["code"]["coding"][0]["code"] == "59408-5")  # fmt: skip
    baseline["entry"].append(copy.deepcopy(spo2))
    codes = [e["resource"].get("code", {}).get("coding", [{}])[0].get("code") for e in doc["entry"]]
    i = codes.index(NEWS2_TOTAL)
    missing = "a NEWS2 total comes with every reading it is scored on; missing: Oxygen saturation"
    assert any(where == f"Bundle.entry[{i}].resource.valueQuantity.value"
               and said.startswith(missing) for where, said in _problems(doc))  # fmt: skip


@pytest.mark.parametrize(
    "section", [[], {"code": "x"}, [{"code": {"coding": "baseline-observations"}}], [None]]
)
def test_a_malformed_section_list_names_no_usual_readings(section: Any) -> None:
    """The rules run on messages not yet checked: nothing there may raise."""
    doc = _message()
    doc["entry"][1]["resource"]["section"] = section
    assert usual_entries(doc["entry"]) == frozenset()


def test_a_message_without_a_baseline_has_no_baseline_section() -> None:
    doc = transfer_message(replace(FORM, observed_at=TAKEN), sender=CARE_HOME,
                           destination=HOSPITAL, now=NOW, base=BASE)  # fmt: skip
    assert BASELINE not in [s.code for s in sections(doc)] and _problems(doc) == []


def _read(**typed: str) -> tuple[Any, list[tuple[str | None, str]]]:
    return read_form(TYPED | typed, "9990000018", "Nurse", {"R9Z"}, NOW)


def test_the_time_taken_is_read_as_a_last_dose_is_and_is_needed() -> None:
    form, found = _read(observed="08:00")
    assert found == [] and form.observed_at == datetime(2026, 12, 5, 8, tzinfo=UTC)
    assert _read(observed="")[1] == [
        ("observed", "Enter the time the observations were taken, such as 08:00")
    ]
    ((field, said),) = _read(observed="2026-12-05 10:00")[1]
    assert field == "observed" and said.endswith("still to come: give the time the observations "
                                                 "were taken")  # fmt: skip
    ((field, said),) = _read(observed="8am")[1]
    assert field == "observed" and said.startswith("Give the time the observations were taken as")


def test_the_usual_readings_are_read_with_their_day() -> None:
    form, found = _read(usual_spo2="95", usual_temperature="36.4", usual_consciousness="A",
                        usual_recorded="2026-10-01")  # fmt: skip
    assert found == []
    assert form.baseline == Baseline(date(2026, 10, 1), spo2=95, temperature=36.4,
                                      consciousness="A")  # fmt: skip
    assert _read()[0].baseline is None


@pytest.mark.parametrize(
    ("typed", "field"),
    [
        ({"usual_pulse": "80"}, "usual_recorded"),
        ({"usual_pulse": "80", "usual_recorded": "1 Oct"}, "usual_recorded"),
        ({"usual_pulse": "80", "usual_recorded": "2026-12-06"}, "usual_recorded"),
        ({"usual_pulse": "800", "usual_recorded": "2026-10-01"}, "usual_pulse"),
        ({"usual_spo2": "high", "usual_recorded": "2026-10-01"}, "usual_spo2"),
        ({"usual_consciousness": "Q", "usual_recorded": "2026-10-01"}, "usual_consciousness"),
        ({"usual_recorded": "2026-10-01"}, "usual_respiration_rate"),
    ],
)
def test_a_usual_reading_that_would_mislead_is_caught_at_its_field(
    typed: dict[str, str], field: str
) -> None:
    assert [f for f, _ in _read(**typed)[1]] == [field]


_KEY = signature.new_key()
#: With a contact too: a RelatedPerson is read by the rules as every entry is.
_SIGNED = signed(_message(contacts=[Contact("Ruth Smith", "Daughter", "07700 900123")]), _KEY)


#: Every path in an entry, its fullUrl and resource too (a fullUrl of the wrong JSON type
#: leaves the entries readable, so the NEWS2 rules still look it up).
_PATHS = [p for p in paths_in(_SIGNED, 2) if p[0] == "entry"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATHS), JUNK), min_size=1, max_size=3))
@example(edits=[(("entry", 5, "fullUrl"), [])])  # a list is no key to look up
def test_junk_anywhere_in_a_message_with_usual_readings_is_judged_never_raised(
    edits: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    """The rules read the baseline section before anything is trusted: a section, a reference
    or an entry of any JSON type is a problem to report, never an exception (a 500)."""
    doc = edited(_SIGNED, edits)
    problems, _ = transfer_rules.check_shape(doc)
    assert all(isinstance(p.diagnostics, str) for p in problems)
