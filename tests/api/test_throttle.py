"""Refused requests per client: counted in windows, the count over the limit kept for one
entry per client and window."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.api import throttle
from engine.api.throttle import Refusals


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(throttle, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_past_the_limit_refusals_are_counted_not_recorded_until_the_window_closes(
    clock: list[float],
) -> None:
    refusals = Refusals(limit=3, window=60)
    assert [refusals.refused("10.0.0.1")[0] for _ in range(5)] == [False] * 3 + [True] * 2
    assert refusals.refused("10.0.0.2") == (False, [])  # another client has its own count
    clock[0] += 59
    assert refusals.refused("10.0.0.1") == (True, [])
    clock[0] += 1
    over, closed = refusals.refused("10.0.0.2")
    assert not over
    assert [(c.client, c.count) for c in closed] == [("10.0.0.1", 3)]
    assert refusals.refused("10.0.0.1") == (False, [])  # a new window


def test_only_windows_with_throttled_requests_are_due_and_closing_hands_over_the_rest(
    clock: list[float],
) -> None:
    refusals = Refusals(limit=1, window=60)
    refusals.refused("a")
    for client in ("b", "b", "b", "c", "c"):
        refusals.refused(client)
    clock[0] += 60
    over, closed = refusals.refused("d")
    assert not over and [(c.client, c.count) for c in closed] == [("b", 2), ("c", 1)]
    refusals.refused("e")
    refusals.refused("e")
    assert [(c.client, c.count) for c in refusals.closing()] == [("e", 1)]  # a worker stopping
    assert refusals.closing() == []
