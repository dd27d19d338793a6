"""Refused requests per client address: each audited up to a limit a window, then counted.

Anyone can send a request with no token, a bad one or a forged form, and each refusal was an
entry appended to the hash-chained trail under its lock: unbounded, a way to flood the trail
and slow every audited read. Past ``limit`` refusals from one address within ``window``
seconds the client is answered 429 with no entry of its own, and the window, once closed,
gets one entry counting them, so no refusal goes unrecorded. Only refusals with no valid user
are counted: a request with a valid token never meets this.

The count is kept per worker process, in memory: with N workers a client may get up to N
times the limit audited one by one before it is throttled everywhere. Closed windows are
handed over by :meth:`Refusals.due` (the app's sweeper asks every few seconds) and stay held
until their entry is written: one that could not be is given back (:meth:`Refusals.keep`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Throttled:
    """How many refusals a client had past the limit in a window now closed, and when the
    window was (wall clock, UTC): the entry is written after it, and says when it was."""

    client: str | None
    count: int
    since: datetime
    until: datetime


@dataclass(slots=True)
class _Window:
    started: float
    #: ``time.time()`` as it opened: ``started`` is monotonic, for counting, and dates nothing.
    wall: float
    refused: int = 0
    throttled: int = 0


class TooManyRefusals(Exception):
    """The client is past its limit: answered 429, as a plain page for a browser's ``page``."""

    def __init__(self, retry_after: int, page: bool) -> None:
        super().__init__(f"too many refused requests; retry after {retry_after} s")
        self.retry_after = retry_after
        self.page = page


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Refusals:
    """The open window of each client that was refused lately, oldest first, and the closed
    windows whose counts are not on the trail yet."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._open: dict[str | None, _Window] = {}
        self._closed: list[Throttled] = []
        self._lock = threading.Lock()

    def refused(self, client: str | None) -> bool:
        """Count one refusal of ``client``: whether it is past the limit (answer 429, no entry
        of its own)."""
        now = time.monotonic()
        with self._lock:
            self._close(now)
            window = self._open.get(client)
            if window is None:
                window = self._open[client] = _Window(now, time.time())
            window.refused += 1
            over = window.refused > self.limit
            window.throttled += over
        return over

    def due(self) -> list[Throttled]:
        """The closed windows with throttled refusals, handed over to be recorded."""
        with self._lock:
            self._close(time.monotonic())
            closed, self._closed = self._closed, []
        return closed

    def keep(self, unwritten: Iterable[Throttled]) -> None:
        """Take back windows whose entry could not be written, to be handed over again."""
        with self._lock:
            self._closed[:0] = unwritten

    def closing(self) -> list[Throttled]:
        """Every window's throttled refusals, open ones cut short now, as the worker stops."""
        with self._lock:
            self._close(float("inf"))
            closed, self._closed = self._closed, []
        return closed

    def _close(self, now: float) -> None:
        """Move the windows that ended by ``now`` to the closed list (the dict is oldest
        first, so it stops at the first still open); one with no throttled refusal is
        simply dropped."""
        wall = time.time()
        for client, window in list(self._open.items()):
            if now - window.started < self.window:
                break
            del self._open[client]
            if window.throttled:
                until = min(window.wall + self.window, wall)
                self._closed.append(
                    Throttled(client, window.throttled, _utc(window.wall), _utc(until))
                )
