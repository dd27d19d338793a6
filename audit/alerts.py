"""IG alerts: pure rules over trail entries, each alert naming its rule and the entries behind it.

Rules and thresholds are data (``mappings/ig/alert-rules.json``, checked against its schema),
so IG tunes them without a code change. Evaluation takes the entries, the facts it needs about
users and people, and the open review items, and returns alerts; it reads nothing itself.
Times of day are judged in the rules' time zone (users keep local hours, not UTC ones).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from adapters.schema import check
from audit.entry import refused_look, time_text

RULES_FILE = Path(__file__).resolve().parent.parent / "mappings" / "ig" / "alert-rules.json"
#: Actions that show a user some of a person's record.
ACCESSES = frozenset({"read", "search", "everything", "explain"})


@dataclass(frozen=True, slots=True)
class Staff:
    """What the staff directory says of a user, for the own-record rule."""

    surname: str
    postcode: str
    nhs_number: str | None = None


@dataclass(frozen=True, slots=True)
class PersonNames:
    """A person's surnames and postcodes, across their linked records, normalised."""

    surnames: frozenset[str]
    postcodes: frozenset[str]


@dataclass(frozen=True, slots=True)
class OpenItem:
    """A break-glass use or self-claim no IG officer has reviewed yet."""

    kind: str
    item_id: str
    user_id: str
    person_id: str
    start: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    title: str
    user_id: str
    patient_id: str | None
    time: str
    #: Why the rule fired, in words, naming no clinical content.
    detail: str
    #: Sequence numbers of the entries behind the alert (empty for an unreviewed item).
    evidence: tuple[int, ...] = ()


def normalise(text: str) -> str:
    return "".join(text.split()).upper()


def load_rules(path: Path = RULES_FILE) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    check("ig-alert-rules", doc, str(path))
    ZoneInfo(doc["time_zone"])
    return doc


def _accesses(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        e
        for e in entries
        if e["action"] in ACCESSES and e["outcome"] == "permit" and e.get("patient_id")
    ]


def _when(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["time"])


def _by_user(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    users: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in entries:
        users[e["user_id"]].append(e)
    for found in users.values():
        found.sort(key=lambda e: (e["time"], e["seq"]))
    return users


def usual_hours(
    history: Sequence[Mapping[str, Any]], rule: Mapping[str, Any], zone: ZoneInfo
) -> frozenset[int]:
    """Local hours of day a user works: learned from enough history, else the configured window."""
    if len(history) < rule["min_history"]:
        hours = rule["working_hours"]
        return frozenset(range(hours["start"], hours["end"]))
    counts: dict[int, int] = defaultdict(int)
    for e in history:
        counts[_when(e).astimezone(zone).hour] += 1
    return frozenset(h for h, n in counts.items() if n / len(history) >= rule["min_share"])


def out_of_hours(
    recent: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, Any]],
    rule: Mapping[str, Any],
    zone: ZoneInfo,
) -> list[Alert]:
    learned = _by_user(_accesses(history))
    alerts = []
    for user, found in _by_user(_accesses(recent)).items():
        hours = usual_hours(learned.get(user, []), rule, zone)
        for e in found:
            local = _when(e).astimezone(zone)
            if local.hour not in hours:
                usual = (
                    "learned from their history"
                    if len(learned.get(user, [])) >= rule["min_history"]
                    else "the configured working hours"
                )
                alerts.append(
                    Alert(
                        "out-of-hours",
                        rule["title"],
                        user,
                        e["patient_id"],
                        e["time"],
                        f"at {local:%H:%M} local time, outside {usual}",
                        (e["seq"],),
                    )
                )
    return alerts


def _bursts(
    found: Sequence[Mapping[str, Any]], span: timedelta, over: int, key: str
) -> list[list[Mapping[str, Any]]]:
    """Runs of entries within ``span`` of their first in which ``key`` takes more than
    ``over`` distinct values; each entry is in at most one run."""
    runs = []
    start = 0
    while start < len(found):
        end = start
        seen: set[Any] = set()
        first = _when(found[start])
        while end < len(found) and _when(found[end]) - first < span:
            seen.add(found[end][key])
            end += 1
        if len(seen) > over:
            runs.append(list(found[start:end]))
            start = end
        else:
            start += 1
    return runs


def many_people(recent: Sequence[Mapping[str, Any]], rule: Mapping[str, Any]) -> list[Alert]:
    span = timedelta(minutes=rule["minutes"])
    alerts = []
    for user, found in _by_user(_accesses(recent)).items():
        for run in _bursts(found, span, rule["people"], "patient_id"):
            people = len({e["patient_id"] for e in run})
            alerts.append(
                Alert(
                    "many-people",
                    rule["title"],
                    user,
                    None,
                    run[0]["time"],
                    f"{people} different people within {rule['minutes']} minutes "
                    f"(more than {rule['people']})",
                    tuple(e["seq"] for e in run),
                )
            )
    return alerts


def own_record(
    recent: Sequence[Mapping[str, Any]],
    rule: Mapping[str, Any],
    staff: Mapping[str, Staff],
    people: Mapping[str, PersonNames],
) -> list[Alert]:
    alerts = []
    for e in _accesses(recent):
        who = staff.get(e["user_id"])
        if who is None:
            continue
        names = people.get(e["patient_id"])
        if who.nhs_number is not None and e.get("nhs_number") == who.nhs_number:
            detail = "the NHS number is the user's own"
        elif (
            names is not None
            and normalise(who.surname) in names.surnames
            and normalise(who.postcode) in names.postcodes
        ):
            detail = "the person shares the user's surname and postcode"
        else:
            continue
        alerts.append(
            Alert(
                "own-record",
                rule["title"],
                e["user_id"],
                e["patient_id"],
                e["time"],
                detail,
                (e["seq"],),
            )
        )
    return alerts


def repeated_refusals(recent: Sequence[Mapping[str, Any]], rule: Mapping[str, Any]) -> list[Alert]:
    span = timedelta(minutes=rule["minutes"])
    refused = [e for e in recent if refused_look(e) and e.get("user_id")]
    alerts = []
    for user, found in _by_user(refused).items():
        for run in _bursts(found, span, rule["refusals"] - 1, "seq"):
            alerts.append(
                Alert(
                    "repeated-refusals",
                    rule["title"],
                    user,
                    None,
                    run[0]["time"],
                    f"{len(run)} refusals within {rule['minutes']} minutes",
                    tuple(e["seq"] for e in run),
                )
            )
    return alerts


def restricted_record(recent: Sequence[Mapping[str, Any]], rule: Mapping[str, Any]) -> list[Alert]:
    flags = set(rule["rules"])
    return [
        Alert(
            "restricted-record",
            rule["title"],
            e["user_id"],
            e["patient_id"],
            e["time"],
            "the person's record is flagged restricted",
            (e["seq"],),
        )
        for e in _accesses(recent)
        if flags & set(e.get("rules") or ())
    ]


def unreviewed(items: Iterable[OpenItem], rule: Mapping[str, Any], now: datetime) -> list[Alert]:
    limit = timedelta(hours=rule["hours"])
    return [
        Alert(
            "break-glass-unreviewed",
            rule["title"],
            i.user_id,
            i.person_id,
            time_text(i.start),
            f"{i.kind} {i.item_id} open for more than {rule['hours']} hours",
        )
        for i in items
        if now - i.start > limit
    ]


def evaluate(
    entries: Sequence[Mapping[str, Any]],
    rules: Mapping[str, Any],
    now: datetime,
    *,
    staff: Mapping[str, Staff],
    people: Mapping[str, PersonNames],
    open_items: Iterable[OpenItem],
) -> list[Alert]:
    """Every alert the rules raise over ``entries``, newest first.

    Entries from the last ``window_days`` are judged; older ones (the out-of-hours rule's
    ``history_days`` before those) are only the history that teaches each user's usual hours.
    """
    zone = ZoneInfo(rules["time_zone"])
    r = rules["rules"]
    edge = now - timedelta(days=rules["window_days"])
    recent = [e for e in entries if _when(e) >= edge]
    history = [e for e in entries if _when(e) < edge]
    alerts = [
        *out_of_hours(recent, history, r["out-of-hours"], zone),
        *many_people(recent, r["many-people"]),
        *own_record(recent, r["own-record"], staff, people),
        *repeated_refusals(recent, r["repeated-refusals"]),
        *restricted_record(recent, r["restricted-record"]),
        *unreviewed(open_items, r["break-glass-unreviewed"], now),
    ]
    return sorted(alerts, key=lambda a: a.time, reverse=True)
