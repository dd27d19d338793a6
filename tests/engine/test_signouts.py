"""A worker's view of sign-outs: seen at once where they happen, whatever a look-up raced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from engine.signouts import SignOuts

SESSION = "a" * 64


class _Overtaken:
    """An engine whose look-up reads before a sign-out in the same worker commits, and
    remembers what it read after."""

    def __init__(self, engine: Engine, signouts: SignOuts) -> None:
        self.engine, self.signouts = engine, signouts

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn
        self.signouts.engine = self.engine
        self.signouts.sign_out(SESSION, datetime.now(UTC) + timedelta(hours=1))

    def begin(self) -> Any:
        return self.engine.begin()


def test_a_sign_out_stands_against_a_look_up_that_read_before_it(engine: Engine) -> None:
    signouts = SignOuts(engine)
    signouts.engine = _Overtaken(engine, signouts)  # type: ignore[assignment]
    assert signouts.signed_out(SESSION) is False  # what it read, before the sign-out
    assert signouts.cached(SESSION) is True


def test_signing_out_twice_is_remembered(engine: Engine) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    first, second = SignOuts(engine), SignOuts(engine)
    first.sign_out(SESSION, until)
    assert second.signed_out(SESSION) is True
    second.sign_out(SESSION, until)
    assert second.cached(SESSION) is True
