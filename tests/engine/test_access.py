"""Grants and self-claims as stored records: the gate reads them itself, and IG closes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consent import ask_break_glass, ask_self_claim
from engine.access import ReviewError, record_claim, record_grant, review
from engine.gate import gather_facts, release
from tests.engine.test_gate import NOW, PATIENT_ID, POLICY, Request, Who, store, user

__all__ = ["store"]
EVERYTHING = Request("everything")
HOSPITAL = "R9Z"


def hospital_doctor(user_id: str = "u-ae") -> Who:
    base = user(HOSPITAL)
    return Who(
        user_id=user_id, name=base.name, profile="clinical", role_code=base.role_code,
        org=HOSPITAL, org_kind="hospital", ig_training=base.ig_training,
    )  # fmt: skip


def read(engine, who: Who, purpose: str, at=NOW):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        facts = gather_facts(conn, "person-1", [PATIENT_ID], POLICY)
        return release(conn, who, facts, [PATIENT_ID], purpose, EVERYTHING, at, POLICY)


def grant(engine, who: Who) -> str:  # type: ignore[no-untyped-def]
    answer = ask_break_glass(who, "person-1", "5", "Unconscious in A&E", NOW, POLICY, 240)
    assert answer.granted is not None
    with engine.begin() as conn:
        return record_grant(conn, who, answer.granted)


def test_a_stored_grant_lets_its_user_in_and_no_one_else(store):
    engine, _ = store
    doctor = hospital_doctor()
    assert not read(engine, doctor, "ETREAT").decision.permit
    grant(engine, doctor)
    released = read(engine, doctor, "ETREAT")
    assert released.decision.permit and released.decision.basis == "break-glass"
    assert released.total > 0
    assert not read(engine, hospital_doctor("u-other"), "ETREAT").decision.permit
    assert not read(engine, doctor, "ETREAT", NOW + timedelta(minutes=240)).decision.permit


def test_an_inappropriate_review_ends_the_grant_and_a_review_is_recorded_once(store):
    engine, _ = store
    doctor = hospital_doctor()
    item = grant(engine, doctor)
    with engine.begin() as conn:
        review(conn, "break-glass", item, "inappropriate", "No emergency", "ig-1", NOW)
    assert not read(engine, doctor, "ETREAT").decision.permit
    with engine.begin() as conn:
        (stored,) = gather_facts(conn, "person-1", [PATIENT_ID], POLICY).grants
        assert stored.review == "inappropriate"
        with pytest.raises(ReviewError):
            review(conn, "break-glass", item, "appropriate", "changed my mind", "ig-2", NOW)
        with pytest.raises(ReviewError):
            review(conn, "break-glass", "no-such-item", "appropriate", "", "ig-1", NOW)


def test_a_stored_self_claim_opens_the_record_to_its_maker_only(store):
    engine, _ = store
    doctor = hospital_doctor()
    answer = ask_self_claim(doctor, "person-1", "Seen in clinic today, letter pending", NOW, POLICY)
    assert answer.granted is not None
    with engine.begin() as conn:
        item = record_claim(conn, doctor, "person-1", answer.granted)
    assert read(engine, doctor, "TREAT").decision.basis == "self-claim"
    assert not read(engine, hospital_doctor("u-other"), "TREAT").decision.permit
    with engine.begin() as conn:
        review(conn, "self-claim", item, "inappropriate", "No clinic visit found", "ig-1", NOW)
    assert not read(engine, doctor, "TREAT").decision.permit
