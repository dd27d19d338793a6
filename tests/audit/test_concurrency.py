"""Many writers on several processes make one gapless, valid chain."""

from __future__ import annotations

import itertools
import multiprocessing

from sqlalchemy import Engine, text

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
        seqs = conn.execute(text("SELECT seq FROM audit_entry ORDER BY seq")).scalars().all()
        requests = conn.execute(text("SELECT request_id FROM audit_entry")).scalars().all()
    assert seqs == list(range(1, total + 1))
    assert len(set(requests)) == total, "every append was written exactly once"


def test_one_writer_appends_in_order_each_entry_chained_to_the_last(engine: Engine):
    writer = Writer(engine)
    sealed = [writer.append(entry(n)) for n in range(5)]
    assert [s.seq for s in sealed] == [1, 2, 3, 4, 5]
    assert all(a.hash == b.prev_hash for a, b in itertools.pairwise(sealed))
