"""The care home's transfer form: nothing is sent before a review, which shows NEWS2, and a
mistake sends the form back with everything that was entered."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from engine.api import create_app
from engine.api.deps import SESSION_COOKIE
from engine.transfer.tables import KEYS, MESSAGES
from tests.api.conftest import NHS, Store, api_settings, client, store, token
from tests.api.test_transfer import count, home, keys
from tests.api.transfers import CARE_HOME, HOSPITAL
from tests.ig.test_console import csrf
from tests.web.test_pages import acknowledged

__all__ = ["api_settings", "client", "home", "keys", "store", "token"]
PATH = f"/record/{NHS}/transfer"
FORM = {
    "hospital": HOSPITAL, "reason": "Fall this morning, hip pain & confusion", "given": "Ann",
    "family": "Synthetic", "born": "1932-04-01", "respiration_rate": "22", "spo2": "94",
    "systolic_bp": "105", "pulse": "98", "consciousness": "C", "temperature": "37.9",
    "for_cpr": "no", "belongings": "Glasses",
}  # fmt: skip


@pytest.fixture
def web(store: Store, home: str, keys: dict[str, Ed25519PrivateKey]) -> Iterator[TestClient]:
    """The care home's pages sign with the key scr keeps for it, so it has none of its own."""
    with store.engine.begin() as conn:
        conn.execute(delete(KEYS).where(KEYS.c.org == CARE_HOME))
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        c.cookies.set(SESSION_COOKIE, home)
        yield acknowledged(c)


def _post(web: TestClient, **changes: Any) -> Any:
    return web.post(PATH, data=FORM | {"csrf_token": csrf(web, PATH)} | changes)


def test_a_review_shows_news2_and_sends_nothing_until_send(web: TestClient, store: Store) -> None:
    review = _post(web, step="review")
    assert review.status_code == 200 and "NEWS2 8" in review.text
    assert html.escape(FORM["reason"]) in review.text and count(store, MESSAGES) == 0
    sent = _post(web, step="send")
    assert sent.status_code == 303 and sent.headers["location"].startswith("/inbox/")
    assert count(store, MESSAGES) == 1


def test_a_mistake_keeps_what_was_entered(web: TestClient, store: Store) -> None:
    wrong = _post(web, step="review", spo2="ninety")
    assert wrong.status_code == 422 and "SpO2: enter a whole number" in wrong.text
    assert html.escape(FORM["reason"]) in wrong.text and 'value="ninety"' in wrong.text
    assert count(store, MESSAGES) == 0
    back = _post(web, step="edit")
    assert back.status_code == 200 and 'value="Ann"' in back.text and "NEWS2 8" not in back.text


def test_spo2_scale_2_is_chosen_on_the_form_and_travels_in_the_message(
    web: TestClient, store: Store
) -> None:
    review = _post(web, step="review", spo2_scale="2")
    assert review.status_code == 200 and "NEWS2 7" in review.text
    assert "hypercapnic respiratory failure" in review.text
    assert 'name="spo2_scale" value="2"' in review.text
    sent = _post(web, step="send", spo2_scale="2")
    assert sent.status_code == 303
    with store.engine.connect() as conn:
        doc = orjson.loads(conn.execute(select(MESSAGES.c.raw)).scalar_one())
    news2 = next(
        e["resource"] for e in doc["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "1104051000000101"
    )  # fmt: skip
    assert news2["valueQuantity"]["value"] == 7
    assert news2["method"]["coding"][0]["code"] == "2"
    assert news2["method"]["coding"][0]["system"].endswith("CodeSystem/scr-news2-spo2-scale")
    printable = web.get(sent.headers["location"])
    assert "NEWS2 7 (high risk) on SpO2 scale 2" in html.unescape(printable.text)


def test_scale_1_is_the_default(web: TestClient, store: Store) -> None:
    assert _post(web, step="send").status_code == 303
    with store.engine.connect() as conn:
        raw = conn.execute(select(MESSAGES.c.raw)).scalar_one()
    assert b'"method":{"coding":[{"system"' in raw and b"SpO2 scale 1" in raw


def test_the_api_path_answers_json_to_tokens_and_the_pages_live_at_the_inbox(
    web: TestClient,
) -> None:
    api = web.get("/transfers", headers={"Accept": "text/html"})
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/fhir+json")
    page = web.get("/inbox", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_the_form_is_prefilled_with_the_name_not_the_title(web: TestClient) -> None:
    """The resident is Mrs Renée Smith: the title is no given name, nor part of the family
    name, in what goes to the hospital."""
    form = web.get(PATH).text
    assert 'name="given" value="Renée"' in form
    assert 'name="family" value="Smith"' in form
