"""Refused requests per client: counted in windows, the count over the limit kept for one
entry per client and window, written soon after the window closes and never dropped."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import AuditUnavailable
from audit.query import stream
from engine.api import create_app, deps, throttle
from engine.api.throttle import Refusals
from tests.api.conftest import Store, auth

#: The fake wall clock's reading when the fake monotonic clock reads 0.
WALL = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's clocks, both moved by the test (``clock[0] += seconds``)."""
    now = [1000.0]
    fake = SimpleNamespace(monotonic=lambda: now[0], time=lambda: WALL + now[0])
    monkeypatch.setattr(throttle, "time", fake)
    return now


def _counts(refusals: Refusals) -> list[tuple[str | None, int]]:
    return [(c.client, c.count) for c in refusals.due()]


def test_past_the_limit_refusals_are_counted_not_recorded_until_the_window_closes(
    clock: list[float],
) -> None:
    refusals = Refusals(limit=3, window=60)
    assert [refusals.refused("10.0.0.1") for _ in range(5)] == [False] * 3 + [True] * 2
    assert refusals.refused("10.0.0.2") is False  # another client has its own count
    clock[0] += 59
    assert refusals.refused("10.0.0.1") is True
    assert _counts(refusals) == []
    clock[0] += 1
    assert _counts(refusals) == [("10.0.0.1", 3)]  # due without any refusal meanwhile
    assert refusals.refused("10.0.0.1") is False  # a new window


def test_only_windows_with_throttled_requests_are_due_and_closing_hands_over_the_rest(
    clock: list[float],
) -> None:
    refusals = Refusals(limit=1, window=60)
    refusals.refused("a")
    for client in ("b", "b", "b", "c", "c"):
        refusals.refused(client)
    clock[0] += 60
    assert _counts(refusals) == [("b", 2), ("c", 1)]
    refusals.refused("e")
    refusals.refused("e")
    clock[0] += 10
    (cut,) = refusals.closing()  # a worker stopping
    assert (cut.client, cut.count) == ("e", 1)
    assert (cut.since.timestamp(), cut.until.timestamp()) == (WALL + 1060, WALL + 1070)
    assert refusals.closing() == []


def test_a_window_not_written_is_given_back_to_be_handed_over_again(clock: list[float]) -> None:
    refusals = Refusals(limit=0, window=60)
    refusals.refused("a")
    clock[0] += 60
    taken = refusals.due()
    refusals.keep(taken)
    assert refusals.due() == taken


def _throttled(store: Store) -> list[dict[str, Any]]:
    return [e for e in stream(store.engine) if deps.THROTTLED in (e["rules"] or [])]


def test_a_closed_window_is_recorded_by_the_sweep_with_when_it_was(
    store: Store, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker sends 50 bad tokens and stops: the 45 throttled refusals reach the trail
    once the window closes, though no other refusal ever comes, and the entry says when the
    window was, for an IG search by the time of the attack."""
    written, real = threading.Event(), deps.disclose

    def disclose(appender: Any, entry: Any, released: Any) -> Any:
        found = real(appender, entry, released)
        if deps.THROTTLED in entry.rules:
            written.set()
        return found

    monkeypatch.setattr(deps, "disclose", disclose)
    monkeypatch.setattr(deps, "SWEEP_SECONDS", 0.01)
    settings = replace(store.settings, refusal_limit=5, refusal_window_seconds=60)
    with TestClient(create_app(settings, store.engine)) as client:
        answers = [client.get("/fhir/Patient", headers=auth("x")).status_code for _ in range(50)]
        assert _throttled(store) == []
        clock[0] += 60
        assert written.wait(10), "the sweep did not record the closed window"
    assert answers == [401] * 5 + [429] * 45
    (summary,) = _throttled(store)
    since = datetime.fromtimestamp(WALL + 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    until = datetime.fromtimestamp(WALL + 1060, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert summary["withheld"] == {deps.THROTTLED: 45}
    assert summary["query"] == f"since={since}&until={until}"


def test_an_audit_write_failure_keeps_the_throttled_counts_until_written(
    store: Store, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(store.settings, refusal_limit=1, refusal_window_seconds=60)
    svc = create_app(settings, store.engine).state.services
    for client in ("10.0.0.1",) * 4 + ("10.0.0.2",) * 2:
        svc.refusals.refused(client)
    clock[0] += 60
    real, calls = deps.disclose, []

    def second_fails(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise AuditUnavailable("the trail blipped")
        return real(*args)

    monkeypatch.setattr(deps, "disclose", second_fails)
    with pytest.raises(AuditUnavailable):
        deps.record_throttled(svc, svc.refusals.due())
    deps.record_throttled(svc, svc.refusals.due())
    assert [(e["client_address"], e["withheld"]) for e in _throttled(store)] == [
        ("10.0.0.1", {deps.THROTTLED: 3}), ("10.0.0.2", {deps.THROTTLED: 1}),
    ]  # fmt: skip


def test_shutdown_tries_twice_then_logs_the_counts_it_could_not_record(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(store.settings, refusal_limit=1, refusal_window_seconds=3600)
    app = create_app(settings, store.engine)
    tries: list[str] = []

    def down(appender: Any, entry: Any, released: Any) -> Any:
        tries.append(entry.action)
        raise AuditUnavailable("the trail is down")

    caplog.set_level(logging.ERROR, "scr.api")
    with TestClient(app) as client:
        for _ in range(5):
            client.get("/fhir/Patient", headers=auth("x"))
        monkeypatch.setattr(deps, "disclose", down)
    assert tries == ["token-refused"] * 2
    assert "not recorded at shutdown" in caplog.text and "testclient 4 from " in caplog.text
