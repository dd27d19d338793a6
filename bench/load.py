"""Closed-loop HTTP load: N clients, each sending its next request as soon as one answers.

Each client is a thread with its own keep-alive ``httpx.Client``. Latency is measured around
the whole request (send, server, receive the full body); a warm-up is sent and discarded
first, so start-up (connections, caches, the second worker coming up) is not counted.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


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


def _pct(times: Sequence[float], q: float) -> float:
    return round(times[min(len(times) - 1, int(len(times) * q))], 2)


def figures(times: list[float], seconds: float) -> Figures:
    times = sorted(times)
    return Figures(
        round(statistics.median(times), 2), _pct(times, 0.95), _pct(times, 0.99),
        round(len(times) / seconds, 1), len(times),
    )  # fmt: skip


def _client(
    urls: Sequence[str], headers: dict[str, str], start: int, stop: float, out: list[float]
) -> None:
    with httpx.Client(headers=headers, timeout=60) as client:
        n = start
        while time.perf_counter() < stop:
            url = urls[n % len(urls)]
            n += 1
            t0 = time.perf_counter()
            response = client.get(url)
            ms = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            out.append(ms)


def _phase(
    urls: Sequence[str], headers: dict[str, str], clients: int, seconds: float
) -> tuple[list[float], float]:
    lists: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    stop = time.perf_counter() + seconds

    def one(i: int) -> None:
        try:
            _client(urls, headers, i * 7, stop, lists[i])
        except BaseException as exc:
            errors.append(exc)

    begin = time.perf_counter()
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


def sequential(urls: Sequence[str], headers: dict[str, str], rounds: int) -> Figures:
    """One client, one request at a time: the latency with no queueing behind other clients."""
    times: list[float] = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for url in urls[: min(len(urls), 5)]:
            client.get(url)
        begin = time.perf_counter()
        for n in range(rounds):
            url = urls[n % len(urls)]
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
    return figures(times, time.perf_counter() - begin)
