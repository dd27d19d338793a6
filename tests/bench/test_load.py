"""The load generator: a closed loop sends as fast as answers come; a paced one keeps to its
schedule (what it measures is timed, so only the counts are checked here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import paced, run


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/x?y=1"
    httpd.shutdown()
    httpd.server_close()


def test_a_paced_load_sends_its_schedule_and_no_more(url: str) -> None:
    figures = paced([url], {}, clients=4, rate=100, seconds=1.0, warmup=0.1)
    assert 96 <= figures.requests <= 104  # 100 a second for a second, each client's share


def test_a_closed_loop_sends_until_the_time_is_up(url: str) -> None:
    assert run([url], {}, clients=2, seconds=0.3, warmup=0.0).requests > 2
