"""A writer process for the concurrency test: threads sharing one group-commit Writer."""

from __future__ import annotations

import threading

from audit.writer import Writer
from engine.db import make_engine
from tests.audit.trail import entry


def write(url: str, process: int, threads: int, per_thread: int) -> None:
    engine = make_engine(url)
    writer = Writer(engine)
    errors: list[BaseException] = []

    def run(thread: int) -> None:
        try:
            for n in range(per_thread):
                writer.append(entry(n, request_id=f"p{process}-t{thread}-{n}"))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    engine.dispose()
    if errors:
        raise errors[0]
