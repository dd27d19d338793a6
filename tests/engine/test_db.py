"""The store's sessions: SQLite writers take turns without polling; PostgreSQL plans once."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from engine.db import make_engine, write_turn

#: Holds the turn on the store named by argv[1] until its stdin closes.
_HOLDER = """
import sys
from engine.db import make_engine, write_turn
engine = make_engine(sys.argv[1])
with write_turn(engine):
    print("held", flush=True)
    sys.stdin.read()
"""


def _sqlite(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'turns.db'}")


def test_a_write_inside_another_on_the_same_thread_does_not_wait_on_itself(
    tmp_path: Path,
) -> None:
    engine, again = _sqlite(tmp_path), _sqlite(tmp_path)  # two engines, one file
    with write_turn(engine), write_turn(again), write_turn(engine):
        pass


def test_a_thread_waits_for_another_threads_turn(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    order: list[str] = []
    with write_turn(engine):
        waiter = threading.Thread(target=lambda: _take(engine, order, "second"))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()
        order.append("first")
    waiter.join(10)
    assert order == ["first", "second"]


def test_a_process_waits_for_another_processs_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=Path(__file__).parents[2],
    ) as holder:  # fmt: skip
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        order: list[str] = []
        waiter = threading.Thread(target=lambda: _take(make_engine(url), order, "mine"))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "took the turn while another process held it"
        holder.stdin.close()
        waiter.join(10)
        assert order == ["mine"]


def _take(engine: Engine, order: list[str], name: str) -> None:
    with write_turn(engine):
        order.append(name)


def test_postgresql_keeps_one_generic_plan_per_prepared_statement(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    with engine.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"
