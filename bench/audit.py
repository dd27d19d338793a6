"""``audit``: append under 16 concurrent writers, verify speed, and IG searches over a big trail.

For each database, a scratch store is filled with ``size`` chained entries (default 1,000,000)
by bulk insert: the chain is computed here in Python and written in batches, as an append
would have written it, over 90 days, 20,000 people and 2,000 users. Then:

- ``verify_entries_per_s``: ``audit.verify`` over the whole trail (chain walk and column check);
  floor: reading the same ``(seq, body, prev_hash, hash)`` rows and nothing else.
- ``query_p50_ms``: the slowest p50 of three IG console searches (``audit.search``: the newest
  100 entries of one patient, of one user, of one day); floor: 100 entries by primary key.
- ``append_p50_ms``: 16 writers appending through a group-commit ``audit.Writer`` (one per
  process) into that trail, as 2 processes × 8 threads (the headline, as ``scr serve
  --workers 2``) and 4 × 4 (under ``appends``); floor: the same writers each committing a plain
  INSERT of the same body into an unindexed table (no lock, no chain, no batching), as
  durably (``synchronous=FULL`` on SQLite, as the append). Each writer appends again as soon
  as it returns (a closed loop), so the p50 is about 16 divided by the appends a second.
- ``at_target_rate``: the same 2 × 8 writers appending 400 entries a second between them (the
  read benchmark's target: every read appends one) on a fixed schedule, each append timed from
  when it was due, so waiting behind a late one counts.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from adapters.synth.nhs import NhsNumbers
from audit.chain import GENESIS, link
from audit.entry import AuditEntry, body
from audit.search import Filters, search
from audit.verify import verify
from audit.writer import Writer
from bench.machine import facts, label, per_database
from engine.db import make_engine, scratch_store
from engine.migrate import upgrade

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 90
PEOPLE, USERS = 20_000, 2_000
#: 16 writers as (processes, threads each): 2 × 8 is ``scr serve --workers 2`` (the read
#: benchmark's server); 4 × 4 spreads them thinner, so each process batches less.
LAYOUTS = ((2, 8), (4, 4))
WRITERS = 16
TARGETS = {"append_p50_ms": 1.0, "verify_entries_per_s": 300_000, "query_p50_ms": 50.0}
#: Appends a second offered by the paced writers: the read target's requests a second.
TARGET_RATE = 400.0
_BATCH = 10_000
_COLUMNS = (
    "seq, time, request_id, action, outcome, user_id, org, purpose, patient_id, nhs_number, "
    "body, prev_hash, hash"
)


#: One valid test-range NHS number (999, modulus 11) per synthetic person.
_ISSUER = NhsNumbers(random.Random(3))
NHS = [_ISSUER.issue() for _ in range(PEOPLE)]


def _entry(rnd: random.Random, n: int) -> AuditEntry:
    person = rnd.randrange(PEOPLE)
    user = rnd.randrange(USERS)
    permit = rnd.random() > 0.05
    return AuditEntry(
        request_id=f"bench-{n}",
        action=rnd.choice(("everything", "everything", "read", "search")),
        outcome="permit" if permit else "deny",
        user_id=f"5{user:011d}",
        user_name=f"Synthetic user {user}",
        role_code="S8000:G8000:R8000",
        profile="clinical",
        org=f"Y9{user % 200:04d}",
        purpose="TREAT",
        rules=("basis.relationship",) if permit else ("basis.none",),
        policy_version="bench",
        basis="relationship" if permit else None,
        patient_id=f"patient-{person}",
        nhs_number=NHS[person],
        disclosed={"Condition": rnd.randrange(10), "Observation": rnd.randrange(90)}
        if permit
        else {},
        withheld={"sensitive": 1} if rnd.random() < 0.1 else {},
        client_address="10.0.0.5",
        user_agent="scr-bench/1",
    )


def _rows(size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Chained rows in batches, times spread evenly over ``DAYS`` days."""
    rnd = random.Random(5)
    step = timedelta(days=DAYS) / max(size, 1)
    prev = GENESIS
    batch: list[tuple[Any, ...]] = []
    for n in range(1, size + 1):
        e = _entry(rnd, n)
        at = START + step * n
        data = body(e, n, at)
        digest = link(prev, data)
        batch.append(
            (n, at, e.request_id, e.action, e.outcome, e.user_id, e.org, e.purpose,
             e.patient_id, e.nhs_number, data, prev, digest)
        )  # fmt: skip
        prev = digest
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _fill(engine: Engine, size: int) -> float:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite; returns seconds."""
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    last: tuple[Any, ...] | None = None
    try:
        cur: Any = raw.cursor()
        for batch in _rows(size):
            if engine.dialect.name == "postgresql":
                with cur.copy(f"COPY audit_entry ({_COLUMNS}) FROM STDIN") as copy:
                    for r in batch:
                        copy.write_row(r)
            else:
                cur.executemany(
                    f"INSERT INTO audit_entry ({_COLUMNS}) VALUES ({', '.join(['?'] * 13)})",
                    [(r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:]) for r in batch],
                )
            raw.commit()
            last = batch[-1]
        if last is not None:
            mark = "%s" if engine.dialect.name == "postgresql" else "?"
            cur.execute(
                f"UPDATE audit_head SET seq = {mark}, hash = {mark} WHERE id = 1",
                (last[0], last[12]),
            )
            raw.commit()
        if engine.dialect.name == "postgresql":
            driver: Any = raw.driver_connection
            driver.autocommit = True
            driver.execute("VACUUM ANALYZE audit_entry")
            driver.autocommit = False
        else:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


def _floor_read(engine: Engine) -> float:
    """Entries per second for reading the rows verify reads, and doing nothing with them."""
    raw = engine.raw_connection()
    n, t0 = 0, time.perf_counter()
    try:
        select = "SELECT seq, body, prev_hash, hash FROM audit_entry ORDER BY seq"
        if engine.dialect.name == "postgresql":
            driver: Any = raw.driver_connection
            page = f"{select.replace('ORDER', 'WHERE seq > %s ORDER')} LIMIT 20000"
            with driver.cursor(binary=True) as cur:  # keyset pages, as verify reads them
                after = -(2**63)
                while chunk := cur.execute(page, (after,)).fetchall():
                    n += len(chunk)
                    after = chunk[-1][0]
        else:
            cur = raw.cursor()
            cur.execute(select)
            while chunk := cur.fetchmany(20_000):
                n += len(chunk)
        raw.rollback()
    finally:
        raw.close()
    return n / (time.perf_counter() - t0)


def _p50(fn: Callable[[int], object], rounds: int) -> float:
    rnd = random.Random(9)
    fn(rnd.randrange(1_000_000))
    times = []
    for _ in range(rounds):
        arg = rnd.randrange(1_000_000)
        t0 = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def _day(n: int) -> Filters:
    start = START + timedelta(days=n % DAYS)
    return Filters(since=start, until=start + timedelta(days=1))


def _queries(engine: Engine, size: int, rounds: int) -> dict[str, float]:
    people = min(PEOPLE, max(size, 1))

    def floor(n: int) -> object:
        low = n % max(size - 100, 1)
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT body FROM audit_entry WHERE seq > :a AND seq <= :b"),
                {"a": low, "b": low + 100},
            ).all()

    return {
        "by_patient_p50_ms": _p50(
            lambda n: search(engine, Filters(patient_id=f"patient-{n % people}"), limit=100),
            rounds,
        ),
        "by_user_p50_ms": _p50(
            lambda n: search(engine, Filters(user_id=f"5{n % USERS:011d}"), limit=100), rounds
        ),
        "by_day_p50_ms": _p50(lambda n: search(engine, _day(n), limit=100), rounds),
        "floor_p50_ms": _p50(floor, rounds),
    }


def _synchronous_full(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=FULL")


def append_worker(
    url: str, process: int, threads: int, per_thread: int, floor: bool, rate: float | None = None
) -> list[float]:
    """One process of the append measurement: ``threads`` threads, latencies in ms; with
    ``rate``, each thread appends that many times a second, timed from when each was due."""
    engine = make_engine(url, pool_size=threads)
    if floor and engine.dialect.name == "sqlite":
        # As durable as an audit append (audit/writer.py), or the floor would not be the same I/O.
        event.listen(engine, "connect", _synchronous_full)
    writer = Writer(engine)
    rnd = random.Random(process)
    latencies: list[float] = []
    lock = threading.Lock()

    def plain(e: AuditEntry, n: int) -> None:
        data = body(e, n, datetime.now(UTC))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_floor (body) VALUES (:b)"), {"b": data})

    def run(thread: int) -> None:
        mine = []
        start = time.perf_counter() + 0.1
        for n in range(per_thread + 5):
            e = _entry(rnd, n)
            t0 = time.perf_counter()
            if rate is not None:  # the writers' turns spread evenly over each interval
                t0 = start + (n + (process * threads + thread) / WRITERS) / rate
                time.sleep(max(0.0, t0 - time.perf_counter()))
            if floor:
                plain(e, n)
            else:
                writer.append(e)
            if n >= 5:  # the first few open connections
                mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    engine.dispose()
    return latencies


def _appends(
    url: str,
    processes: int,
    threads: int,
    per_thread: int,
    floor: bool,
    rate: float | None = None,
) -> dict[str, float]:
    """p50 and p95 of 16 writers; ``rate`` is the appends a second offered by all of them."""
    each = None if rate is None else rate / (processes * threads)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(processes) as pool:
        results = pool.starmap(
            append_worker,
            [(url, p, threads, per_thread, floor, each) for p in range(processes)],
        )
    times = sorted(t for r in results for t in r)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
    }


def _one(url: str, size: int, work: Path) -> dict[str, Any]:
    quick = size < 100_000
    with scratch_store(url, work) as store:
        engine = make_engine(store)
        upgrade(engine)
        blob = "BLOB" if engine.dialect.name == "sqlite" else "bytea"
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE bench_floor (body {blob})"))
        fill_s = _fill(engine, size)
        t0 = time.perf_counter()
        report = verify(engine)
        verify_s = time.perf_counter() - t0
        if not report.intact or report.size != size:
            raise RuntimeError(f"the benchmark trail does not verify: {report.problem}")
        floor_read = _floor_read(engine)
        queries = _queries(engine, size, 20 if quick else 200)
        per_thread = 20 if quick else 300
        appends = {}
        for procs, threads in LAYOUTS:
            appends[f"{procs}x{threads}"] = {
                **_appends(store, procs, threads, per_thread, floor=False),
                "floor_p50_ms": _appends(store, procs, threads, per_thread, floor=True)["p50_ms"],
            }
        paced = _appends(store, 2, 8, per_thread, floor=False, rate=TARGET_RATE)
        after = verify(engine)
        if not after.intact or after.size != size + (len(LAYOUTS) + 1) * WRITERS * (per_thread + 5):
            raise RuntimeError(f"the trail does not verify after the appends: {after.problem}")
        engine.dispose()
    headline = appends["2x8"]
    query_p50 = max(queries[k] for k in ("by_patient_p50_ms", "by_user_p50_ms", "by_day_p50_ms"))
    verify_per_s = size / verify_s
    return {
        "database": label(url),
        "entries": size,
        "fill_seconds": round(fill_s, 1),
        "append_p50_ms": headline["p50_ms"],
        "append_p95_ms": headline["p95_ms"],
        "floor_append_p50_ms": headline["floor_p50_ms"],
        "append_ratio_to_floor": round(headline["p50_ms"] / headline["floor_p50_ms"], 2),
        "appends": appends,
        "at_target_rate": {"offered_per_s": TARGET_RATE} | paced,
        "verify_entries_per_s": round(verify_per_s),
        "floor_read_entries_per_s": round(floor_read),
        "verify_ratio_to_floor": round(verify_per_s / floor_read, 2),
        "query_p50_ms": query_p50,
        "queries": queries,
        "query_ratio_to_floor": round(query_p50 / queries["floor_p50_ms"], 2),
        "writers": WRITERS,
    }


def run(size: int, databases: list[str]) -> dict[str, Any]:
    results = per_database(databases, lambda url, work: _one(url, size, work))
    return {
        "scenario": "audit",
        "entries": size,
        "targets": TARGETS,
        "results": results,
        "machine": facts(),
    }
