"""What a nurse types, read as the transfer to send or as problems at their fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from engine.transfer import news2
from engine.transfer.entry import (
    BAG,
    READINGS,
    news2_so_far,
    packed,
    read_form,
    reviewed_medicines,
)
from engine.transfer.form import Contact, Medicine, transfer_message
from tests.api.transfers import BASE, CARE_HOME, FORM, HOSPITAL

#: 09:30 UK time (GMT in December).
NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
TYPED = {
    "hospital": "R9Z", "reason": "Fall", "given": "Ann", "family": "Synthetic",
    "born": "1932-04-01", "gp_practice": "", "respiration_rate": "22", "spo2": "94",
    "systolic_bp": "105", "pulse": "98", "consciousness": "C", "temperature": "37.9",
    "on_oxygen": "", "spo2_scale": "1", "observed": "09:10", "usual_respiration_rate": "",
    "usual_spo2": "", "usual_systolic_bp": "", "usual_pulse": "", "usual_temperature": "",
    "usual_consciousness": "", "usual_recorded": "", "medicines": "", "allergies": "",
    "for_cpr": "", "advance": "", "legal": "", "about_communication": "",
    "about_matters": "", "about_support": "", "about_mobility": "", "about_eating": "",
    "about_continence": "", "about_cognition": "", "contacts": "", "infection": "",
    "belongings": "",
}  # fmt: skip


def problems(**changes: str) -> list[tuple[str | None, str]]:
    return read_form(TYPED | changes, "9990000018", "Nurse", {"R9Z"}, NOW)[1]


def test_a_good_form_has_no_problems_and_is_trimmed() -> None:
    form, found = read_form(TYPED | {"born": " 1932-04-01 ", "given": " Ann "}, "9990000018",
                            "Nurse", {"R9Z"}, NOW)  # fmt: skip
    assert found == [] and form.person.birth_date == "1932-04-01" and form.person.given == "Ann"


@pytest.mark.parametrize(
    "born", ["19320401", "1 April 1932", "1932-02-30", "1800-01-01", "0001-01-01", "2026-12-05"]
)
def test_a_birth_date_must_be_a_date_a_resident_can_have(born: str) -> None:
    assert [f for f, _ in problems(born=born)] == ["born"]


@pytest.mark.parametrize(
    "invisible", ["\u200b", " \u00a0 ", "\x00", "\u2060\t", "\u0301\u0301", "\u3164", "\u2800 "]
)
def test_a_field_with_nothing_visible_is_blank(invisible: str) -> None:
    assert [f for f, _ in problems(reason=invisible, given=invisible)] == ["given", "reason"]


def test_last_doses_are_read_as_a_nurse_writes_them() -> None:
    """08:00 is this morning; 22:00, still to come today, was last night."""
    typed = "Paracetamol 1g | 08:00\nMorphine 2.5mg | 22:00\nAdcal | 2026-12-04 18:30\nSenna"
    form, found = read_form(TYPED | {"medicines": typed}, "9990000018", "Nurse", {"R9Z"}, NOW)
    assert found == []
    assert [(m.name, m.last_dose and m.last_dose.isoformat()) for m in form.medicines] == [
        ("Paracetamol 1g", "2026-12-05T08:00:00+00:00"),
        ("Morphine 2.5mg", "2026-12-04T22:00:00+00:00"),
        ("Adcal", "2026-12-04T18:30:00+00:00"),
        ("Senna", None),
    ]
    assert reviewed_medicines(form.medicines) == (
        "Paracetamol 1g | 2026-12-05 08:00\nMorphine 2.5mg | 2026-12-04 22:00\n"
        "Adcal | 2026-12-04 18:30\nSenna"
    )


def test_the_narrative_says_a_last_dose_in_uk_time_whatever_zone_it_came_in() -> None:
    """The CLI's example passes UTC: the narrative the hospital reads said 13:00 for a 14:00
    BST dose."""
    dose = datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    form = replace(FORM, medicines=[Medicine("Paracetamol", dose)])
    doc = transfer_message(form, sender=CARE_HOME, destination=HOSPITAL,
                           now=datetime(2026, 7, 1, 15, tzinfo=UTC), base=BASE)  # fmt: skip
    assert "Paracetamol (last dose 2026-07-01 14:00)" in str(doc)


@pytest.mark.parametrize(
    ("typed", "now", "sent", "problem"),
    [
        # 29 March 2026: the clocks go from 01:00 GMT to 02:00 BST; 01:30 never happened
        ("01:30", "2026-03-29T09:00", None, "never happened"),
        ("2026-03-29 01:30", "2026-03-29T09:00", None, "never happened"),
        # 25 October 2026: 01:00-02:00 happens twice, first BST then GMT
        ("01:30", "2026-10-25T09:00", None, "happened twice"),
        ("01:30 BST", "2026-10-25T09:00", "2026-10-25T01:30:00+01:00", ""),
        ("2026-10-25 01:30 gmt", "2026-10-25T09:00", "2026-10-25T01:30:00+00:00", ""),
        ("08:00 BST", "2026-12-05T09:30", None, "showed GMT"),
        # compared as instants: at 01:20 GMT, 01:40 BST was 40 minutes ago, not tomorrow's
        ("01:40 BST", "2026-10-25T01:20", "2026-10-25T01:40:00+01:00", ""),
        ("2026-10-25 01:40 BST", "2026-10-25T01:20", "2026-10-25T01:40:00+01:00", ""),
        # at 01:50 BST, 01:10 GMT is 20 minutes away
        ("01:10 GMT", "2026-10-25T00:50", None, "still to come"),
        ("2026-10-25 01:10 GMT", "2026-10-25T00:50", None, "still to come"),
        # the night after: yesterday's 01:30 is the one meant, and it is asked about
        ("01:30", "2026-10-26T00:30", None, "happened twice"),
        ("01:30", "2026-03-29T23:30", None, "never happened"),
        ("2026-12-05 10:00", "2026-12-05T09:30", None, "still to come"),
        ("14:00", "2026-07-01T15:00", "2026-07-01T14:00:00+01:00", ""),
    ],
)
def test_a_last_dose_the_clocks_make_unclear_is_asked_never_guessed(
    typed: str, now: str, sent: str | None, problem: str
) -> None:
    """The hour the clocks skip never happened, the hour they repeat happened twice (BST or
    GMT says which), and a dose still to come was not given."""
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    form, found = read_form(TYPED | {"medicines": f"Insulin | {typed}"}, "9990000018",
                            "Nurse", {"R9Z"}, at)  # fmt: skip
    if sent is None:
        ((field, text),) = found
        assert field == "medicines" and problem in text, text
    else:
        assert found == [] and form.medicines[0].last_dose is not None
        assert form.medicines[0].last_dose.isoformat() == sent
        again = read_form(TYPED | {"medicines": reviewed_medicines(form.medicines)},
                          "9990000018", "Nurse", {"R9Z"}, at)[0]  # fmt: skip
        (back,) = again.medicines
        assert back.last_dose is not None and back.last_dose.isoformat() == sent, "read back"


@pytest.mark.parametrize("line", ["Paracetamol | 8am", "| 08:00", "Paracetamol | 2026-02-30 08:00"])
def test_a_medicine_line_that_would_not_send_is_caught_at_review(line: str) -> None:
    (found,) = problems(medicines=line)
    assert found[0] == "medicines" and found[1].startswith("Line 1 of the medicines")


def test_about_me_says_each_part_given_under_its_heading_in_the_contracts_order() -> None:
    typed = {"about_cognition": "Forgets recent events", "about_communication": "Deaf in left ear",
             "about_mobility": " \u200b "}  # fmt: skip
    form, found = read_form(TYPED | typed, "9990000018", "Nurse", {"R9Z"}, NOW)
    assert found == []
    assert form.about_me == "Communication: Deaf in left ear\nCognition: Forgets recent events"
    assert read_form(TYPED, "9990000018", "Nurse", {"R9Z"}, NOW)[0].about_me == ""


def test_the_bag_holds_the_known_items_ticked_then_the_others_each_once() -> None:
    """A ticked value not on the list (a forged post) is not an item: what the form offers is
    what a tick can send; anything else is typed, and seen typed at review."""
    ticked = ["Walking aid", "Glasses", "<script>", "Glasses"]
    assert packed(ticked, "Handbag\n\nGlasses\n Rings ") == "Glasses\nWalking aid\nHandbag\nRings"
    assert packed([], "") == "" and set(BAG) >= {"Glasses", "Dentures"}


def test_contacts_are_read_one_a_line_as_name_relationship_and_telephone() -> None:
    """A number of nothing visible (a zero-width space) is no number, not a wrong one."""
    typed = "\n".join(
        [
            "Pat Archer | Daughter, next of kin | 07700 900123",
            "Grey Gables | care home",
            "Dr Who | | \u200b",
        ]
    )
    form, found = read_form(TYPED | {"contacts": typed}, "9990000018", "Nurse", {"R9Z"}, NOW)
    assert found == []
    assert list(form.contacts) == [
        Contact("Pat Archer", "Daughter, next of kin", "07700 900123"),
        Contact("Grey Gables", "care home"),
        Contact("Dr Who"),
    ]
    doc = transfer_message(form, sender=CARE_HOME, destination=HOSPITAL, now=NOW, base=BASE)
    (section,) = [s for s in doc["entry"][1]["resource"]["section"] if s["title"] == "Contacts"]
    assert (
        "Pat Archer (Daughter, next of kin) 07700 900123; Grey Gables (care home); Dr Who"
        in (section["text"]["div"])
    )
    assert len(section["entry"]) == 3


@pytest.mark.parametrize(
    "line", [" | Daughter | 07700 900123", "Pat | Daughter | 07700 900123 | spare", "Pat | | none"]
)
def test_a_contact_line_that_would_not_help_the_hospital_is_caught_at_review(line: str) -> None:
    """No name, a fourth part (a phone split by |, which would be lost), a number without a
    digit."""
    assert [f for f, _ in problems(contacts=f"Ann Other\n{line}")] == ["contacts"]


def test_news2_while_typing_is_the_total_the_review_shows() -> None:
    form, found = read_form(TYPED, "9990000018", "Nurse", {"R9Z"}, NOW)
    assert found == [] and news2_so_far(TYPED) == news2.said(form.vitals)
    assert news2_so_far(TYPED).startswith("NEWS2 8 (high risk) on SpO2 scale 1")


def test_news2_while_typing_says_what_it_still_needs_and_never_scores_a_slip() -> None:
    assert news2_so_far({}) == (
        "NEWS2 still needs the respiration rate, SpO2, systolic blood pressure, pulse, "
        "level of consciousness and temperature"
    )  # in the form's order
    assert news2_so_far(TYPED | {"temperature": " ", "consciousness": ""}) == (
        "NEWS2 still needs the level of consciousness and temperature"
    )
    assert news2_so_far(TYPED | {"pulse": "\u200b"}) == "NEWS2 still needs the pulse"
    # what the review would refuse is not scored (an SpO2 of 940 would score 0)
    slip = news2_so_far(TYPED | {"spo2": "940"})
    assert slip == "NEWS2 not scored yet: Enter the SpO2 between 40 and 100: check the reading"
    assert problems(spo2="940") == [("spo2", slip.removeprefix("NEWS2 not scored yet: "))]


def test_news2_while_typing_is_scored_on_the_scale_chosen() -> None:
    typed = TYPED | {"spo2": "90", "spo2_scale": "2", "on_oxygen": "yes"}
    form, found = read_form(typed, "9990000018", "Nurse", {"R9Z"}, NOW)
    assert found == [] and form.vitals.spo2_scale == 2
    assert news2_so_far(typed) == news2.said(form.vitals)
    assert "SpO2 scale 2" in news2_so_far(typed)


@pytest.mark.parametrize(
    ("field", "typed"),
    [("pulse", "9_8"), ("spo2", "\u0669\u0664"), ("temperature", "3_7.9"), ("temperature", "37."),
     ("respiration_rate", "+22"), ("systolic_bp", "1e2")],
)  # fmt: skip
def test_a_reading_is_digits_as_a_nurse_types_them_not_all_python_reads(
    field: str, typed: str
) -> None:
    """``int`` reads "9_8" as 98 and Arabic-Indic digits as theirs: a slip, or text pasted
    from elsewhere, is asked again rather than scored."""
    [(where, said)] = problems(**{field: typed})
    assert where == field and said.startswith(f"Enter the {READINGS[field]} as a")
