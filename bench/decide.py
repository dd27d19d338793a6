"""``decide``: the policy decision and the per-resource filter over one person's whole record.

Every read path filters a record before paging (so totals count only what may be seen), so
the cost that matters is one decision plus :func:`visible` and :func:`mask` over every
resource of a large record. The record is synthetic: a realistic mix of types from a GP
practice, a hospital and a council, a few items labelled confidential or sensitive, and a
dissent-free person with a GP registration. ``databases`` is ignored: nothing here touches one.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.machine import facts
from consent import (
    PatientFacts,
    Policy,
    Relationship,
    Request,
    ResourceMeta,
    Who,
    decide,
    load,
    mask,
    meta_of,
    visible,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GP, HOSPITAL, COUNCIL = "Y90011", "R9Z", "E06000999"
#: (resource type, extra elements, weight): roughly the shape of an older person's record.
MIX: list[tuple[str, dict[str, Any], int]] = [
    ("Observation", {"status": "final"}, 50),
    ("MedicationStatement", {"status": "completed"}, 20),
    ("MedicationStatement", {"status": "active"}, 4),
    ("Condition", {"clinicalStatus": {"coding": [{"code": "active"}]}}, 5),
    ("Encounter", {"status": "finished"}, 8),
    ("AllergyIntolerance", {}, 2),
    ("Flag", {"status": "active"}, 2),
    ("RelatedPerson", {}, 2),
    ("Immunization", {}, 3),
    ("DocumentReference", {}, 2),
    ("Task", {}, 1),
    ("EpisodeOfCare", {}, 1),
]
TRAINED = date(2026, 6, 1)
PERSONAS = {
    "clinical": Who("b1", "GP", "clinical", "S8000:G8000:R8000", GP, "gp-practice", TRAINED),
    "social-care": Who(
        "b2", "Social worker", "social-care", "S8002:G8004:R8014", COUNCIL, "council", TRAINED
    ),
}
Record = list[tuple[ResourceMeta, dict[str, Any]]]


def _record(size: int, policy: Policy) -> Record:
    rnd = random.Random(4)
    kinds = [(t, extra) for t, extra, w in MIX for _ in range(w)]
    record = []
    for i in range(size):
        rt, extra = rnd.choice(kinds)
        body: dict[str, Any] = {
            "resourceType": rt,
            "id": f"r{i}",
            "meta": {"versionId": "1"},
            "subject": {"reference": "Patient/p1"},
            "text": {"status": "generated", "div": "<div>synthetic</div>"},
            **extra,
        }
        labels = rnd.choices(["", "source-confidential", "sensitive-sti"], [96, 2, 2])[0]
        org = rnd.choice([GP, GP, HOSPITAL, COUNCIL])
        record.append((meta_of(body, org, labels, policy), body))
    return record


def _filter_ms(
    who: Who, patient: PatientFacts, record: Record, policy: Policy
) -> tuple[float, int]:
    """One read of the whole record: decide, then filter and mask every resource."""
    start = time.perf_counter()
    d = decide(who, patient, "TREAT", Request("everything"), NOW, policy)
    shown = [mask(body, d, policy, m.source_org) for m, body in record if visible(m, d)]
    return (time.perf_counter() - start) * 1000, len(shown)


def run(size: int, databases: list[str]) -> dict[str, Any]:
    policy = load()
    record = _record(size, policy)
    patient = PatientFacts(
        "p1",
        relationships=(
            Relationship(GP, "registration", NOW - timedelta(days=3000)),
            Relationship(COUNCIL, "council-case", NOW - timedelta(days=200)),
        ),
    )
    clinical = PERSONAS["clinical"]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5:
        decide(clinical, patient, "TREAT", Request("everything"), NOW, policy)
        n += 1
    per_s = n / (time.perf_counter() - start)

    profiles: dict[str, Any] = {}
    for name, who in PERSONAS.items():
        _filter_ms(who, patient, record, policy)
        runs = [_filter_ms(who, patient, record, policy) for _ in range(50)]
        times = sorted(ms for ms, _ in runs)
        profiles[name] = {
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
            "visible": runs[0][1],
        }
    return {
        "scenario": "decide",
        "record_resources": size,
        "decisions_per_s": round(per_s),
        "record_filter_ms": profiles["clinical"]["p50_ms"],
        "target_ms": 5,
        "profiles": profiles,
        "machine": facts(),
    }
