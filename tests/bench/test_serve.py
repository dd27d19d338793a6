"""The server's CPU a benchmark reports: its workers' too, as uvicorn runs them in children."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.serve import Served

#: A worker: half a second of CPU, then idle until killed.
_BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n" + (
    "time.sleep(60)"
)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc to read")
def test_a_servers_cpu_counts_its_children() -> None:
    worker = subprocess.Popen([sys.executable, "-c", _BUSY])
    try:
        alone = Served("", worker.pid)
        deadline = time.monotonic() + 60
        while (alone.cpu_seconds() or 0) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        own = os.times()
        spent = Served("", os.getpid()).cpu_seconds()
        assert spent is not None and spent >= own.user + own.system + 0.45
    finally:
        worker.kill()
        worker.wait()
