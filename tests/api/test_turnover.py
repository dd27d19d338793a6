"""One response in ``SCR_TURNOVER_EVERY`` closes its connection, so that keep-alive
connections are shared out among the workers again and again, not once for their lifetime."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from engine.api import create_app
from engine.api.middleware import Turnover
from tests.api.conftest import Store


def test_one_response_in_every_closes_its_connection_whatever_it_answers(store: Store) -> None:
    settings = replace(store.settings, turnover_every=3)
    with TestClient(create_app(settings, store.engine)) as client:
        answers = [client.get(path) for path in ["/healthz", "/fhir/metadata", "/nowhere"] * 3]
    closed = [n for n, a in enumerate(answers, 1) if a.headers.get("connection") == "close"]
    assert closed == [3, 6, 9]  # a refusal (404) counts as any answer does
    assert [a.status_code for a in answers[:3]] == [200, 200, 404]


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-length", b"2"), (b"connection", b"keep-alive")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[int]:
    """uvicorn, as ``scr serve`` runs it, serving the middleware (every second response) on a
    free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    app = Turnover(_hello, every=2)
    server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="off", log_level="error"))
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def _answer(conn: socket.socket) -> bytes:
    """One whole response of :func:`_hello`'s: its head and its two-byte body may come in
    separate reads (they are two writes, and a busy machine sends them apart)."""
    said = b""
    while b"\r\n\r\n" not in said or len(said.split(b"\r\n\r\n", 1)[1]) < 2:
        got = conn.recv(4096)
        assert got, f"the connection closed mid-answer: {said!r}"
        said += got
    return said


def test_uvicorn_closes_the_connection_after_that_response(served: int) -> None:
    """What the worker does with the header: the second answer on one connection is its last,
    even where the app said keep-alive."""
    with socket.create_connection(("127.0.0.1", served), timeout=5) as conn:
        said = []
        for _ in range(2):
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            said.append(_answer(conn))
        assert b"connection: close" not in said[0].lower()
        assert b"connection: close" in said[1].lower()
        assert conn.recv(4096) == b"", "the worker closed it"
