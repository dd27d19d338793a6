"""``transfer``: red-bag message submit → response over HTTP, 8 concurrent senders.

``scr serve --workers 2`` over a store of synthetic people (ingested through the pipeline);
eight care-home nurses, spread over the region's care homes (each with a registered key), send
signed transfers of their homes' residents to the region's hospital as fast as each is
answered: a care home may send only for a person placed with it. The synthetic region houses
about one person in 200 in a care home, so a council extract first places more of the oldest
people (``RESIDENTS``): with one resident, every transfer would be of the same person, and each
would cost more than the last, since the policy reads every earlier transfer of that person.
Each figure includes uvicorn, the token check, the JSON Schema, R4 validation of every
resource, the business rules (the policy decision on the sender's relationship among them), the
signature check, the audit append and the atomic store; ``server_cpu_ms`` is the CPU the
server's processes spent a message (``Served.cpu_seconds``), which the machine's other load
moves far less than the latencies. Each message is a whole transfer as the form sends one
(``MEDICINES`` with their last doses, allergies, the readings now and the usual ones, the CPR
decision, About me, a contact, the bag), not the least a message may hold. Messages are built
and signed beforehand: signing is the sender's cost. The floor is the same bytes parsed with
``orjson`` and inserted as one row by the driver, in this process, one at a time.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy
from sqlalchemy import Engine, select

from adapters.codes import load_all
from adapters.council import CouncilAdapter
from adapters.synth import catalogue as cat
from bench.corpus import ingest_people
from bench.load import Connection, figures
from bench.machine import facts, label, per_database
from bench.serve import server
from consent import load
from engine.api.auth import mint
from engine.db import make_engine, scratch_store
from engine.gate import gather_facts
from engine.identity import patients_of, people_with_nhs_number
from engine.identity.tables import PatientNumber
from engine.ingest import ingest
from engine.models import Resource
from engine.settings import Settings
from engine.transfer import signature
from engine.transfer.form import (
    Baseline,
    Contact,
    Medicine,
    Person,
    TransferForm,
    transfer_message,
)
from engine.transfer.news2 import Vitals
from engine.transfer.store import register_key

SENDERS = 8
TARGETS = {"p50_ms": 30, "p99_ms": 100}
BASE = "https://fhir.scr.example/"
CARE_ROLE = "S8000:G8000:R8001"
#: People placed in the region's care homes before the run (oldest first), so that the
#: messages are spread over many residents as they would be.
RESIDENTS = 48
#: A resident's regular medicines, each with its last dose in the message.
MEDICINES = (
    "Amlodipine 5mg tablets", "Atorvastatin 20mg tablets", "Bisoprolol 2.5mg tablets",
    "Donepezil 10mg tablets", "Lansoprazole 15mg capsules", "Paracetamol 500mg tablets",
    "Senna 7.5mg tablets",
)  # fmt: skip
#: The council that records the placements: not the synthetic region's own (its extract
#: would replace that council's records).
COUNCIL = ("E06000998", "Bench Council")
_GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


def _patients_by_number(conn: sqlalchemy.Connection) -> dict[str, dict[str, Any]]:
    """A Patient body for each NHS number in the store (the last by id, where several)."""
    rows = conn.execute(
        select(PatientNumber.nhs_number, Resource.body)
        .join(Resource, Resource.id == PatientNumber.patient_id)
        .order_by(PatientNumber.nhs_number, Resource.id)
    ).all()
    return {r.nhs_number: orjson.loads(r.body) for r in rows}


def _place(engine: Engine, url: str, work: Path, count: int) -> None:
    """The council records ``count`` of the oldest people (those whose NHS number names one
    person) as living in the region's care homes, through the pipeline like any extract."""
    with engine.connect() as conn:
        bodies = _patients_by_number(conn)
        single = [n for n in sorted(bodies) if len(people_with_nhs_number(conn, n)) == 1]
    oldest = sorted(single, key=lambda n: (bodies[n].get("birthDate", "9999"), n))[:count]
    persons, placements = [], []
    for i, number in enumerate(oldest):
        body = bodies[number]
        name = (body.get("name") or [{}])[0]
        persons.append({
            "person_id": str(i), "first_name": (name.get("given") or [""])[0],
            "last_name": name.get("family", ""), "date_of_birth": body.get("birthDate", ""),
            "gender": _GENDER.get(body.get("gender", ""), "U"), "nhs_number": number,
            "restricted": "false",
        })  # fmt: skip
        home = cat.CARE_HOMES[i % len(cat.CARE_HOMES)].ods
        placements.append({"person_id": str(i), "care_home_ods": home,
                           "start_date": "2024-01-01", "end_date": ""})  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="placements-", dir=work))  # one per database
    _write(folder / "organisation.csv", [{"code": COUNCIL[0], "name": COUNCIL[1]}])
    _write(folder / "persons.csv", persons)
    _write(folder / "placements.csv", placements)
    ingest(engine, Settings(database_url=url), load_all(), CouncilAdapter(), str(folder))


def _residents(engine: Engine) -> dict[str, list[Person]]:
    """Each care home's current residents, as the record names them, among the NHS numbers
    that name exactly one person (the ones a transfer can be accepted for), from the facts the
    policy reads."""
    policy = load()
    now = datetime.now(UTC)
    homes: dict[str, list[Person]] = {}
    with engine.connect() as conn:
        bodies = _patients_by_number(conn)
        for number in sorted(bodies):
            people = people_with_nhs_number(conn, number)
            if len(people) != 1:
                continue
            facts = gather_facts(conn, people[0], patients_of(conn, people[0]), policy)
            for r in facts.relationships:
                if r.kind == "placement" and (r.end is None or now < r.end):
                    homes.setdefault(r.org, []).append(_person(number, bodies[number]))
    return homes


def _person(number: str, patient: dict[str, Any]) -> Person:
    """The person as their record names them: a transfer must agree with it."""
    name = (patient.get("name") or [{}])[0]
    given = (name.get("given") or [""])[0]
    return Person(number, name.get("family", ""), given, patient.get("birthDate", ""))


def _keys(engine: Engine, homes: list[str]) -> dict[str, Any]:
    """A registered key for each care home that sends."""
    now = datetime.now(UTC)
    keys = {home: signature.new_key() for home in homes}
    with engine.begin() as conn:
        for home, key in keys.items():
            register_key(conn, home, signature.public_pem(key), "bench", now)
    return keys


def _message(home: str, key: Any, person: Person) -> bytes:
    now = datetime.now(UTC)
    form = TransferForm(
        person=person,
        reason="Shortness of breath since this morning",
        vitals=Vitals(24, 92, True, 104, 112, "A", 38.4),
        completed_by="Bench nurse",
        observed_at=now - timedelta(minutes=10),
        baseline=Baseline((now - timedelta(days=30)).date(), 16, 95, 130, 76, 36.6, "A"),
        medicines=[
            Medicine(name, now - timedelta(hours=2 + i)) for i, name in enumerate(MEDICINES)
        ],
        allergies=["Penicillin", "Latex"],
        for_cpr=False,
        about_me="Communication: hard of hearing on the left\nWhat matters to me: her daughter",
        contacts=[Contact("Ruth Bench", "Daughter, next of kin", "07700 900123")],
        belongings=["Glasses", "Hearing aids", "Medicines and MAR chart"],
    )
    doc = transfer_message(form, sender=home, destination=cat.HOSPITAL.ods, now=now, base=BASE,
                           header_id=str(uuid.uuid4()))  # fmt: skip
    return orjson.dumps(signature.sign(doc, key, home, now))


def _token(data: Path, home: str, nurse: int) -> str:
    return mint(
        Settings(data_dir=data, auth_mode="dev"), user_id=f"bench-nurse-{nurse}",
        name="Bench nurse", role_code=CARE_ROLE, org=home, minutes=240,
        ig_training=date.today() - timedelta(days=30),
    )  # fmt: skip


def _sender(
    base: str, token: str, bodies: list[bytes], out: list[float], errors: list[str]
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    url = f"{base}/fhir/$process-message"
    with Connection(base, headers) as client:
        for body in bodies:
            t0 = time.perf_counter()
            status, answer = client.send("POST", url, body)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                errors.append(f"{status}: {answer[:300]!r}")


def _send_all(base: str, work: dict[int, tuple[str, list[bytes]]]) -> tuple[list[float], float]:
    times: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_sender, args=(base, token, bodies, times, errors))
        for token, bodies in work.values()
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} messages refused, first: {errors[0]}")
    return times, seconds


def _floor(engine: Engine, bodies: list[bytes]) -> float:
    """Parse each message and insert it as one row with the driver; p50 in ms."""
    raw = engine.raw_connection()
    marker = "%s" if engine.dialect.name == "postgresql" else "?"
    times = []
    try:
        cur: Any = raw.cursor()
        blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
        cur.execute(f"CREATE TABLE bench_floor (id VARCHAR(64) PRIMARY KEY, raw {blob})")
        raw.commit()
        for body in bodies:
            t0 = time.perf_counter()
            doc = orjson.loads(body)
            cur.execute(f"INSERT INTO bench_floor VALUES ({marker}, {marker})",
                        (doc["entry"][0]["resource"]["id"], body))  # fmt: skip
            raw.commit()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        raw.close()
    return round(statistics.median(times), 3)


def _one(url: str, size: int, work: Path, quick: bool) -> dict[str, Any]:
    with scratch_store(url, work) as store:
        engine = make_engine(store)
        ingest_people(engine, store, 20 if quick else 200, seed=7)
        _place(engine, store, work, 6 if quick else RESIDENTS)
        residents = _residents(engine)
        homes = sorted(residents)
        keys = _keys(engine, homes)
        data = work / f"data-{label(url)}"
        data.mkdir()
        per = max(1, size // SENDERS)
        nurses = [(i, homes[i % len(homes)]) for i in range(SENDERS)]
        plan = {
            i: (_token(data, home, i),
                [_message(home, keys[home], residents[home][(i * per + n) % len(residents[home])])
                 for n in range(per)])
            for i, home in nurses
        }  # fmt: skip
        warm = {i: (plan[i][0], [_message(h, keys[h], residents[h][0])]) for i, h in nurses}
        with server(store, data) as served:
            _send_all(served.base, warm)
            before = served.cpu_seconds()
            times, seconds = _send_all(served.base, plan)
            after = served.cpu_seconds()
        loaded = figures(times, seconds)
        cpu = None if before is None or after is None else (after - before) / len(times)
        floor = _floor(engine, [b for _, bodies in plan.values() for b in bodies])
        engine.dispose()
    return {
        "database": label(url), "senders": SENDERS, "workers": 2, "care_homes": len(homes),
        "residents": sum(len(r) for r in residents.values()),
        "messages": loaded.requests, "message_bytes": len(plan[0][1][0]),
        "p50_ms": loaded.p50_ms, "p95_ms": loaded.p95_ms, "p99_ms": loaded.p99_ms,
        "per_s": loaded.req_per_s,
        "server_cpu_ms": None if cpu is None else round(cpu * 1000, 2), "floor_p50_ms": floor,
        "ratio_to_floor": round(loaded.p50_ms / floor, 2),
    }  # fmt: skip


def run(size: int, databases: list[str]) -> dict[str, Any]:
    quick = size < 500
    results = per_database(databases, lambda url, work: _one(url, size, work, quick))
    return {"scenario": "transfer", "targets": TARGETS, "results": results, "machine": facts()}
