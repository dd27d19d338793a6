"""WCAG 2.2 AA where the HTML and CSS can show it: focus seen, contrast kept, landmarks, titles
that say which page, errors tied to their fields, and a printout that says whose it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.tables import AuditRow
from tests.api.conftest import NHS, Store, Token
from tests.web.test_pages import acknowledged, csrf, signed_in

TEMPLATES = Path(__file__).resolve().parents[2] / "engine" / "web" / "templates"
CSS = (TEMPLATES / "base.html").read_text()


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour(name: str) -> str:
    found = re.search(rf"--{name}:\s*(#[0-9a-f]{{6}})", CSS)
    assert found, name
    return found.group(1)


def test_focus_is_seen_on_a_white_page_not_only_on_the_blue_header() -> None:
    """Yellow alone is 1.35:1 on white; the black edge under it is what 1.4.11 sees."""
    assert contrast("#ffdd00", "#ffffff") < 3
    rule = re.search(r"a:focus-visible[^{]*\{([^}]*)\}", CSS)
    assert rule and "box-shadow" in rule.group(1) and "var(--ink)" in rule.group(1)
    assert contrast(colour("ink"), "#ffffff") >= 3 and contrast(colour("ink"), "#ffdd00") >= 4.5


def test_the_overdue_label_has_contrast_in_its_tinted_row() -> None:
    row = re.search(r"tr\.overdue \{ background: (#[0-9a-f]{6})", CSS)
    label = re.search(r"\.overdue-label \{ color: var\(--([a-z-]+)\)", CSS)
    assert row and label
    assert contrast(colour(label.group(1)), row.group(1)) >= 4.5


def test_every_table_header_says_what_it_heads() -> None:
    for page in TEMPLATES.glob("*.html"):
        text = page.read_text()
        assert "<th>" not in text and "<th></th>" not in text, page.name


def test_pages_name_whose_record_they_are_and_the_service_links_are_a_nav(
    web: TestClient, token: Token
) -> None:
    acknowledged(signed_in(web, token("gp")))
    record = web.get(f"/record/{NHS}").text
    assert f"<title>Record – NHS number {NHS} · Shared care record</title>" in record
    assert re.search(r'<p class="print-only">Confidential: printed [^<]*by Synthetic gp', record)
    hospital = signed_in(web, token("ae-doctor")).get("/inbox").text
    header = re.search(r'<header class="top">(.*?)</header>', hospital, re.S)
    assert header and re.search(r'<nav aria-label="Service"[^>]*>\s*<a href="/inbox">', header[1])


def test_a_mistyped_nhs_number_is_kept_and_marked(web: TestClient, token: Token) -> None:
    page = signed_in(web, token("gp")).get("/record", params={"nhs_number": "999 400 0005"})
    field = re.search(r'<input[^>]*id="nhs_number"[^>]*>', page.text)
    assert page.status_code == 400 and field
    assert 'value="999 400 0005"' in field[0] and 'aria-invalid="true"' in field[0]
    assert "<title>Error: Find a person" in page.text


def test_a_refused_view_is_one_refusal_in_the_trail(
    web: TestClient, store: Store, token: Token
) -> None:
    """It was two (the read and the explanation shown with it): three refused views set off
    the 'repeated refusals' alert, and the person's report listed each attempt twice."""
    acknowledged(signed_in(web, token("ae-doctor")))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 404 and "Emergency access (break glass)" in page.text
    assert re.search(r"<ul>\s*<li>[^<]+</li>", page.text), "the reasons are still shown"
    with store.engine.connect() as conn:
        refusals = (
            conn.execute(
                select(AuditRow.action).where(
                    AuditRow.outcome == "deny", AuditRow.user_id == "u-ae-doctor"
                )
            )
            .scalars()
            .all()
        )
    assert refusals == ["everything"]


@pytest.mark.parametrize(
    ("action", "form", "field", "area"),
    [
        ("break-glass", {"reason_code": "2", "reason_text": "resus now"}, "reason_text",
         "reason_text"),
        ("break-glass", {"reason_code": "5" * 17, "reason_text": "In resus now"}, "reason_code",
         "reason_text"),
        ("relationship", {"reason": "his son"}, "reason", "reason"),
    ],
)  # fmt: skip
def test_a_refused_reason_is_kept_and_marked_on_its_field(
    web: TestClient, token: Token, action: str, form: dict[str, str], field: str, area: str
) -> None:
    """A reason too short came back as a bare alert above both forms, the textarea emptied
    (retyped in an emergency), neither marked nor described by it, the title not saying so."""
    acknowledged(signed_in(web, token("ae-doctor")))
    posted = form | {"csrf_token": csrf(web, "/record")}
    page = web.post(f"/record/{NHS}/{action}", data=posted).text
    assert "<title>Error: No access" in page
    marked = re.search(rf'<(textarea|select) id="{field}"[^>]*>', page)
    assert marked and 'aria-invalid="true"' in marked[0]
    assert f'aria-describedby="{field}-error"' in marked[0]
    assert f'<p class="error" role="alert" id="{field}-error">' in page
    kept = re.search(rf'<textarea id="{area}"[^>]*>([^<]*)</textarea>', page)
    assert kept and kept[1] == form[area], "what was typed is lost"
    if action == "break-glass" and field != "reason_code":
        assert f'<option value="{form["reason_code"]}" selected>' in page
