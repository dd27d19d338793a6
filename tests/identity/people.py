"""Synthetic Patients for identity tests, in the shape the adapters store (UK Core R4).

NHS numbers come from the never-issued 999 range and pass modulus 11 (``tests.factories``).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from engine.identity.features import NHS_SYSTEM, VERIFICATION_URL, Demographics, demographics
from engine.identity.rules import MatchRules, load_rules
from tests.factories import invalid_nhs_number, nhs_numbers

RULES: MatchRules = load_rules()
NHS_A, NHS_B, NHS_C, NHS_D = islice(nhs_numbers(999_200_000), 4)
MISTYPED = invalid_nhs_number()


def patient(
    *,
    pid: str = "p1",
    nhs: str | None = None,
    status: str = "01",
    family: str = "Archer",
    given: tuple[str, ...] = ("Philip",),
    previous: str | None = None,
    born: str = "1951-03-04",
    sex: str = "male",
    line: str = "12 Church Lane",
    postcode: str = "BO9 1RH",
    council_style: bool = False,
) -> dict[str, Any]:
    """A GP-style Patient (address lines), or council-style (one address text) when asked."""
    identifiers: list[dict[str, Any]] = []
    if nhs:
        code = {"code": status, "system": "https://fhir.hl7.org.uk/CodeSystem/x"}
        ext = {"url": VERIFICATION_URL, "valueCodeableConcept": {"coding": [code]}}
        identifiers.append({"system": NHS_SYSTEM, "value": nhs, "extension": [ext]})
    names: list[dict[str, Any]] = [{"use": "official", "family": family, "given": list(given)}]
    if previous:
        names.append({"use": "old", "family": previous, "given": list(given[:1])})
    if council_style:
        address = {"use": "home", "text": f"{line}, Ambridge, Borchester", "postalCode": postcode}
    else:
        address = {
            "use": "home",
            "line": [line, "Ambridge"],
            "city": "Borchester",
            "postalCode": postcode,
        }
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "name": names,
        "gender": sex,
        "birthDate": born,
        "address": [address],
    }


def person(**over: Any) -> Demographics:
    return demographics(patient(**over))
