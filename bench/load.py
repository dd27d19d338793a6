"""HTTP load: N clients, each sending its next request as soon as one answers (a closed loop,
:func:`run`) or on a fixed schedule shared between them (:func:`paced`).

Each client is a thread with its own keep-alive :class:`Connection`, connected before its
first request. Latency is measured around the whole request (send, server, receive the full
body); a warm-up is sent and discarded first, so start-up (caches, the second worker coming
up) is not counted.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    req_per_s: float
    requests: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "req_per_s": self.req_per_s,
            "requests": self.requests,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection to the server under test (the standard library's).

    The clients share the machine's two cores with the server, so what they spend is taken
    from it: ``httpx`` spent about 0.8 ms of CPU per typical read (16 clients, 2 workers),
    this about 0.2, which left the same server some 15% more requests a second.
    """

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        where = urlsplit(base)
        self._conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=60)
        self._conn.connect()
        self._headers = dict(headers)

    def send(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        """The status and the whole body of one request to ``url`` (its path and query)."""
        where = urlsplit(url)
        target = f"{where.path}?{where.query}" if where.query else where.path
        self._conn.request(method, target, body, self._headers)
        response = self._conn.getresponse()
        return response.status, response.read()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._conn.close()


def _pct(times: Sequence[float], q: float) -> float:
    return round(times[min(len(times) - 1, int(len(times) * q))], 2)


def figures(times: list[float], seconds: float) -> Figures:
    times = sorted(times)
    return Figures(
        round(statistics.median(times), 2), _pct(times, 0.95), _pct(times, 0.99),
        round(len(times) / seconds, 1), len(times),
    )  # fmt: skip


def _client(
    urls: Sequence[str], headers: dict[str, str], start: int, stop: float, out: list[float],
    every: float | None = None, first: float = 0.0,
) -> None:  # fmt: skip
    """Send until ``stop``: each request as soon as the last answers, or with ``every``, on a
    schedule from ``first``, timed from when it was due (a late answer then counts against
    every request that waited for it, rather than hiding them)."""
    with Connection(urls[0], headers) as client:
        n, due = start, first
        while True:
            now = time.perf_counter()
            if every is None:
                if now >= stop:
                    break
                t0 = now
            else:
                if due >= stop:
                    break
                if due > now:
                    time.sleep(due - now)
                t0, due = due, due + every
            url = urls[n % len(urls)]
            n += 1
            status, body = client.send("GET", url)
            ms = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"{url} answered {status}: {body[:300]!r}")
            out.append(ms)


def _phase(
    urls: Sequence[str], headers: dict[str, str], clients: int, seconds: float,
    rate: float | None = None,
) -> tuple[list[float], float]:  # fmt: skip
    lists: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    begin = time.perf_counter()
    stop = begin + seconds
    every = clients / rate if rate else None

    def one(i: int) -> None:
        first = begin + i * (every or 0.0) / clients  # the clients' turns interleaved evenly
        try:
            _client(urls, headers, i * 7, stop, lists[i], every, first)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [ms for xs in lists for ms in xs], time.perf_counter() - begin


def run(
    urls: Sequence[str], headers: dict[str, str], clients: int, seconds: float, warmup: float
) -> Figures:
    """``clients`` concurrent clients cycling over ``urls`` for ``seconds`` after ``warmup``."""
    _phase(urls, headers, clients, warmup)
    return figures(*_phase(urls, headers, clients, seconds))


def paced(
    urls: Sequence[str], headers: dict[str, str], clients: int, rate: float, seconds: float,
    warmup: float,
) -> Figures:  # fmt: skip
    """``clients`` connections sending ``rate`` requests a second between them on a fixed
    schedule: the latency at that rate, where :func:`run` gives the rate the server sustains
    (whose latency, in a closed loop, is the clients' count divided by it)."""
    if rate <= 0:
        raise ValueError("a paced load needs a rate above zero")
    _phase(urls, headers, clients, warmup, rate)
    return figures(*_phase(urls, headers, clients, seconds, rate))


def sequential(urls: Sequence[str], headers: dict[str, str], rounds: int) -> Figures:
    """One client, one request at a time: the latency with no queueing behind other clients."""
    times: list[float] = []
    with Connection(urls[0], headers) as client:
        for url in urls[: min(len(urls), 5)]:
            client.send("GET", url)
        begin = time.perf_counter()
        for n in range(rounds):
            url = urls[n % len(urls)]
            t0 = time.perf_counter()
            status, _ = client.send("GET", url)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"{url} answered {status}")
    return figures(times, time.perf_counter() - begin)
