"""Tampering with the store directly: ``scr audit verify`` names the first bad entry each time.

Each test plays the database owner (triggers dropped), changes the trail one way, and checks
that verify exits 1 naming the sequence number where the trail stops holding.
"""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from engine.cli import app
from tests.audit.trail import as_owner, fill, insert, rewrite, row

runner = CliRunner()
N = 30


def verify(db_url: str, tmp_path, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = runner.invoke(app, ["audit", "verify", "--json", *args], env=env)
    return result.exit_code, orjson.loads(result.stdout)


@pytest.fixture
def trail(engine: Engine) -> Engine:
    fill(engine, N)
    return engine


def test_an_intact_trail_verifies_with_its_count_and_head(trail, db_url, tmp_path):
    code, out = verify(db_url, tmp_path)
    assert code == 0 and out["intact"] and out["entries"] == N
    with trail.connect() as conn:
        head = conn.execute(text("SELECT hash FROM audit_head")).scalar_one()
    assert out["head"] == bytes(head).hex()
    plain = runner.invoke(app, ["audit", "verify"], env={"SCR_DATABASE_URL": db_url})
    assert plain.exit_code == 0 and f"intact: {N} entries, head {out['head']}" in plain.stdout


def test_an_edited_field_in_the_hashed_entry(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        body = orjson.loads(row(conn, 12)["body"])
        body["index"]["user_id"] = "someone-else"
        conn.execute(
            text("UPDATE audit_entry SET body = :b WHERE seq = 12"), {"b": orjson.dumps(body)}
        )
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 12
    assert "does not match its hash" in out["problem"]


def test_a_body_replaced_with_text(trail, db_url, tmp_path):
    """SQLite keeps text in a BLOB column as text: the walk must report it, not crash."""
    with as_owner(trail) as conn:
        conn.execute(text("UPDATE audit_entry SET body = 'not an entry' WHERE seq = 8"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 8


def test_an_edited_searchable_column(trail, db_url, tmp_path):
    """Hiding an access from a search by user, without touching the hashed bytes."""
    with as_owner(trail) as conn:
        conn.execute(text("UPDATE audit_entry SET user_id = 'nobody' WHERE seq = 9"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 9 and "column" in out["problem"]


def test_an_edited_time(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        t = row(conn, 5)["time"]
        conn.execute(text("UPDATE audit_entry SET time = :t WHERE seq = 16"), {"t": t})
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 16


@pytest.mark.parametrize(
    "change",
    [
        "time = replace(time, ' ', 'T')",
        "time = CAST(time AS BLOB)",
        "user_id = CAST(user_id AS BLOB)",
        "patient_id = CAST(patient_id AS BLOB)",
    ],
    ids=["time-other-form", "time-blob", "user-blob", "patient-blob"],
)
def test_sqlite_a_value_stored_in_another_form_or_type(trail, db_url, tmp_path, change):
    """SQLite keeps any value in any column, and searches compare what is stored: the same
    words in another form or type would move an entry out of a search, so they are named."""
    if trail.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns hold one type each")
    with as_owner(trail) as conn:
        conn.execute(text(f"UPDATE audit_entry SET {change} WHERE seq = 12"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 12


def test_a_column_set_to_null_after_dropping_its_constraint(trail, db_url, tmp_path):
    """The owner can drop NOT NULL and blank a time, taking an entry out of every day search."""
    if trail.dialect.name != "postgresql":
        pytest.skip("SQLite cannot drop a NOT NULL constraint in place")
    with as_owner(trail) as conn:
        conn.execute(text("ALTER TABLE audit_entry ALTER COLUMN time DROP NOT NULL"))
        conn.execute(text("UPDATE audit_entry SET time = NULL WHERE seq = 11"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 11


def test_a_deleted_entry(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq = 7"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 7 and "missing" in out["problem"]


def test_an_inserted_entry(trail, db_url, tmp_path):
    """A genuine entry (3) replayed at 10, the later ones moved up one to make room."""
    with as_owner(trail) as conn:
        copy = row(conn, 3)
        # Up out of the way and back, one more: below 1 is refused (migration 0017).
        conn.execute(text("UPDATE audit_entry SET seq = seq + 1000 WHERE seq >= 10"))
        conn.execute(text("UPDATE audit_entry SET seq = seq - 999 WHERE seq >= 1000"))
        insert(conn, {**copy, "seq": 10})
        conn.execute(text("UPDATE audit_head SET seq = seq + 1"))
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 10


def test_two_entries_swapped(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        a, b = row(conn, 14), row(conn, 20)
        conn.execute(text("DELETE FROM audit_entry WHERE seq IN (14, 20)"))
        insert(conn, {**a, "seq": 20})
        insert(conn, {**b, "seq": 14})
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == 14


def test_the_tail_truncated(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq > :n"), {"n": N - 4})
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == N - 3 and "missing" in out["problem"]


def test_an_entry_appended_behind_scrs_back(trail, db_url, tmp_path):
    with as_owner(trail) as conn:
        insert(conn, {**row(conn, N), "seq": N + 1})
    code, out = verify(db_url, tmp_path)
    assert code == 1 and out["first_bad_seq"] == N + 1


def test_a_rewrite_with_every_later_hash_recomputed_is_caught_by_a_checkpoint(
    trail, db_url, tmp_path
):
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path)}
    made = runner.invoke(app, ["audit", "checkpoint"], env=env)
    assert made.exit_code == 0, made.output
    saved = tmp_path / "checkpoint.json"
    saved.write_text(made.stdout)
    fill(trail, 5)  # the trail grows after the IG office took its checkpoint

    rewrite(trail, 4)

    code, out = verify(db_url, tmp_path)
    assert code == 0, "the recomputed chain is self-consistent: only a checkpoint can tell"
    code, out = verify(db_url, tmp_path, "--checkpoint", str(saved))
    assert code == 1 and out["first_bad_seq"] == N
    assert "rewritten at or before" in out["problem"]


def test_a_truncation_below_a_checkpoint_with_the_head_row_moved_back(trail, db_url, tmp_path):
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path)}
    saved = tmp_path / "checkpoint.json"
    saved.write_text(runner.invoke(app, ["audit", "checkpoint"], env=env).stdout)
    with as_owner(trail) as conn:
        last = row(conn, N - 5)
        conn.execute(text("DELETE FROM audit_entry WHERE seq > :n"), {"n": N - 5})
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": N - 5, "h": last["hash"]}
        )
    assert verify(db_url, tmp_path)[0] == 0
    code, out = verify(db_url, tmp_path, "--checkpoint", str(saved))
    assert code == 1 and out["first_bad_seq"] == N - 4
