"""Refused requests per client address: each audited up to a limit a window, then counted.

Anyone can send a request with no token, a bad one or a forged form, and each refusal was an
entry appended to the hash-chained trail under its lock: unbounded, a way to flood the trail
and slow every audited read. Past ``limit`` refusals from one address within ``window``
seconds the client is answered 429 with no entry of its own, and the window, once closed,
gets one entry counting them, so no refusal goes unrecorded. Only refusals are counted: a
request with a valid token never meets this.

The count is kept per worker process, in memory: with N workers a client may get up to N
times the limit audited one by one before it is throttled everywhere. A closed window's count
is handed over at the next refusal any client meets, or when the worker stops.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Throttled:
    """How many refusals a client had past the limit in a window now closed."""

    client: str | None
    count: int


@dataclass(slots=True)
class _Window:
    started: float
    refused: int = 0
    throttled: int = 0


class TooManyRefusals(Exception):
    """The client is past its limit: answered 429, as a plain page for a browser's ``page``."""

    def __init__(self, retry_after: int, page: bool) -> None:
        super().__init__(f"too many refused requests; retry after {retry_after} s")
        self.retry_after = retry_after
        self.page = page


class Refusals:
    """The open window of each client that was refused lately, oldest first."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._open: dict[str | None, _Window] = {}
        self._lock = threading.Lock()

    def refused(self, client: str | None) -> tuple[bool, list[Throttled]]:
        """Count one refusal of ``client``: whether it is past the limit (answer 429, no entry
        of its own), and the windows now closed whose throttled refusals are due on the trail."""
        now = time.monotonic()
        with self._lock:
            closed = self._close(now)
            window = self._open.get(client)
            if window is None:
                window = self._open[client] = _Window(now)
            window.refused += 1
            over = window.refused > self.limit
            window.throttled += over
        return over, closed

    def closing(self) -> list[Throttled]:
        """Every open window's throttled refusals, handed over as the worker stops."""
        with self._lock:
            return self._close(float("inf"))

    def _close(self, now: float) -> list[Throttled]:
        """Drop the windows that ended by ``now`` (the dict is oldest first, so it stops at the
        first still open); those with throttled refusals are returned."""
        closed: list[Throttled] = []
        for client, window in list(self._open.items()):
            if now - window.started < self.window:
                break
            del self._open[client]
            if window.throttled:
                closed.append(Throttled(client, window.throttled))
        return closed
