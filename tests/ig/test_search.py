"""The IG search: every filter, keyset paging that neither skips nor repeats, and bad input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from audit.search import Filters, SearchError, search
from audit.writer import append_batch
from tests.audit.trail import entry, fill


def _seqs(engine: Engine, f: Filters, limit: int = 50) -> list[int]:
    return [e["seq"] for e in search(engine, f, limit=limit).entries]


def test_each_filter_narrows_to_exactly_its_entries(engine: Engine) -> None:
    fill(engine, 40)
    append_batch(
        engine,
        [
            entry(
                41,
                role_code="S8001:G8003:R8009",
                profile="admin",
                org="Y90022",
                purpose="COC",
                action="read",
            )
        ],
    )
    everything = search(engine, Filters(), limit=500).entries
    assert [e["seq"] for e in everything] == list(range(41, 0, -1))
    cases = {
        Filters(patient_id="patient-1"): lambda e: e["patient_id"] == "patient-1",
        Filters(nhs_number=everything[0]["nhs_number"]): lambda e: (
            e["nhs_number"] == everything[0]["nhs_number"]
        ),
        Filters(user_id="555555000002"): lambda e: e["user_id"] == "555555000002",
        Filters(org="Y90022"): lambda e: e["org"] == "Y90022",
        Filters(role="R8009"): lambda e: e["role_code"].endswith("R8009"),
        Filters(profile="admin"): lambda e: e["profile"] == "admin",
        Filters(purpose="COC"): lambda e: e["purpose"] == "COC",
        Filters(outcome="deny"): lambda e: e["outcome"] == "deny",
        Filters(action="search", outcome="permit"): lambda e: (
            e["action"] == "search" and e["outcome"] == "permit"
        ),
    }
    for f, keep in cases.items():
        expected = [e["seq"] for e in everything if keep(e)]
        assert expected and _seqs(engine, f, 500) == expected, f


def test_time_range_is_half_open(engine: Engine) -> None:
    fill(engine, 5, batch=1)
    times = [e["time"] for e in search(engine, Filters()).entries]
    middle = datetime.fromisoformat(times[2])
    assert _seqs(engine, Filters(since=middle)) == [5, 4, 3]
    assert _seqs(engine, Filters(until=middle)) == [2, 1]
    assert _seqs(engine, Filters(since=middle + timedelta(days=1))) == []
    assert _seqs(engine, Filters(until=datetime(2000, 1, 1, tzinfo=UTC))) == []


@pytest.mark.parametrize("f", [Filters(), Filters(role="R8000"), Filters(patient_id="patient-2")])
def test_keyset_pages_cover_every_match_once_even_with_appends_between(
    engine: Engine, f: Filters
) -> None:
    fill(engine, 30)
    expected = _seqs(engine, f, 500)
    seen: list[int] = []
    after = None
    while True:
        page = search(engine, f, after=after, limit=4)
        seen += [e["seq"] for e in page.entries]
        append_batch(engine, [entry(100 + len(seen))])
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == expected


def test_role_filter_reads_past_a_scan_chunk_of_non_matches(engine: Engine) -> None:
    append_batch(engine, [entry(1, role_code="S8001:G8003:R8009")])
    fill(engine, 600, batch=200)
    assert _seqs(engine, Filters(role="R8009")) == [1]


def test_page_counts_what_was_disclosed_and_withheld(engine: Engine) -> None:
    fill(engine, 4)
    page = search(engine, Filters(), limit=4)
    assert page.disclosed == {"Condition": 8, "Observation": 1 + 2 + 3 + 4}
    assert page.withheld == {"sensitive": 2}


def test_bad_cursor_and_limit_are_named(engine: Engine) -> None:
    with pytest.raises(SearchError, match="after"):
        search(engine, Filters(), after="not-a-cursor")
    with pytest.raises(SearchError, match="limit"):
        search(engine, Filters(), limit=0)
    for forged in (b"2026-12-01T00:00:00.000000Z|" + b"9" * 30, b"2026-12-01T00:00:00Z|0",
                   b"2026-12-01T00:00:00Z|-5", b"2026-12-01T00:00:00|5"):  # fmt: skip
        with pytest.raises(SearchError, match="after"):
            search(engine, Filters(), after=base64.urlsafe_b64encode(forged).decode())


#: Zoned times that cannot be put in UTC: before year 1 or after year 9999 once converted.
BEYOND_UTC = [b"0001-01-01T00:00:00+05:00|5", b"9999-12-31T23:59:59-05:00|5"]


@pytest.mark.parametrize("forged", BEYOND_UTC)
def test_cursor_time_outside_utc_range_is_a_bad_cursor(engine: Engine, forged: bytes) -> None:
    fill(engine, 3)
    with pytest.raises(SearchError, match="after"):
        search(engine, Filters(), after=base64.urlsafe_b64encode(forged).decode())
