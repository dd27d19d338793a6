"""Each alert rule: one case that must trigger it and one that must not. Pure: entries in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.schema import MapFileError
from audit.alerts import Alert, OpenItem, PersonNames, Staff, evaluate, load_rules
from audit.entry import time_text

RULES = load_rules()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


def e(seq: int, when: datetime, **over: Any) -> dict[str, Any]:
    doc = {
        "seq": seq, "time": time_text(when), "action": "everything", "outcome": "permit",
        "user_id": "u1", "patient_id": f"p{seq}", "nhs_number": None, "rules": [],
        "org": "R9Z", "profile": "clinical",
    }  # fmt: skip
    return doc | over


def run(entries: list[dict[str, Any]], rules: dict[str, Any] = RULES, **kw: Any) -> list[Alert]:
    args: dict[str, Any] = {"staff": {}, "people": {}, "open_items": ()} | kw
    return evaluate(entries, rules, NOW, **args)


def fired(alerts: list[Alert], rule: str) -> list[Alert]:
    return [a for a in alerts if a.rule == rule]


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=LONDON).astimezone(UTC)


def test_out_of_hours_uses_the_configured_window_without_enough_history() -> None:
    night = fired(run([e(1, _local(1, 3))]), "out-of-hours")
    assert night[0].detail.endswith("the configured working hours")
    assert fired(run([e(1, _local(1, 10))]), "out-of-hours") == []


def test_out_of_hours_learns_a_night_workers_hours() -> None:
    history = [e(i, _local(1, 2) - timedelta(days=10 + i % 14)) for i in range(1, 31)]
    night = run([*history, e(100, _local(1, 2, 30))])
    assert fired(night, "out-of-hours") == []
    day = fired(run([*history, e(100, _local(1, 11))]), "out-of-hours")
    assert [a.evidence for a in day] == [(100,)]
    assert day[0].detail.endswith("learned from their history")


def test_many_people_in_an_hour() -> None:
    n = RULES["rules"]["many-people"]["people"]
    start = NOW - timedelta(hours=3)
    burst = [e(i, start + timedelta(seconds=i)) for i in range(1, n + 2)]
    alert = fired(run(burst), "many-people")
    assert len(alert) == 1 and len(alert[0].evidence) == n + 1
    spread = [e(i, start - timedelta(minutes=3 * i)) for i in range(1, n + 2)]
    same = [e(i, start + timedelta(seconds=i), patient_id="p1") for i in range(1, 3 * n)]
    assert fired(run(spread), "many-people") == []
    assert fired(run(same), "many-people") == []


def test_own_record_by_nhs_number_or_surname_and_postcode() -> None:
    staff = {"u1": Staff("Archer", "BC1 2AB", "9990000026")}
    mine = e(1, NOW, nhs_number="9990000026")
    relative = e(2, NOW, patient_id="p-rel")
    people = {"p-rel": PersonNames(frozenset({"ARCHER"}), frozenset({"BC12AB"}))}
    found = fired(run([mine, relative], staff=staff, people=people), "own-record")
    assert sorted(a.evidence for a in found) == [(1,), (2,)]
    other = {"p-rel": PersonNames(frozenset({"ARCHER"}), frozenset({"BC99ZZ"}))}
    assert fired(run([relative, e(3, NOW)], staff=staff, people=other), "own-record") == []


def test_repeated_refusals() -> None:
    n = RULES["rules"]["repeated-refusals"]["refusals"]
    refused = [e(i, NOW - timedelta(minutes=i), outcome="deny") for i in range(1, n + 1)]
    assert len(fired(run(refused), "repeated-refusals")) == 1
    apart = [e(i, NOW - timedelta(hours=2 * i), outcome="deny") for i in range(1, n + 1)]
    assert fired(run(refused[: n - 1]), "repeated-refusals") == []
    assert fired(run(apart), "repeated-refusals") == []


def test_restricted_record_accessed() -> None:
    flagged = e(1, NOW, rules=["basis.relationship", "person.restricted"])
    assert [a.evidence for a in fired(run([flagged]), "restricted-record")] == [(1,)]
    refused = e(2, NOW, rules=["person.restricted"], outcome="deny")
    plain = e(3, NOW, rules=["basis.relationship"])
    assert fired(run([plain, refused]), "restricted-record") == []


def test_break_glass_not_reviewed_in_time() -> None:
    old = OpenItem("break-glass", "g1", "u1", "p1", NOW - timedelta(hours=73))
    young = OpenItem("break-glass", "g2", "u1", "p1", NOW - timedelta(hours=71))
    found = fired(run([], open_items=[old, young]), "break-glass-unreviewed")
    assert [a.detail.split()[1] for a in found] == ["g1"]


def test_thresholds_are_data() -> None:
    rule = RULES["rules"]["repeated-refusals"] | {"refusals": 2}
    strict = RULES | {"rules": RULES["rules"] | {"repeated-refusals": rule}}
    two = [e(i, NOW - timedelta(minutes=i), outcome="deny") for i in (1, 2)]
    assert fired(run(two, rules=strict), "repeated-refusals")
    assert not fired(run(two), "repeated-refusals")


def test_a_malformed_rules_file_is_refused_naming_the_field(tmp_path: Any) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"version": "x", "time_zone": "Europe/London", "window_days": 0, "rules": {}}')
    with pytest.raises(MapFileError, match="window_days"):
        load_rules(path)
