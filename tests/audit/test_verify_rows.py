"""Rows the walk in sequence order could pass by: below 1, with no ``seq``, or twice at one.

An IG search shows every row in the table, so verify must name each such row, as itself, and
a checkpoint that cannot be checked must be told apart from a trail that does not hold.
Migration 0017 makes PostgreSQL refuse a row below 1, even from the owner until it drops the
CHECK; these tests drop it, as the owner can, to show verify still names the row.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from audit.chain import BELOW_ONE, GENESIS, NO_SEQ, Walk, link, seal
from audit.entry import body
from audit.storage import TRIGGERS, grant_app_role
from audit.tables import SEQ_FROM_ONE
from audit.verify import verify
from engine.cli import app
from engine.migrate import alembic_config, upgrade
from tests.audit.trail import entry, fill, insert, row

runner = CliRunner()
#: The module, which ``audit.verify`` (the package's re-export of the function) hides.
walker = importlib.import_module("audit.verify")
LOWEST = -(2**63)


def _cli(db_url: str, tmp_path: Path, *args: str) -> Any:
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    return runner.invoke(app, ["audit", *args], env=env)


def _verify_json(db_url: str, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = _cli(db_url, tmp_path, "verify", "--json", *args)
    return result.exit_code, orjson.loads(result.stdout)


def _forged(conn: Connection, seq: int | None, like: int, prev: bytes) -> None:
    """A fabricated access whose body, columns and hash agree, at ``seq``, dated as entry
    ``like``: nothing but its place in the sequence gives it away."""
    e = entry(3, user_id="555555000001", patient_id="patient-victim", request_id="forged")
    stored = row(conn, like)["time"]  # SQLite hands back the text it keeps: stored as is
    when = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    data = body(e, like if seq is None else seq, when if when.tzinfo else when.replace(tzinfo=UTC))
    values = {"seq": seq, "time": stored, **_columns(e), "body": data}
    insert(conn, values | {"prev_hash": prev, "hash": link(prev, data)})


def _columns(e: Any) -> dict[str, Any]:
    fields = ("request_id", "action", "outcome", "user_id", "org", "purpose")
    return {f: getattr(e, f) for f in (*fields, "patient_id", "nhs_number")}


def _drop_check(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ALTER TABLE audit_entry DROP CONSTRAINT {SEQ_FROM_ONE}"))


NO_ALTER = "SQLite cannot drop a primary key or NOT NULL in place"
NO_CHECK = "the CHECK is PostgreSQL's (migration 0017 says why)"


def _pg(engine: Engine, why: str) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(why)


@pytest.mark.parametrize("seq", [0, -1, LOWEST])
def test_a_row_below_1_is_named_as_itself(engine: Engine, db_url, tmp_path, seq) -> None:
    """The lowest bigint was never read by the keyset walk; 0 was reported as entry 1
    missing. Either is a row scr never appends, reported as the first bad entry."""
    fill(engine, 10)
    with engine.begin() as conn:  # INSERT alone, once the owner has dropped the CHECK
        _drop_check(conn)
        _forged(conn, seq, like=5, prev=GENESIS)
    code, out = _verify_json(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == seq and out["problem"] == BELOW_ONE, out


def test_postgresql_refuses_a_row_below_1_from_the_app_role_and_the_owner(engine: Engine) -> None:
    _pg(engine, NO_CHECK)
    fill(engine, 3)
    role = f"scr_app_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        grant_app_role(conn, role)
    try:
        for as_role in (role, None):
            with pytest.raises(DBAPIError, match=SEQ_FROM_ONE), engine.begin() as conn:
                if as_role:
                    conn.execute(text(f'SET LOCAL ROLE "{as_role}"'))
                _forged(conn, LOWEST, like=2, prev=GENESIS)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    assert verify(engine).intact


@pytest.mark.parametrize("page", [5, 4])
def test_a_second_row_at_one_number_is_named_where_a_page_ends_or_within(
    engine: Engine, db_url, tmp_path, monkeypatch, page
) -> None:
    """With the primary key dropped, a second row at the number a keyset page ends on was
    stepped past (``seq > last``), passing verify and verify --checkpoint."""
    _pg(engine, NO_ALTER)
    monkeypatch.setattr(walker, "CHUNK", page)
    fill(engine, 12)
    saved = tmp_path / "cp.json"
    saved.write_text(_cli(db_url, tmp_path, "checkpoint").stdout)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_entry DROP CONSTRAINT audit_entry_pkey"))
        _forged(conn, 5, like=5, prev=bytes(row(conn, 5)["prev_hash"]))
    for args in ((), ("--checkpoint", str(saved))):
        code, out = _verify_json(db_url, tmp_path, *args)
        assert code == 1 and out["first_bad_seq"] == 5, out
        assert out["problem"] == "more than one row holds entry 5: one was not appended by scr"


@pytest.mark.parametrize("page", [walker.CHUNK, 4])
def test_a_row_with_no_seq_is_named_as_null(
    engine: Engine, db_url, tmp_path, monkeypatch, page
) -> None:
    """A NULL ``seq`` is outside every keyset page (``seq > last``) and the column check
    (``seq <= head``); the count in the walk's snapshot finds it when no page holds it."""
    _pg(engine, NO_ALTER)
    monkeypatch.setattr(walker, "CHUNK", page)
    fill(engine, 10)
    saved = tmp_path / "cp.json"
    saved.write_text(_cli(db_url, tmp_path, "checkpoint").stdout)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_entry DROP CONSTRAINT audit_entry_pkey"))
        conn.execute(text("ALTER TABLE audit_entry ALTER COLUMN seq DROP NOT NULL"))
        _forged(conn, None, like=4, prev=bytes(row(conn, 4)["prev_hash"]))
    for args in ((), ("--checkpoint", str(saved))):
        code, out = _verify_json(db_url, tmp_path, *args)
        assert code == 1 and out["first_bad_seq"] is None and out["problem"] == NO_SEQ, out
    plain = _cli(db_url, tmp_path, "verify")
    assert plain.exit_code == 1 and f"NOT INTACT at entry NULL: {NO_SEQ}" in plain.output


def test_the_walk_names_rows_out_of_place_by_themselves() -> None:
    """What the walk is handed in place of the next entry: a repeat, none, or one below 1."""
    sealed = seal([entry(n) for n in range(1, 4)], 0, GENESIS, datetime.now(UTC))
    rows = [(s.seq, s.body, s.prev_hash, s.hash) for s in sealed]
    cases = {
        (rows[0], rows[1], rows[1]): (2, "more than one row holds entry 2"),
        (rows[0], (None, *rows[1][1:])): (None, NO_SEQ),
        ((0, *rows[0][1:]), rows[0]): (0, BELOW_ONE),
        (rows[0], rows[2]): (2, "entry 2 is missing (next is 3)"),
    }
    for fed, (seq, reason) in cases.items():
        problem = Walk().feed(fed)
        assert problem is not None and problem.seq == seq and reason in problem.reason


def test_an_edited_checkpoint_is_refused_not_reported_as_a_damaged_trail(
    engine: Engine, db_url, tmp_path
) -> None:
    """A checkpoint whose signature fails says nothing about the trail: exit 2, as for one
    signed by another key, not ``NOT INTACT at entry 0``."""
    fill(engine, 8)
    cp = orjson.loads(_cli(db_url, tmp_path, "checkpoint").stdout)
    saved = tmp_path / "cp.json"
    saved.write_bytes(orjson.dumps(cp | {"size": 3}))
    result = _cli(db_url, tmp_path, "verify", "--json", "--checkpoint", str(saved))
    assert result.exit_code == 2 and result.stdout == "", result.output
    said = " ".join(result.output.split())
    assert "cannot verify" in said and f"signature is not valid for key {cp['key_id']}" in said
    assert "NOT INTACT" not in said
    assert _verify_json(db_url, tmp_path)[0] == 0


def _at_0016(engine: Engine) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0016")


def _triggers(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_entry'::regclass"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_entry'"
    return set(conn.execute(text(sql)).scalars())


def _validated(conn: Connection) -> bool | None:
    sql = "SELECT convalidated FROM pg_constraint WHERE conname = :n"
    return conn.execute(text(sql), {"n": SEQ_FROM_ONE}).scalar()


def test_0017_applies_to_a_filled_store_keeping_its_triggers_and_grants(engine: Engine) -> None:
    _at_0016(engine)
    role = f"scr_app_{uuid.uuid4().hex[:10]}"
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
            grant_app_role(conn, role)
    try:
        fill(engine, 20)
        upgrade(engine)
        with engine.connect() as conn:
            assert set(TRIGGERS[engine.dialect.name]) <= _triggers(conn)
            if postgres:
                assert _validated(conn) is True
                granted = conn.execute(
                    text(
                        "SELECT privilege_type FROM information_schema.role_table_grants "
                        "WHERE grantee = :r AND table_name = 'audit_entry'"
                    ),
                    {"r": role},
                ).scalars()
                assert sorted(granted) == ["INSERT", "SELECT"]
        report = verify(engine)
        assert report.intact and report.size == 20
    finally:
        if postgres:
            with engine.begin() as conn:
                conn.execute(text(f'DROP OWNED BY "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))


def test_0017_keeps_a_row_below_1_already_there_and_checks_every_new_row(engine: Engine) -> None:
    """That row is evidence: the upgrade neither fails on it nor could remove it."""
    _pg(engine, NO_CHECK)
    _at_0016(engine)
    fill(engine, 5)
    with engine.begin() as conn:
        _forged(conn, 0, like=2, prev=GENESIS)
    with pytest.warns(UserWarning, match="NOT VALID"):
        upgrade(engine)
    with engine.connect() as conn:
        assert _validated(conn) is False
    with pytest.raises(DBAPIError, match=SEQ_FROM_ONE), engine.begin() as conn:
        _forged(conn, -1, like=2, prev=GENESIS)
    report = verify(engine)
    assert report.problem is not None and report.problem.seq == 0
