"""The red-bag flow end to end in a real browser: the care-home nurse starts a transfer from a
resident's record (prefilled from the shared record) and sends it; the A&E doctor finds it in
the hospital inbox, acknowledges it and sends a discharge; the nurse sees the discharge and
acknowledges the return; the resident's GP then sees the transfer's history in the combined
record. Screenshots go to ``test-artifacts/browser/``; skipped where chromium is absent.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page

from adapters.synth import catalogue as cat
from tests.browser.test_personas import CHROMIUM, Region, browser, open_as, region, shot

__all__ = ["browser", "region"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def _status(page: Page) -> str:
    return page.locator("#status").inner_text()


def test_a_transfer_goes_to_hospital_and_the_discharge_comes_back(
    browser: Browser, region: Region
) -> None:
    nurse = open_as(browser, region, "care-home-nurse")
    nurse.click("#start-transfer")
    nurse.wait_for_load_state()
    shot(nurse, "red-bag-form")
    assert nurse.input_value("#gp_practice").endswith(")"), "prefilled: name (ODS code)"
    nurse.select_option("#hospital", cat.HOSPITAL.ods)
    nurse.fill("#reason", "Fall this morning, hip pain, more confused than usual")
    for field, value in (("#respiration_rate", "22"), ("#spo2", "94"), ("#systolic_bp", "105"),
                         ("#pulse", "98"), ("#temperature", "37.9")):  # fmt: skip
        nurse.fill(field, value)
    live = "document.getElementById('news2-now').textContent"  # scored as it is typed
    nurse.wait_for_function(f"{live}.endsWith('still needs the level of consciousness')")
    nurse.select_option("#consciousness", "C")
    nurse.wait_for_function(f"{live}.startsWith('NEWS2 8 (high risk)')")
    shot(nurse, "red-bag-form-news2")
    nurse.fill("#observed", "2026-12-01 07:45")
    for field, value in (("#usual_spo2", "96"), ("#usual_pulse", "80"),
                         ("#usual_recorded", "2026-11-02")):  # fmt: skip
        nurse.fill(field, value)
    nurse.select_option("#usual_consciousness", "A")
    nurse.select_option("#for_cpr", "no")
    nurse.check("text=Glasses")
    nurse.check("text=Hearing aids")
    nurse.fill("#belongings", "Handbag")
    nurse.fill("#medicines", "Paracetamol 500mg | 2026-12-01 08:00\nSenna 7.5mg")
    known = nurse.input_value("#contacts")  # the record's, one a line: name | relationship | phone
    assert all(len(line.split(" | ")) <= 3 for line in known.splitlines()), known
    nurse.fill(
        "#contacts", "\n".join([*known.splitlines(), "Home office | care home | 01632 960100"])
    )
    nurse.click("text=Review transfer")
    nurse.wait_for_load_state()
    assert "NEWS2 8" in nurse.locator("#news2").inner_text()
    # a list reviewed an item a line, as it will be read: run together, where one ends is lost
    bag = nurse.locator("#review dt:has-text('What is in the bag') + dd").inner_text()
    assert bag.splitlines() == ["Glasses", "Hearing aids", "Handbag"]
    shot(nurse, "red-bag-review")
    nurse.click("text=Send transfer")
    nurse.wait_for_load_state()
    assert "/inbox/" in nurse.url, nurse.locator("main").inner_text()
    assert _status(nurse) == "received"
    assert "NEWS2 8" in nurse.content()
    assert "Paracetamol 500mg (last dose 2026-12-01 08:00); Senna 7.5mg" in nurse.content()
    assert "Taken 2026-12-01 07:45" in nurse.content()
    assert ("Usual when well, recorded 2026-11-02: SpO2 96%; pulse 80/min; consciousness "
            "Alert") in nurse.content()  # fmt: skip
    shot(nurse, "red-bag-sent")
    transfer_url = nurse.url

    doctor = open_as(browser, region, "ae-doctor")
    doctor.goto(f"{region.url}/inbox")
    shot(doctor, "red-bag-hospital-inbox")
    row = doctor.locator(f"tr:has-text('{region.resident}')")
    row.locator(f"a[href='{urlparse(transfer_url).path}']").click()
    doctor.wait_for_url("**/inbox/*")
    doctor.click("text=Acknowledge")
    doctor.wait_for_load_state()
    assert _status(doctor) == "acknowledged"
    assert "Home office · care home · 01632 960100" in doctor.locator("main").inner_text()
    doctor.fill("#diagnoses", "Fractured neck of femur, repaired")
    doctor.fill("#started", "Alendronic acid 70mg weekly")
    doctor.fill("#follow_up", "Fracture clinic in 6 weeks")
    # the bag's list, to say what goes back: the handbag stays on the ward for the family
    assert doctor.input_value("#returned") == "Glasses\nHearing aids\nHandbag"
    doctor.fill("#returned", "Glasses\nHearing aids")
    doctor.click("text=Send discharge")
    doctor.wait_for_load_state()
    assert _status(doctor) == "discharged"
    shot(doctor, "red-bag-discharged")

    nurse.goto(transfer_url)
    assert _status(nurse) == "discharged"
    assert "Fracture clinic in 6 weeks" in nurse.content()
    assert "Glasses; Hearing aids" in nurse.content()
    nurse.click("text=Acknowledge")
    nurse.wait_for_load_state()
    assert _status(nurse) == "returned"
    shot(nurse, "red-bag-returned")

    gp = open_as(browser, region, "gp")
    transfers = gp.locator("#transfers")
    assert ": returned" in transfers.inner_text()
    steps = transfers.locator("tbody td:first-child").all_inner_texts()
    assert steps == ["sent", "received", "acknowledged", "discharged", "returned"]
    shot(gp, "red-bag-in-the-gp-record")
