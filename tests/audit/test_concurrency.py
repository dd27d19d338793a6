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


def test_a_queue_longer_than_a_batch_is_written_a_batch_at_a_time_each_caller_once(
    engine: Engine, monkeypatch
):
    """Past ``MAX_BATCH`` queued entries, each lead writes one batch (its own entry first in
    it) and hands the lead to the first caller still queued: every caller returns, each entry
    is written once, and the writer stands down."""
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
    assert sorted(sealed) == list(range(1, 11)) and sum(batches) == 10 and max(batches) <= 3
    assert not writer._busy and not writer._queue


class _InterruptedLock:
    """A caller's lock whose wait is interrupted just as it is handed the lock (a signal in
    the main thread lands after the acquire returns)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def acquire(self, blocking: bool = True) -> bool:
        self._lock.acquire(blocking)
        raise KeyboardInterrupt

    def release(self) -> None:
        self._lock.release()


def test_a_caller_interrupted_as_it_is_handed_the_lead_hands_it_on(engine: Engine, monkeypatch):
    """A caller woken to lead but interrupted before it wrote (a signal in a process's main
    thread) leaves, and the lead goes on with it: the next append is written, not stalled
    behind a caller that left."""
    real = audit.writer.append_batch

    def slow(eng, entries):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # the interrupted caller queues behind the first batch
        return real(eng, entries)

    class Pending(audit.writer._Pending):
        def __init__(self, e):  # type: ignore[no-untyped-def]
            super().__init__(e)
            if e.request_id == "interrupted":
                self.turn = _InterruptedLock()

    monkeypatch.setattr(audit.writer, "append_batch", slow)
    monkeypatch.setattr(audit.writer, "_Pending", Pending)
    writer = Writer(engine)
    first = threading.Thread(target=writer.append, args=(entry(1),))
    first.start()
    time.sleep(0.1)  # the first caller leads, writing
    left: list[BaseException] = []

    def interrupted() -> None:
        try:
            writer.append(entry(2, request_id="interrupted"))
        except KeyboardInterrupt as exc:
            left.append(exc)

    caller = threading.Thread(target=interrupted)
    caller.start()
    first.join(10)
    caller.join(10)
    assert len(left) == 1, "it was handed the lead and interrupted"
    after: list[int] = []
    last = threading.Thread(target=lambda: after.append(writer.append(entry(3)).seq))
    last.start()
    last.join(10)
    assert after == [2], "the next caller led and wrote; the interrupted entry was not written"
    assert not writer._busy and not writer._queue
