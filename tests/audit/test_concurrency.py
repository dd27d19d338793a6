"""Many writers on several processes make one gapless, valid chain."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time

from sqlalchemy import Engine, text

import audit.writer
from audit.verify import verify
from audit.writer import Writer
from tests.audit.trail import entry
from tests.audit.workers import write

PROCESSES, THREADS, PER_THREAD = 4, 4, 25


def test_sixteen_writers_on_four_processes_make_one_gapless_chain(engine: Engine, db_url: str):
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=write, args=(db_url, p, THREADS, PER_THREAD)) for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    total = PROCESSES * THREADS * PER_THREAD
    report = verify(engine)
    assert report.intact, report.problem
    assert report.size == total
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, time FROM audit_entry ORDER BY seq")).all()
        requests = conn.execute(text("SELECT request_id FROM audit_entry")).scalars().all()
    assert [seq for seq, _ in rows] == list(range(1, total + 1))
    assert len(set(requests)) == total, "every append was written exactly once"
    times = [time for _, time in rows]
    assert times == sorted(times), "each entry is stamped inside the lock, so time follows seq"


def test_one_writer_appends_in_order_each_entry_chained_to_the_last(engine: Engine):
    writer = Writer(engine)
    sealed = [writer.append(entry(n)) for n in range(5)]
    assert [s.seq for s in sealed] == [1, 2, 3, 4, 5]
    assert all(a.hash == b.prev_hash for a, b in itertools.pairwise(sealed))


def test_entries_arriving_while_a_transaction_is_in_flight_share_the_next_one(
    engine: Engine, monkeypatch
):
    """Group commit: eight threads, and the first transaction held open long enough for the
    other seven to queue behind it, take at most two transactions between them."""
    real = audit.writer.append_batch
    batches: list[int] = []

    def slow_first(eng, entries):  # type: ignore[no-untyped-def]
        batches.append(len(entries))
        if len(batches) == 1:
            time.sleep(0.3)  # only to open the window; nothing here is timed
        return real(eng, entries)

    monkeypatch.setattr(audit.writer, "append_batch", slow_first)
    writer = Writer(engine)
    start = threading.Barrier(8)

    def one(n: int) -> None:
        start.wait()
        writer.append(entry(n))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(batches) == 8 and len(batches) <= 2
    report = verify(engine)
    assert report.intact and report.size == 8


def test_more_than_a_batch_queued_is_written_in_order_by_leads_in_turn(engine: Engine, monkeypatch):
    """Past ``MAX_BATCH`` queued entries, a lead whose own entry is not in its batch writes
    the next too, and then hands the lead on: every caller returns, each entry once."""
    monkeypatch.setattr(audit.writer, "MAX_BATCH", 3)
    real = audit.writer.append_batch
    batches: list[int] = []

    def slow_first(eng, entries):  # type: ignore[no-untyped-def]
        batches.append(len(entries))
        if len(batches) == 1:
            time.sleep(0.3)  # the other callers queue behind the first
        return real(eng, entries)

    monkeypatch.setattr(audit.writer, "append_batch", slow_first)
    writer = Writer(engine)
    start = threading.Barrier(10)
    sealed: list[int] = []

    def one(n: int) -> None:
        start.wait()
        sealed.append(writer.append(entry(n)).seq)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(sealed) == list(range(1, 11)) and max(batches) <= 3
    assert not writer._busy and not writer._queue


def test_a_wait_interrupted_once_handed_the_lead_passes_it_on(engine: Engine):
    """A caller woken to lead (its lock released) but interrupted first (a signal in the main
    thread) hands the lead to the next queued, or stands the writer down: appends never stall
    behind a caller that left."""
    writer = Writer(engine)
    first, second = audit.writer._Pending(entry(1)), audit.writer._Pending(entry(2))
    writer._busy, writer._queue = True, [first, second]
    first.turn.release()  # handed the lead, as a lead that has written its own does
    writer._leave(first)
    assert writer._queue == [second] and second.turn.acquire(blocking=False)
    second.turn.release()
    writer._leave(second)
    assert writer._queue == [] and not writer._busy
    assert writer.append(entry(3)).seq == 1, "the next caller leads"
