"""One batch's writes committed on a worker thread while the ingest maps the next batch.

The database's share of a batch (the COPY into ``staged``, quarantine writes, the commit and
any ANALYZE) is mostly waiting on the server; the mapping and validation of the next batch is
CPU in this process. Overlapping them is the one way to use both without a second process.
At most one batch is in flight, and the caller waits for it before reading anything it wrote,
so every lookup sees exactly what it would if the writes were synchronous.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundWriter:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scr-ingest-writer")
        self._pending: Future[None] | None = None

    def submit(self, write: Callable[[], None]) -> None:
        """Start ``write`` once the batch before it is committed."""
        self.wait()
        self._pending = self._pool.submit(write)

    def wait(self) -> None:
        """Block until the batch in flight is committed; raise whatever stopped it."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the batch in flight (even if the run is failing), then stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown()
