"""Append-only storage: the trigger refuses the owner, the grants refuse the application's role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from audit.storage import REFUSAL, may_rewrite
from audit.verify import verify
from audit.writer import append
from engine.db import make_engine, scratch_store
from engine.migrate import upgrade
from tests.audit.trail import entry, fill
from tests.conftest import BACKEND

POSTGRES = BACKEND != "sqlite"
pg_only = pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL (SCR_TEST_DATABASE)")
REFUSED = [
    "UPDATE audit_entry SET user_id = 'x' WHERE seq = 1",
    "DELETE FROM audit_entry WHERE seq = 1",
    "DELETE FROM audit_entry",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_trigger_refuses_even_the_owner(engine: Engine, statement: str) -> None:
    fill(engine, 3)
    with pytest.raises(DBAPIError, match=REFUSAL), engine.begin() as conn:
        conn.execute(text(statement))
    assert verify(engine).intact and verify(engine).size == 3


def test_sqlite_refuses_a_replace_that_would_rewrite_an_entry(engine: Engine) -> None:
    """REPLACE deletes the row it conflicts with without running delete triggers."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no REPLACE; ON CONFLICT DO UPDATE runs the update trigger")
    fill(engine, 3)
    replace = (
        "REPLACE INTO audit_entry SELECT seq, time, request_id, action, outcome, 'someone-else', "
        "org, purpose, patient_id, nhs_number, body, prev_hash, hash FROM audit_entry "
        "WHERE seq = 2"
    )
    with pytest.raises(DBAPIError, match=REFUSAL), engine.begin() as conn:
        conn.execute(text(replace))
    assert verify(engine).intact and verify(engine).size == 3


@pg_only
def test_truncate_is_refused_by_trigger_on_postgresql(engine: Engine) -> None:
    fill(engine, 3)
    with pytest.raises(DBAPIError, match=REFUSAL), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_entry"))


@pytest.fixture
def app_role(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    """A role granted only what the migration grants (run here, on an empty store), and an
    engine that acts as it."""
    if not POSTGRES:
        pytest.skip("needs PostgreSQL (SCR_TEST_DATABASE)")
    role = f"scr_app_{uuid.uuid4().hex[:10]}"
    with scratch_store(BACKEND, tmp_path) as db_url:
        owner = make_engine(db_url)
        with owner.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        try:
            monkeypatch.setenv("SCR_DB_APP_ROLE", role)
            upgrade(owner)
            as_app = make_engine(db_url)

            @event.listens_for(as_app, "connect")
            def _set_role(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                with dbapi_conn.cursor() as cur:
                    cur.execute(f'SET ROLE "{role}"')
                dbapi_conn.commit()

            yield role, as_app
            as_app.dispose()
        finally:
            with owner.begin() as conn:
                conn.execute(text(f'DROP OWNED BY "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))
            owner.dispose()


@pytest.mark.parametrize("statement", [*REFUSED, "TRUNCATE audit_entry"])
def test_the_application_role_can_append_but_never_rewrite(
    app_role: tuple[str, Engine], statement: str
) -> None:
    role, as_app = app_role
    for n in range(3):
        append(as_app, entry(n))
    with as_app.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == role
    with pytest.raises(DBAPIError, match="permission denied"), as_app.begin() as conn:
        conn.execute(text(statement))
    report = verify(as_app)
    assert report.intact and report.size == 3


def test_a_server_can_tell_it_is_connected_as_a_role_that_may_rewrite_the_trail(
    app_role: tuple[str, Engine], tmp_path: Path
) -> None:
    """Nothing stopped scr serve connecting as the owner or a superuser, for whom the
    append-only triggers and grants hold only while they choose: serve now warns."""
    _, as_app = app_role
    with as_app.connect() as conn:
        assert not may_rewrite(conn)
    with scratch_store(BACKEND, tmp_path / "owner") as db_url:
        owner = make_engine(db_url)
        upgrade(owner)
        with owner.connect() as conn:
            assert may_rewrite(conn)
        owner.dispose()
