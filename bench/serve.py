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


@contextmanager
def server(url: str, data_dir: Path, workers: int = 2) -> Iterator[str]:
    """``scr serve --workers N`` over ``url``; yields its base URL once it answers."""
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
        yield base
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
