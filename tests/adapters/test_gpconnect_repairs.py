"""GP Connect supplier quirks repaired at the edge so nothing clinical is lost (synthetic, 999)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from adapters.gpconnect.read import records_from_bundle
from tests.adapters.test_gpconnect import (
    OBSERVATION,
    bundle,
    fields_of,
    organization,
    outcome,
    patient,
    resource,
)

SCT = "http://snomed.info/sct"
QUANTITY_TEXT = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationQuantityText-1"


def _diary_entry(occurrence: Any) -> dict[str, Any]:
    return {
        "resourceType": "ProcedureRequest",
        "id": "d1",
        "status": "active",
        "intent": "plan",
        "code": {"coding": [{"system": SCT, "code": "394701000"}]},
        "subject": {"reference": "Patient/p1"},
        "occurrence": occurrence,
        "authoredOn": "2019-03-02",
    }


def test_a_diary_entry_keeps_its_due_date_written_without_its_type() -> None:
    """A recall written with a bare ``occurrence`` (as the GP Connect example is) lost its date."""
    doc = bundle(patient(), organization(), _diary_entry("2019-05-02"))
    assert resource(doc, "ProcedureRequest")["occurrenceDateTime"] == "2019-05-02"
    assert "ProcedureRequest.occurrence" in fields_of(outcome(doc, "ProcedureRequest"))
    period = {"start": "2019-05-01", "end": "2019-05-01"}
    doc = bundle(patient(), organization(), _diary_entry(period))
    assert resource(doc, "ProcedureRequest")["occurrencePeriod"] == period


def test_the_spec_example_diary_entries_keep_their_due_dates(corpus: Path) -> None:
    """Every diary entry in the official example lost the date it is due."""
    doc = orjson.loads(
        (corpus / "gpconnect-spec-examples/diaryentries_response1.json").read_bytes()
    )
    requests = [r for r in records_from_bundle(doc, "x.json") if r.ref.table == "ProcedureRequest"]
    assert requests
    for i in range(len(requests)):
        mapped = resource(doc, "ProcedureRequest", i)
        assert {"occurrenceDateTime", "occurrencePeriod"} & mapped.keys(), mapped


def _request(quantity: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "plan",
        "medicationCodeableConcept": {"coding": [{"system": SCT, "code": "39720311000001101"}]},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2019-03-28",
        "dispenseRequest": {"quantity": quantity},
    }


def _dispensed(quantity: dict[str, Any]) -> dict[str, Any]:
    return resource(bundle(patient(), organization(), _request(quantity)), "MedicationRequest")


def test_a_dispense_quantity_keeps_the_unit_written_as_quantity_text() -> None:
    """``28`` with its unit only in the quantity text was stored as 28 of nothing."""
    text = [{"url": QUANTITY_TEXT, "valueString": "capsule(s)"}]
    found = _dispensed({"extension": text, "value": 28})["dispenseRequest"]["quantity"]
    assert found == {"value": 28, "unit": "capsule(s)"}
    with_value = [{"url": QUANTITY_TEXT, "valueString": "28 capsule(s)"}]
    found = _dispensed({"extension": with_value, "value": 28})["dispenseRequest"]["quantity"]
    assert found == {"value": 28, "unit": "capsule(s)"}
    coded = {"value": 28, "unit": "tablet", "extension": text}
    assert _dispensed(coded)["dispenseRequest"]["quantity"] == {"value": 28, "unit": "tablet"}


def test_quantity_text_holding_another_count_is_no_unit() -> None:
    """56 with the text "28 tablets" (or "2 x 28") was stored as 56 of unit "28 tablets", read
    as 56 packs of 28: a dispense quantity misstated to every reader."""
    for text in ("28 tablets", "2 x 28", "56 x 28 tablets"):
        ext = [{"url": QUANTITY_TEXT, "valueString": text}]
        doc = bundle(patient(), organization(), _request({"extension": ext, "value": 56}))
        assert resource(doc, "MedicationRequest")["dispenseRequest"]["quantity"] == {"value": 56}
        warned = fields_of(outcome(doc, "MedicationRequest"))
        assert any(f and f.startswith("MedicationRequest.dispenseRequest.quantity") for f in warned)


def test_quantity_text_repeating_a_decimal_value_leaves_its_unit() -> None:
    """With the value read exactly as ``28.0`` its copy ``28`` in "28 tablet(s)" was not seen
    as the value (the texts differ), so the count was stored in the unit."""
    ext = [{"url": QUANTITY_TEXT, "valueString": "28 tablet(s)"}]
    found = _dispensed({"extension": ext, "value": Decimal("28.0")})["dispenseRequest"]
    assert found["quantity"] == {"value": Decimal("28.0"), "unit": "tablet(s)"}


def test_the_reason_a_vaccination_was_not_given_is_kept() -> None:
    """``explanation.notGivenReason`` (the spec example's spelling) was dropped as unknown."""
    immunization = {
        "resourceType": "Immunization",
        "id": "i1",
        "status": "completed",
        "notGiven": True,
        "vaccineCode": {"coding": [{"system": SCT, "code": "39114911000001105"}]},
        "patient": {"reference": "Patient/p1"},
        "date": "2019-03-28",
        "primarySource": True,
        "explanation": {"notGivenReason": [{"coding": [{"system": SCT, "code": "213257006"}]}]},
    }
    doc = bundle(patient(), organization(), immunization)
    res = resource(doc, "Immunization")
    assert res["status"] == "not-done"
    assert res["statusReason"] == {"coding": [{"system": SCT, "code": "213257006"}]}
    assert "Immunization.explanation.notGivenReason" in fields_of(outcome(doc, "Immunization"))


def test_times_with_an_offset_are_stored_in_utc() -> None:
    """Stored times mixed offsets, so the same instant had several spellings and sorted apart."""
    cases = {
        "2019-07-01T10:30:00+01:00": "2019-07-01T09:30:00+00:00",
        "2019-07-01T00:30+0100": "2019-06-30T23:30:00+00:00",
        "2019-07-01T10:30:00.250-05:00": "2019-07-01T15:30:00.250+00:00",
        "2019-07-01T10:30:00Z": "2019-07-01T10:30:00+00:00",
        "2019-07-01T10:30:00+00:00": "2019-07-01T10:30:00+00:00",
        "2019-07-01T10:30:00.1234567": "2019-07-01T09:30:00.1234567+00:00",
        "2019-07-01": "2019-07-01",
    }
    for given, stored in cases.items():
        obs = OBSERVATION | {"effectiveDateTime": given}
        res = resource(bundle(patient(), organization(), obs), "Observation")
        assert res["effectiveDateTime"] == stored, given


def test_a_time_before_year_1000_keeps_its_four_digit_year() -> None:
    """The UTC conversion wrote year 1 as ``1`` (``%Y``), no valid dateTime, so the
    ``0001-01-01T00:00:00Z`` "no date" sentinel some suppliers send quarantined its entry."""
    cases = {
        "0001-01-01T00:00:00+00:00": "0001-01-01T00:00:00+00:00",
        "0999-06-01T10:00:00+01:00": "0999-06-01T09:00:00+00:00",
    }
    for given, stored in cases.items():
        obs = OBSERVATION | {"effectiveDateTime": given}
        res = resource(bundle(patient(), organization(), obs), "Observation")
        assert res["effectiveDateTime"] == stored, given
