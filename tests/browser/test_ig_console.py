"""The IG officer in a real browser: after an A&E doctor breaks the glass, they search the
trail, open the break-glass item, record an outcome, see it closed and the review in the
trail, and produce a patient access report listing exactly the accesses made here.

Screenshots go to ``test-artifacts/browser/``; skipped where chromium is absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from adapters.synth import catalogue as cat
from tests.browser.test_personas import CHROMIUM, Region, browser, open_as, region, shot

__all__ = ["browser", "region"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
REASON = "Collapsed in the car park, unconscious, no history available"


@pytest.fixture(scope="module")
def ig(browser: Browser, region: Region) -> Iterator[Page]:
    page = browser.new_context().new_page()
    page.goto(region.url + "/")
    page.click("#persona-ig-officer")
    page.wait_for_url("**/ig")
    page.click("#acknowledge")  # the console, as the record pages, waits for the notice
    page.wait_for_load_state()
    assert page.locator("#patient").count() == 1
    yield page
    page.context.close()


def test_ig_officer_reviews_a_break_glass_and_reports_to_the_patient(
    browser: Browser, region: Region, ig: Page
) -> None:
    ae = open_as(browser, region, "ae-doctor")
    assert ae.locator("h1").inner_text() == "You cannot see this record"
    ae.fill("#reason_text", REASON)
    ae.click("#break-glass")
    ae.wait_for_load_state()
    assert "emergency access" in ae.content()
    ae.context.close()

    ig.click("text=IG console")
    ig.fill("#patient", region.resident)
    ig.click("#search")
    ig.wait_for_load_state()
    actions = ig.locator("#results tr.entry").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert "break-glass" in actions and "everything" in actions
    shot(ig, "ig-search")

    ig.click("text=Review queue")
    item = ig.locator('#queue tr.item[data-kind="break-glass"]')
    assert item.count() == 1
    item_id = item.get_attribute("data-id")
    item.locator("a").click()
    ig.wait_for_load_state()
    assert REASON in ig.content()
    shot(ig, "ig-review-item")
    ig.check("#outcome-appropriate")
    ig.fill("#note", "Attended A&E by ambulance; access justified")
    ig.click("#record-outcome")
    ig.wait_for_load_state()
    assert ig.locator("#item-state").inner_text().startswith("appropriate by demo-ig")
    shot(ig, "ig-review-closed")
    ig.click("text=Review queue")
    assert ig.locator(f'#queue tr[data-id="{item_id}"]').count() == 0

    ig.goto(f"{region.url}/ig?action=ig-review")
    reviewed = ig.locator("#results tr.entry")
    assert reviewed.count() == 1 and reviewed.get_attribute("data-action") == "ig-review"
    assert region.resident in reviewed.inner_text()
    shot(ig, "ig-review-in-trail")

    ig.goto(f"{region.url}/ig?patient={region.resident}")
    accesses = ig.locator("#results tr.entry").evaluate_all(
        "rows => rows.filter(r => !r.dataset.action.startsWith('ig-'))"
        ".map(r => Number(r.dataset.seq)).reverse()"
    )

    ig.click("text=Patient access report")
    ig.fill("#patient", region.resident)
    ig.click("#make-report")
    ig.wait_for_load_state()
    listed = ig.locator("#report-lines tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.seq))"
    )
    assert listed == accesses and len(listed) >= 3
    report = ig.locator("#report").inner_text()
    assert "used emergency access" in report and "tried to see your record" in report
    organisations = ig.locator("#report-lines tbody tr td:nth-child(3)").all_inner_texts()
    assert set(organisations) == {cat.HOSPITAL.name}
    shot(ig, "ig-patient-report")


def test_ig_officer_sees_charts_alerts_and_verifies_the_chain(region: Region, ig: Page) -> None:
    ig.goto(f"{region.url}/ig/charts")
    assert ig.locator("svg.chart").count() == 4
    shot(ig, "ig-charts")
    ig.goto(f"{region.url}/ig/alerts")
    assert ig.locator("h1").inner_text() == "Alerts"
    shot(ig, "ig-alerts")
    ig.goto(f"{region.url}/ig/chain")
    ig.click("#verify")
    ig.wait_for_load_state()
    assert ig.locator("#verify-result").inner_text().startswith("Verified: all")
    shot(ig, "ig-chain")
