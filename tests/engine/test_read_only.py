"""Reads on one connection, with no pre-ping: a dead pooled connection costs one retry."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from engine.db import read_only


def test_a_read_that_finds_its_connection_dead_runs_once_more(engine: Engine) -> None:
    tries: list[int] = []

    def work(conn: Connection) -> int:
        tries.append(1)
        if len(tries) == 1:
            raise DBAPIError(
                "SELECT 1", None, Exception("server closed"), connection_invalidated=True
            )
        return int(conn.execute(text("SELECT 1")).scalar_one())

    assert read_only(engine, work) == 1
    assert len(tries) == 2


def test_any_other_database_error_is_not_retried(engine: Engine) -> None:
    tries: list[int] = []

    def work(conn: Connection) -> int:
        tries.append(1)
        raise DBAPIError("SELECT 1", None, Exception("syntax"))

    with pytest.raises(DBAPIError):
        read_only(engine, work)
    assert len(tries) == 1
