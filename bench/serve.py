"""``scr serve`` as a subprocess, exactly as deployed: uvicorn, workers, dev-mode tokens.

The benchmark talks to it over real HTTP on a free local port, so the figures include uvicorn,
the middleware, the token check, the policy decision and the audit append.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx

from bench.corpus import PRACTICE
from engine.api.auth import mint
from engine.settings import Settings

GP_ROLE = "S8000:G8000:R8000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def gp_token(settings: Settings) -> str:
    """A GP at the practice the synthetic people are registered with, trained recently."""
    return mint(
        settings, user_id="bench-gp", name="Synthetic bench GP", role_code=GP_ROLE,
        org=PRACTICE, minutes=240, ig_training=date.today() - timedelta(days=30),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Served:
    """A running ``scr serve``: where it answers, and its process (the workers' parent)."""

    base: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """CPU time the server and its workers have used so far (``None`` without Linux's
        ``/proc``). Divided by the requests of a phase, it is what each cost the server: a
        figure the machine's other load moves far less than a latency, which every process
        on its two cores moves (the senders, the database, a neighbour)."""
        stats = []
        for path in Path("/proc").glob("[0-9]*/stat"):
            try:
                stats.append(path.read_text())
            except OSError:  # a process that ended as it was read
                continue
        if not stats:
            return None
        parent: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for stat in stats:
            pid, rest = stat.split(" (", 1)
            fields = rest.rsplit(") ", 1)[1].split()
            parent[int(pid)], ticks[int(pid)] = int(fields[1]), int(fields[11]) + int(fields[12])
        tree = {self.pid}
        while grown := {p for p, up in parent.items() if up in tree} - tree:
            tree |= grown
        return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(url: str, data_dir: Path, workers: int = 2) -> Iterator[Served]:
    """``scr serve --workers N`` over ``url``, once it answers."""
    port = _free_port()
    env = os.environ | {
        "SCR_AUTH_MODE": "dev",
        "SCR_DATA_DIR": str(data_dir),
        "SCR_DATABASE_URL": url,
    }
    scr = Path(sys.executable).with_name("scr")
    cmd = [str(scr), "serve", "--workers", str(workers), "--port", str(port)]
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, proc, data_dir / "serve.log")
        yield Served(base, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scr serve exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"scr serve did not answer within 60 s:\n{log.read_text()}")
