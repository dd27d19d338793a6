"""Security labels: NOPAT is recognised however a sender spells v3 ActCode's system."""

from __future__ import annotations

import pytest

from adapters.labels import is_nopat


@pytest.mark.parametrize(
    "system",
    [
        "http://hl7.org/fhir/v3/ActCode", "https://hl7.org/fhir/v3/ActCode/",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        " HTTPS://TERMINOLOGY.HL7.ORG/CODESYSTEM/V3-ACTCODE ",
        "urn:oid:2.16.840.1.113883.5.4",
    ],
)  # fmt: skip
def test_nopat_under_any_spelling_of_act_code(system: str) -> None:
    assert is_nopat(system, "NOPAT")


@pytest.mark.parametrize(
    ("system", "code"),
    [("http://hl7.org/fhir/v3/ActCode", "nopat"), ("http://example.org/v3/ActCode", "NOPAT"),
     (None, "NOPAT"), ("http://hl7.org/fhir/v3/ActCode", None)],
)  # fmt: skip
def test_nothing_else_is_nopat(system: object, code: object) -> None:
    assert not is_nopat(system, code)
