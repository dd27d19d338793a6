"""The alerts page over the store: what it reads of the trail for the rules to judge."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from adapters.synth.personas import PERSONAS
from audit.entry import AuditEntry
from audit.writer import append
from tests.api.conftest import Store
from tests.audit.trail import stamped
from tests.ig.conftest import officer

LONDON = ZoneInfo("Europe/London")


def _at_2am(days_ago: int) -> datetime:
    day = (datetime.now(LONDON) - timedelta(days=days_ago)).date()
    return datetime(day.year, day.month, day.day, 2, tzinfo=LONDON).astimezone(UTC)


def _read_at(
    store: Store,
    when: datetime,
    person: str,
    monkeypatch: pytest.MonkeyPatch,
    user_id: str = "u-night",
) -> None:
    """A read of ``person`` (by a night nurse, unless ``user_id`` says), stamped ``when``."""

    entry = AuditEntry(
        request_id="r", action="everything", outcome="permit", user_id=user_id,
        user_name="Night nurse", role_code="S8000:G8000:R8000", profile="clinical", org="R9Z",
        purpose="TREAT", patient_id=person,
    )  # fmt: skip
    with stamped(monkeypatch, when):
        append(store.engine, entry)


def test_usual_hours_are_learnt_from_the_whole_history_before_the_window(
    web: TestClient, store: Store, ig_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ig-console.md: the page judges the last 7 days and learns usual hours from the 28
    before them. It read 28 days back in all, so a night worker whose nights fell 22 to 35
    days back was judged on 07:00-19:00 and alerted for their usual shift."""
    for n, ago in enumerate([29, 30, 31, 32, 33, 34] * 4):
        _read_at(store, _at_2am(ago) + timedelta(seconds=n), f"p{n}", monkeypatch)
    _read_at(store, _at_2am(2), "p-now", monkeypatch)
    officer(web, ig_token)
    page = web.get("/ig/alerts")
    assert page.status_code == 200
    assert re.findall(r'data-rule="out-of-hours"', page.text) == []


def test_only_people_read_by_staff_in_the_directory_are_named(
    web: TestClient, store: Store, ig_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``own-record`` can fire only for a user whose own details the staff directory holds:
    the page names (reads the surnames and postcodes of) the people those users read, not
    everyone accessed in the period."""
    staff = PERSONAS[0].user_id
    _read_at(store, datetime.now(UTC), "p-staff", monkeypatch, user_id=staff)
    _read_at(store, datetime.now(UTC), "p-other", monkeypatch)
    named: list[set[str]] = []

    def names_of(engine: Any, people: Iterable[str]) -> dict[str, Any]:
        named.append(set(people))
        return {}

    monkeypatch.setattr("engine.web.ig.facts.names_of", names_of)
    officer(web, ig_token)
    assert web.get("/ig/alerts").status_code == 200
    assert named == [{"p-staff"}]
