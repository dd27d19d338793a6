"""Every decision is written before anything leaves; a failed write means nothing leaves."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

import audit.chain
import audit.writer
from audit import AuditUnavailable, RequestContext, Writer, disclose, entry_for, verify
from audit.chain import Sealed
from audit.entry import AuditEntry
from consent import PatientFacts, Request, decide
from tests.audit.trail import entry
from tests.consent.personas import NOW, PERSON, POLICY, typical, who

CONTEXT = RequestContext("req-1", "10.0.0.5", "scr-test/1")
RECORD = [
    {"resourceType": "Observation", "id": "o1"},
    {"resourceType": "Observation", "id": "o2"},
    {"resourceType": "Condition", "id": "c1"},
]


def _decision(profile: str = "clinical", related: bool = True):  # type: ignore[no-untyped-def]
    user = who(profile)
    facts = PatientFacts(PERSON, relationships=(typical(user),) if related else ())
    return user, decide(user, facts, "TREAT", Request("everything"), NOW, POLICY)


def _stored(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [bytes(b) for b in conn.execute(text("SELECT body FROM audit_entry")).scalars()]


def test_a_permitted_read_is_written_then_released(engine: Engine):
    user, decision = _decision()
    assert decision.permit
    e = entry_for(
        decision, user, CONTEXT, "everything", patient_id=PERSON, released=RECORD,
        withheld={"sensitive-sti": 2},
    )  # fmt: skip
    out = disclose(Writer(engine), e, RECORD)
    assert out is RECORD
    (body,) = _stored(engine)
    assert b'"disclosed":{"Condition":1,"Observation":2}' in body
    assert b'"withheld":{"sensitive-sti":2}' in body
    assert b'"refs":["Observation/o1","Observation/o2","Condition/c1"]' in body


def test_a_refusal_is_written_too(engine: Engine):
    user, decision = _decision(related=False)
    assert not decision.permit
    e = entry_for(decision, user, CONTEXT, "everything", patient_id=PERSON)
    assert disclose(Writer(engine), e, ()) == ()
    (body,) = _stored(engine)
    assert b'"outcome":"deny"' in body and b'"disclosed":{}' in body


def test_entries_hold_identifiers_and_counts_never_content():
    user, decision = _decision()
    released = [{"resourceType": "Condition", "id": "c1", "code": {"text": "Diabetes"}}]
    e = entry_for(decision, user, CONTEXT, "read", patient_id=PERSON, released=released)
    assert "Diabetes" not in repr(e)


class _Failing:
    def append(self, e):  # type: ignore[no-untyped-def]
        raise OSError("disk full")


def test_an_append_that_fails_releases_nothing():
    user, decision = _decision()
    e = entry_for(decision, user, CONTEXT, "everything", patient_id=PERSON, released=RECORD)
    returned = []
    with pytest.raises(AuditUnavailable):
        returned.append(disclose(_Failing(), e, RECORD))
    assert returned == []


def test_a_failure_inside_the_transaction_leaves_no_entry_and_no_gap(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """The second row of a batch is refused by the database: the whole batch rolls back."""
    writer = Writer(engine)
    writer.append(entry(1))
    real_row, real_around = Sealed.row, audit.writer._around
    refuse = {"req-3"}

    def broken(self: Sealed):  # type: ignore[no-untyped-def]
        row = real_row(self)
        if self.entry.request_id in refuse:
            row["body"] = None  # NOT NULL: refused by the database (SQLite's Python seal)
        return row

    def broken_around(e: AuditEntry) -> tuple[bytes | None, bytes]:
        before, after = real_around(e)  # PostgreSQL seals in the database: no body there either
        return (None if e.request_id in refuse else before), after

    monkeypatch.setattr(audit.chain.Sealed, "row", broken)
    monkeypatch.setattr(audit.writer, "_around", broken_around)
    with pytest.raises(AuditUnavailable):
        audit.writer.append_batch(engine, [entry(2), entry(3)])
    refuse.add("req-2")
    returned = []
    with pytest.raises(AuditUnavailable):
        returned.append(disclose(writer, entry(2), RECORD))
    assert returned == []
    monkeypatch.undo()

    assert verify(engine).size == 1
    assert writer.append(entry(4)).seq == 2
    report = verify(engine)
    assert report.intact and report.size == 2
