"""Verify agrees with the writer on awkward values, and searches find what was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from audit.chain import GENESIS, Walk, link, seal
from audit.search import Filters, search
from audit.verify import verify
from audit.writer import append_batch
from engine.settings import Settings, SettingsError
from tests.audit.trail import as_owner, entry

AWKWARD = ['quote " back \\ slash', "tab\tnew\nline\x01", "Renée Ōkubo ✓ 🚑", "", "/a/b<c>&"]


def test_columns_with_awkward_text_still_match_their_hashed_body(engine: Engine):
    """The column check rebuilds each body's ending in the database: escaping must agree."""
    append_batch(
        engine,
        [entry(n, request_id=v, user_id=v or "u", org=v[:16]) for n, v in enumerate(AWKWARD)]
        + [entry(9, purpose=None, patient_id=None, nhs_number=None)],
    )
    report = verify(engine)
    assert report.intact, report.problem
    assert report.size == len(AWKWARD) + 1


def test_an_over_long_value_is_cut_to_its_column_and_fails_no_one(engine: Engine):
    """A request id, purpose or identity longer than its column (they come from requests and
    tokens) is cut in the entry itself, so it neither fails its own append nor the entries
    batched with it, and its body and column still agree."""
    long = entry(1, request_id="r" * 100, purpose="P" * 40, user_id="u" * 200, org="O" * 30,
                 patient_id="p" * 90, nhs_number="9" * 12)  # fmt: skip
    sealed = append_batch(engine, [entry(0), long, entry(2)])
    assert [s.seq for s in sealed] == [1, 2, 3]
    kept = sealed[1].entry
    assert (len(kept.request_id), len(kept.purpose or ""), len(kept.user_id)) == (64, 32, 128)
    assert (len(kept.org), len(kept.patient_id or ""), len(kept.nhs_number or "")) == (16, 64, 10)
    assert verify(engine).intact


def test_a_nul_in_a_column_value_is_replaced_and_fails_no_one(engine: Engine):
    """PostgreSQL stores no NUL in text: one in a purpose or identity (they come from requests
    and tokens) is replaced in the entry itself, so the batch beside it is written too."""
    odd = entry(1, purpose="TREAT\x00", user_id="u\x00", request_id="r\x00")
    sealed = append_batch(engine, [entry(0), odd, entry(2)])
    assert [s.seq for s in sealed] == [1, 2, 3]
    kept = sealed[1].entry
    assert (kept.purpose, kept.user_id, kept.request_id) == ("TREAT\ufffd", "u\ufffd", "r\ufffd")
    assert verify(engine).intact


def test_a_lone_surrogate_in_one_entry_fails_no_batch(engine: Engine):
    """A token's JSON claims can carry a lone surrogate, which UTF-8 cannot encode: the entry
    is kept with U+FFFD in its place, in every field, so the entries beside it are written."""
    append_batch(engine, [entry(1), entry(2, purpose="TREAT\ud800")])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entry")).scalar() == 2
    odd = entry(
        3, purpose="\udfff", user_id="u\ud800", user_name="n\ud800", role_code="S:G:\ud800",
        org="\ud800", rules=("r\ud800",), refs=("Patient/\ud800",), query="q\ud800",
        disclosed={"Obs\ud800": 1}, withheld={"w\ud800": 2}, user_agent="\ud83d\ude00",
    )  # fmt: skip
    kept = append_batch(engine, [entry(0), odd, entry(4)])[1].entry
    assert (kept.purpose, kept.user_id, kept.org) == ("\ufffd", "u\ufffd", "\ufffd")
    assert (kept.rules, kept.refs, kept.query) == (("r\ufffd",), ("Patient/\ufffd",), "q\ufffd")
    assert (kept.disclosed, kept.withheld) == ({"Obs\ufffd": 1}, {"w\ufffd": 2})
    assert (kept.user_name, kept.role_code) == ("n\ufffd", "S:G:\ufffd")
    assert kept.user_agent == "\ufffd\ufffd"  # a pair, not a character, in a Python string
    assert verify(engine).intact and verify(engine).size == 5


def test_an_empty_trail_verifies(engine: Engine):
    report = verify(engine)
    assert report.intact and report.size == 0 and report.head == GENESIS


def test_the_walk_is_pure_and_needs_no_database():
    sealed = seal([entry(n) for n in range(1, 6)], 0, GENESIS, datetime(2026, 12, 1, tzinfo=UTC))
    rows = [(s.seq, s.body, s.prev_hash, s.hash) for s in sealed]
    walk = Walk(keep=3)
    assert walk.feed(rows[:2]) is None and walk.feed(rows[2:]) is None
    assert walk.size == 5 and walk.head == sealed[-1].hash and walk.kept == sealed[2].hash
    assert sealed[1].hash == link(sealed[0].hash, sealed[1].body)
    bad = Walk().feed([rows[0], rows[2]])
    assert bad is not None and bad.seq == 2


def test_searches_by_patient_user_and_day_newest_first(engine: Engine):
    append_batch(engine, [entry(n) for n in range(1, 21)])
    by_patient = search(engine, Filters(patient_id="patient-3")).entries
    assert [d["seq"] for d in by_patient] == [18, 13, 8, 3]
    assert all(d["patient_id"] == "patient-3" for d in by_patient)
    by_user = search(engine, Filters(user_id="555555000001")).entries
    assert {d["user_id"] for d in by_user} == {"555555000001"}
    written = datetime.fromisoformat(search(engine, Filters(), limit=1).entries[0]["time"])
    day = written.replace(hour=0, minute=0, second=0, microsecond=0)
    assert len(search(engine, Filters(since=day, until=day + timedelta(days=1))).entries) == 20
    old = datetime(2001, 1, 1, tzinfo=UTC)
    assert search(engine, Filters(since=old, until=old + timedelta(days=1))).entries == []


def test_the_app_role_setting_must_be_a_plain_name():
    assert Settings.load({"SCR_DB_APP_ROLE": "scr_app"}).db_app_role == "scr_app"
    with pytest.raises(SettingsError, match="SCR_DB_APP_ROLE"):
        Settings.load({"SCR_DB_APP_ROLE": 'x"; DROP TABLE audit_entry; --'})


def test_a_column_edited_to_imitate_an_escape_is_caught(engine: Engine):
    """``a\\"b`` quoted as is reads like the JSON of ``a"b``: the check must not be fooled."""
    append_batch(engine, [entry(1), entry(2, user_id='a"b'), entry(3)])
    with as_owner(engine) as conn:
        conn.execute(text("UPDATE audit_entry SET user_id = :u WHERE seq = 2"), {"u": 'a\\"b'})
    report = verify(engine)
    assert report.problem is not None and report.problem.seq == 2
    assert "column" in report.problem.reason
