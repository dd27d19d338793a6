"""The resident's contacts: each a RelatedPerson about the subject, judged as every entry is."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from engine.transfer import rules as transfer_rules
from engine.transfer import signature
from engine.transfer.form import Contact, transfer_message
from engine.transfer.reading import sections
from tests.api.transfers import BASE, CARE_HOME, FORM, HOSPITAL, signed

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
CONTACTS = (
    Contact("Ruth Smith", "Daughter, next of kin", "07700 900123"),
    Contact("Grey Gables office", "care home", "01632 960100"),
)


def _message() -> dict[str, Any]:
    form = replace(FORM, contacts=CONTACTS)
    return transfer_message(form, sender=CARE_HOME, destination=HOSPITAL, now=NOW, base=BASE)


def _contact_entries(doc: dict[str, Any]) -> list[int]:
    return [i for i, e in enumerate(doc["entry"])
            if e["resource"]["resourceType"] == "RelatedPerson"]  # fmt: skip


def _expressions(doc: dict[str, Any]) -> set[str]:
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key()))
    return {p.expression for p in problems if p.expression}


def test_contacts_travel_as_related_persons_the_rules_accept() -> None:
    doc = _message()
    problems, parsed = transfer_rules.check_shape(signed(doc, signature.new_key()))
    assert problems == [] and parsed is not None
    (shown,) = [s for s in sections(doc) if s.code == "contact-for-further-information"]
    assert [(r["name"], r.get("relationship"), r.get("telecom")) for r in shown.entries] == [
        ([{"text": "Ruth Smith"}], [{"text": "Daughter, next of kin"}],
         [{"system": "phone", "value": "07700 900123"}]),
        ([{"text": "Grey Gables office"}], [{"text": "care home"}],
         [{"system": "phone", "value": "01632 960100"}]),
    ]  # fmt: skip
    assert shown.text == (
        "Ruth Smith (Daughter, next of kin) 07700 900123; "
        "Grey Gables office (care home) 01632 960100"
    )


def test_a_contact_of_someone_else_or_of_no_one_is_refused_at_it() -> None:
    """A contact is shown as the subject's: one naming another patient, or no one (which R4
    refuses too), would give the hospital a stranger's number to call about the resident."""
    doc = _message()
    first, second = _contact_entries(doc)
    doc["entry"][first]["resource"]["patient"] = {"reference": "Patient/someone-else"}
    del doc["entry"][second]["resource"]["patient"]
    assert _expressions(doc) == {
        f"Bundle.entry[{first}].resource.patient", f"Bundle.entry[{second}].resource.patient",
    }  # fmt: skip


def test_a_contact_invalid_as_r4_is_refused_at_its_element() -> None:
    doc = _message()
    first, _ = _contact_entries(doc)
    doc["entry"][first]["resource"]["telecom"] = "07700 900123"  # not a list of ContactPoints
    assert _expressions(doc) == {f"Bundle.entry[{first}].resource.telecom"}
