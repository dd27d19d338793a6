"""The review queue: a break-glass use is an item until an IG officer records an outcome; the
review is audited, closes the item once, and items open past 72 hours are overdue."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from audit.query import stream
from consent import Grant, Who
from engine.access import record_grant
from engine.api.deps import SESSION_COOKIE
from engine.ig import queue as review_queue
from engine.ig.queue import CLOSED_RULE, INVALID_RULE
from tests.api.conftest import NHS, Store, Token
from tests.api.test_access import REASON, everything, post
from tests.api.test_fhir import audit_actions
from tests.ig.conftest import IG_ROLE, officer
from tests.ig.test_console import csrf
from tests.web.test_pages import acknowledged


def _break_glass(web: TestClient, token: Token) -> str:
    made = post(
        web,
        token("ae-doctor"),
        "break-glass",
        {"patient": NHS, "reason_code": "5", "reason_text": REASON},
    )
    assert made.status_code == 201
    item: str = made.json()["review_items"][0]
    return item


def test_break_glass_item_is_reviewed_once_audited_and_closed(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    item = _break_glass(web, token)
    officer(web, ig_token)
    queue = web.get("/ig/reviews")
    assert f'data-id="{item}"' in queue.text and "Overdue" not in queue.text
    page = web.get(f"/ig/reviews/break-glass/{item}")
    assert html.escape(REASON) in page.text and 'id="record-outcome"' in page.text
    form = csrf(web, f"/ig/reviews/break-glass/{item}")
    missing = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "appropriate", "note": "  "},
    )
    assert missing.status_code == 400 and "note:" in missing.text
    done = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "appropriate", "note": "Seen in resus; justified"},
    )
    assert done.status_code == 303
    closed = web.get(f"/ig/reviews/break-glass/{item}")
    assert "appropriate by u-ig" in closed.text and "Seen in resus" in closed.text
    assert f'data-id="{item}"' not in web.get("/ig/reviews").text
    assert f'data-id="{item}"' in web.get("/ig/reviews?show=all").text
    assert ("ig-review", "permit") in audit_actions(store)
    with store.engine.connect() as conn:
        body = conn.execute(
            text("SELECT body FROM audit_entry WHERE action = 'ig-review' AND outcome = 'permit'")
        ).scalar_one()
    assert f"break-glass/{item}".encode() in body and b"ig-review.appropriate" in body
    again = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "inappropriate", "note": "changed"},
    )
    assert again.status_code == 400 and "already reviewed" in again.text
    trail = web.get("/ig", params={"action": "ig-review"})
    # newest first: the second outcome refused, the outcome, the blank note refused
    assert re.findall(r'data-action="([^"]+)"', trail.text) == ["ig-review"] * 3
    reviews = [e for e in stream(store.engine) if e["action"] == "ig-review"]
    assert [(e["outcome"], e["rules"][1]) for e in reviews] == [
        ("deny", INVALID_RULE),
        ("permit", "ig-review.appropriate"),
        ("deny", CLOSED_RULE),
    ]


def test_a_review_posted_before_the_notice_shows_the_notice_not_the_item(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """A refused review answers the item page (the NHS number, the reason, the user's trail):
    an officer who has not acknowledged the confidentiality notice this session gets the
    notice instead, leading back to the item, with nothing recorded as nothing was done."""
    item = _break_glass(web, token)
    web.cookies.set(SESSION_COOKIE, ig_token)
    form = csrf(web, "/ig")
    before = len(list(stream(store.engine)))
    page = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "appropriate", "note": " "},
    )
    assert page.status_code == 200 and 'name="next_page"' in page.text
    assert f'value="/ig/reviews/break-glass/{item}"' in page.text
    assert html.escape(REASON) not in page.text and NHS not in page.text
    assert list(stream(store.engine))[before:] == []
    acknowledged(web)
    assert f'data-id="{item}"' in web.get("/ig/reviews").text


def test_the_item_pages_entry_is_recorded_under_the_person_it_shows(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """The item's page shows the person's NHS number and the user's trail of them: another
    officer asking who looked at this person finds the look (docs/audit.md, completeness)."""
    item = _break_glass(web, token)
    officer(web, ig_token)
    page = web.get(f"/ig/reviews/break-glass/{item}")
    assert page.status_code == 200 and NHS in page.text
    [entry] = [e for e in stream(store.engine) if e.get("query") == f"reviews/break-glass/{item}"]
    assert entry["nhs_number"] == NHS and entry["patient_id"]
    found = web.get("/ig", params={"patient": NHS, "action": "ig-view"})
    assert f'data-seq="{entry["seq"]}"' in found.text


def test_the_item_pages_trail_pages_to_the_users_older_entries(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """A user who read the record 60 times showed 50 entries with nothing to say more were
    left out: the officer judged the access on part of it. The page says older entries
    follow and links to them; a forged cursor is refused, not a 500."""
    item = _break_glass(web, token)
    for _ in range(60):
        assert everything(web, token("ae-doctor"), "ETREAT").status_code == 200
    officer(web, ig_token)
    page = web.get(f"/ig/reviews/break-glass/{item}")
    first = re.findall(r"<tr><td>(\d+)</td>", page.text)
    assert len(first) == 50 and "older entries follow" in page.text
    [link] = re.findall(r'href="([^"]+)" id="older-entries"', page.text)
    older = web.get(html.unescape(link))
    rest = re.findall(r"<tr><td>(\d+)</td>", older.text)
    assert older.status_code == 200 and 'id="older-entries"' not in older.text
    seqs = [int(s) for s in first + rest]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs) >= 61
    forged = web.get(f"/ig/reviews/break-glass/{item}", params={"after": "not-a-cursor"})
    assert forged.status_code == 400 and "after:" in forged.text


def test_a_review_that_loses_a_race_is_refused_and_recorded_so(
    web: TestClient, store: Store, token: Token, ig_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two officers read the open item and both post: the second's update finds it closed.
    Its entry was appended before the update, so the trail said its outcome was permitted
    beside the one recorded; the outcome and its entry now commit together."""
    item_id = _break_glass(web, token)
    stale = review_queue.find(store.engine, "break-glass", item_id, datetime.now(UTC), 72)
    officer(web, ig_token)
    path = f"/ig/reviews/break-glass/{item_id}"
    form = csrf(web, path)
    first = web.post(path, data={"csrf_token": form, "outcome": "appropriate", "note": "fine"})
    assert first.status_code == 303
    monkeypatch.setattr("engine.web.ig.review_queue.find", lambda *a, **k: stale)
    second = web.post(path, data={"csrf_token": form, "outcome": "inappropriate", "note": "no"})
    assert second.status_code == 400 and "already reviewed" in second.text
    reviews = [(e["outcome"], e["rules"][1:]) for e in stream(store.engine)
               if e["action"] == "ig-review"]  # fmt: skip
    assert reviews == [
        ("permit", ["ig-review.appropriate"]),
        ("deny", [CLOSED_RULE, "ig-review.inappropriate"]),
    ]
    with store.engine.connect() as conn:
        kept = conn.execute(text("SELECT review FROM break_glass_grant")).scalar_one()
    assert kept == "appropriate"


@pytest.mark.parametrize("item", ["x%00y", "not-an-id", "00000000-0000-4000-8000-000000000000"])
def test_an_item_id_naming_nothing_is_404_to_an_officer_and_an_audited_403_to_anyone_else(
    web: TestClient, store: Store, token: Token, ig_token: str, item: str
) -> None:
    """An item's id is a UUID (``engine.access``); anything else names no item and is never
    sent to the store. PostgreSQL refused a NUL in it with a 500, and a non-officer's post
    reached that look-up before the role check, so their refusal went unrecorded."""
    path = f"/ig/reviews/break-glass/{item}"
    officer(web, ig_token)
    assert web.get(path).status_code == 404
    form = csrf(web, "/ig/reviews")
    posted = web.post(path, data={"csrf_token": form, "outcome": "appropriate", "note": "fine"})
    assert posted.status_code == 404
    web.cookies.set(SESSION_COOKIE, token("gp"))
    form = csrf(web, "/record")
    before = len(list(stream(store.engine)))
    refused = web.post(path, data={"csrf_token": form, "outcome": "appropriate", "note": "fine"})
    assert refused.status_code == 403
    after = [(e["action"], e["outcome"]) for e in list(stream(store.engine))[before:]]
    assert after == [("ig-review", "deny")]


@pytest.mark.parametrize(
    ("outcome", "note", "said"),
    [("appropriate", "  ", "note:"), ("fine", "Seen in resus", "outcome:")],
)
def test_a_review_refused_for_its_form_is_audited_before_the_item_is_shown(
    web: TestClient, store: Store, token: Token, ig_token: str, outcome: str, note: str, said: str
) -> None:
    """ig-console.md: every page appends its entry before anything is shown. A review posted
    with a blank note or an unknown outcome answers the item page (the person's NHS number,
    the reason, their trail): its deny entry, naming ``ig-review.invalid`` and never the
    posted outcome, is appended first, and the item stays open."""
    item = _break_glass(web, token)
    officer(web, ig_token)
    form = csrf(web, f"/ig/reviews/break-glass/{item}")
    before = len(list(stream(store.engine)))
    page = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": outcome, "note": note},
    )
    assert page.status_code == 400 and said in page.text
    assert html.escape(REASON) in page.text and NHS[:3] in page.text
    [entry] = list(stream(store.engine))[before:]
    assert (entry["action"], entry["outcome"]) == ("ig-review", "deny")
    assert INVALID_RULE in entry["rules"] and "ig-review.fine" not in entry["rules"]
    assert entry["query"] == f"break-glass/{item}" and entry["nhs_number"] == NHS
    assert f'data-id="{item}"' in web.get("/ig/reviews").text


def test_inappropriate_outcome_ends_the_grant(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    item = _break_glass(web, token)
    assert everything(web, token("ae-doctor"), "ETREAT").status_code == 200
    officer(web, ig_token)
    form = csrf(web, f"/ig/reviews/break-glass/{item}")
    web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "inappropriate", "note": "No A&E attendance"},
    )
    web.cookies.clear()
    assert everything(web, token("ae-doctor"), "ETREAT").status_code == 404


def test_items_open_past_72_hours_are_highlighted_overdue(
    web: TestClient, store: Store, ig_token: str
) -> None:
    who = Who(
        user_id="u-old",
        name="Old",
        profile="clinical",
        role_code="S8000:G8000:R8000",
        org="R9Z",
        org_kind="hospital",
        ig_training=None,
        purpose="ETREAT",
    )
    start = datetime.now(UTC) - timedelta(hours=73)
    with store.engine.begin() as conn:
        person = conn.execute(text("SELECT id FROM person")).scalar_one()
        old = record_grant(
            conn,
            who,
            Grant("u-old", who.org, person, "5", REASON, start, start + timedelta(hours=4)),
        )
        recent = record_grant(
            conn,
            who,
            Grant(
                "u-old",
                who.org,
                person,
                "5",
                REASON,
                start + timedelta(hours=2),
                start + timedelta(hours=6),
            ),
        )
    officer(web, ig_token)
    queue = web.get("/ig/reviews").text
    rows = re.findall(
        r'<tr class="item( overdue)?" data-kind="break-glass" data-id="([^"]+)"', queue
    )
    assert rows == [(" overdue", old), ("", recent)]
    alerts = web.get("/ig/alerts").text
    assert 'data-rule="break-glass-unreviewed"' in alerts and old in alerts and recent not in alerts


def test_a_self_claim_is_an_item_and_an_inappropriate_outcome_ends_it(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    doctor = token("ae-doctor")
    made = post(
        web, doctor, "relationship", {"patient": NHS, "reason": "Seen in clinic today, letter due"}
    )
    assert made.status_code == 201
    item = made.json()["review_items"][0]
    assert everything(web, doctor).status_code == 200
    officer(web, ig_token)
    assert f'data-id="{item}"' in web.get("/ig/reviews").text
    form = csrf(web, f"/ig/reviews/self-claim/{item}")
    done = web.post(
        f"/ig/reviews/self-claim/{item}",
        data={"csrf_token": form, "outcome": "inappropriate", "note": "No clinic that day"},
    )
    assert done.status_code == 303
    assert f'data-id="{item}"' not in web.get("/ig/reviews").text
    assert ("ig-review", "permit") in audit_actions(store)
    web.cookies.clear()
    assert everything(web, doctor).status_code == 404


def test_an_officer_cannot_review_their_own_break_glass_use(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """A CIS2 user may hold a clinical and an IG role (same user id): the one who broke the
    glass is refused the review of it (the page says why, the attempt is audited as a deny)
    and the item stays open for another officer."""
    item = _break_glass(web, token)
    officer(web, token("ae-doctor", role_code=IG_ROLE))  # u-ae-doctor
    page = web.get(f"/ig/reviews/break-glass/{item}")
    assert 'id="own-item"' in page.text and 'id="record-outcome"' not in page.text
    form = csrf(web, f"/ig/reviews/break-glass/{item}")
    done = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "appropriate", "note": "Fine, it was me"},
    )
    assert done.status_code == 400 and "another IG officer must review it" in done.text
    assert f'data-id="{item}"' in web.get("/ig/reviews").text
    assert ("ig-review", "deny") in audit_actions(store)
    with store.engine.connect() as conn:
        body = conn.execute(
            text("SELECT body FROM audit_entry WHERE action = 'ig-review'")
        ).scalar_one()
    assert f"break-glass/{item}".encode() in body and b"ig-review.own-item" in body
    officer(web, ig_token)
    form = csrf(web, f"/ig/reviews/break-glass/{item}")
    other = web.post(
        f"/ig/reviews/break-glass/{item}",
        data={"csrf_token": form, "outcome": "appropriate", "note": "Seen in resus; justified"},
    )
    assert other.status_code == 303


def test_the_items_trail_follows_the_person_through_a_merge(
    web: TestClient, store: Store, token: Token, ig_token: str
) -> None:
    """The reviewer sees what the user did with the person's record: the reads after a merge
    are under the survivor's id, not the id the break-glass was recorded under."""
    item = _break_glass(web, token)
    assert everything(web, token("ae-doctor"), "ETREAT").status_code == 200
    store.merge()
    everything(web, token("ae-doctor"), "ETREAT")  # granted or refused, it is in their trail
    reads = [
        e
        for e in stream(store.engine)
        if e["user_id"] == "u-ae-doctor" and e["action"] == "everything"
    ]
    assert len({e["patient_id"] for e in reads}) == 2, "one read under each id"
    officer(web, ig_token)
    page = web.get(f"/ig/reviews/break-glass/{item}")
    listed = re.findall(r"<tr><td>(\d+)</td>", page.text.split('id="item-trail"')[1])
    assert {str(e["seq"]) for e in reads} <= set(listed)
