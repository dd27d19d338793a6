"""``engine.transfer.store``: the one-statement look-up before the rules, the rows an accepted
transfer is written as, and the relationship each transfer gives its hospital."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from audit import AuditEntry
from audit.tables import AuditRow
from consent.policy import load
from engine.gate import gather_facts
from engine.identity import patients_of, people_with_nhs_number
from engine.transfer import signature
from engine.transfer import store as transfers
from engine.transfer.message import header_of
from engine.transfer.tables import MESSAGES, STATUS, TRANSFERS
from engine.transfer.take import take
from tests.api.conftest import NHS, Store, Token
from tests.api.test_transfer import acknowledgement, discharge, send, sent_transfer
from tests.api.transfers import (
    CARE_HOME,
    HOSPITAL,
    OTHER_HOSPITAL,
    home,
    keys,
    signed,
    unsigned,
)

__all__ = ["home", "keys"]  # fixtures shared with the other transfer tests


def test_parties_names_the_stored_copy_the_key_and_each_known_kind(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    doc = signed(unsigned(), keys[CARE_HOME])
    with store.engine.connect() as conn:
        before = transfers.parties(conn, header_of(doc), NHS)
        unknown = transfers.parties(conn, header_of(unsigned(to="R0NE")), "9999999999")
        (person,) = people_with_nhs_number(conn, NHS)
        patients = tuple(patients_of(conn, person))
    assert patients
    assert before == transfers.Parties(
        None, signature.public_pem(keys[CARE_HOME]), {CARE_HOME: "care-home", HOSPITAL: "hospital"},
        (person,), patients, frozenset({"1950-03-01"}), frozenset({"Smith"}),
    )  # fmt: skip
    assert unknown.kinds == {CARE_HOME: "care-home"}
    assert (unknown.people, unknown.patients) == ((), ())
    answer = send(client, home, doc)
    assert answer.status_code == 200
    with store.engine.connect() as conn:
        after = transfers.parties(conn, header_of(doc), NHS)
    h = header_of(doc)
    assert after.found == transfers.Stored(
        CARE_HOME, transfers.message_hash(doc), answer.content, person, NHS, h.id
    )


def test_an_accepted_transfer_is_written_at_received_with_both_first_steps(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    assert send(client, home, signed(unsigned(), keys[CARE_HOME])).status_code == 200
    with store.engine.connect() as conn:
        status = conn.execute(select(TRANSFERS.c.status)).scalar_one()
        steps = conn.execute(
            select(STATUS.c.status, STATUS.c.org, STATUS.c.user_id).order_by(STATUS.c.id)
        ).all()
    assert status == "received"
    assert [tuple(s) for s in steps] == [
        ("sent", CARE_HOME, "u-nurse"), ("received", HOSPITAL, "scr")
    ]  # fmt: skip


def test_each_transfer_is_one_stay_from_receipt_to_its_discharge(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token,
) -> None:  # fmt: skip
    doctor = token("ae-doctor")
    ids = []
    for to in (HOSPITAL, OTHER_HOSPITAL):
        ids.append(sent_transfer(client, home, keys, to=to))
    closing = signed(discharge(ids[0]), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, closing).status_code == 200
    again = signed(discharge(ids[0]), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, again).status_code == 422  # a stay is discharged once
    with store.engine.begin() as conn:
        (person,) = people_with_nhs_number(conn, NHS)
        steps = conn.execute(
            select(STATUS.c.transfer_id, STATUS.c.status, STATUS.c.at).order_by(STATUS.c.id)
        ).all()
        facts = gather_facts(conn, person, tuple(patients_of(conn, person)), load())
    stays = [r for r in facts.relationships if r.kind == "transfer"]
    at = {(step.transfer_id, step.status): step.at for step in steps}
    assert [s.status for s in steps].count("discharged") == 1
    expected = {HOSPITAL: ids[0], OTHER_HOSPITAL: ids[1]}
    assert sorted(s.org for s in stays) == sorted(expected)  # one per transfer
    assert {(s.org, s.kind, s.start, s.end) for s in stays} == {
        (HOSPITAL, "transfer", at[(ids[0], "received")], at[(ids[0], "discharged")]),
        (OTHER_HOSPITAL, "transfer", at[(ids[1], "received")], None),
    }


@pytest.mark.parametrize(
    ("winner", "status"),
    [(acknowledgement, "acknowledged"), (discharge, "discharged")],
    ids=["acknowledged", "discharged"],
)
def test_an_acknowledgement_that_lost_the_race_keeps_nothing_and_says_where_it_stands(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, winner: Any, status: str,
) -> None:  # fmt: skip
    """Past the rules, only the conditional update stands between two messages moving the same
    transfer on: the loser's message is not kept, and it learns the status that beat it."""
    transfer_id = sent_transfer(client, home, keys)
    first = send(client, token("ae-doctor"), signed(winner(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert first.status_code == 200, first.text
    with store.engine.connect() as conn:
        (person,) = people_with_nhs_number(conn, NHS)
        kept = conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one()
    late = transfers.Accepted(
        header=header_of(acknowledgement(transfer_id)), raw=b"{}", content_hash="late",
        response=b"{}", person_id=person, patient_id="late", nhs_number=NHS,
        transfer_id=transfer_id, user_id="u-ae-doctor",
    )  # fmt: skip
    with store.engine.connect() as conn:
        trail = conn.execute(select(func.count()).select_from(AuditRow)).scalar_one()
    entry = AuditEntry(request_id="late", action="transfer-acknowledge", outcome="permit",
                       user_id="u-ae-doctor", user_name="", role_code="", profile="clinical",
                       org=HOSPITAL, purpose="TREAT", rules=("transfer.accepted",))  # fmt: skip
    with pytest.raises(transfers.Closed) as lost:
        take(store.engine, late, datetime.now(UTC), entry)
    assert lost.value.status == status
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one() == kept
        # nor its audit entry: the acceptance it would have recorded did not happen
        assert conn.execute(select(func.count()).select_from(AuditRow)).scalar_one() == trail
        steps = conn.execute(select(STATUS.c.status)).scalars().all()
    assert sorted(steps) == sorted(["sent", "received", status])


#: A resident who went in often: (hospital, received days ago, discharged days ago), None for
#: a step not taken; a receipt a host stamped ahead of now; a discharge with no receipt.
_OFTEN = [
    (HOSPITAL, 400, 390), (HOSPITAL, 200, 190), (HOSPITAL, 50, 40), (HOSPITAL, 300, None),
    (HOSPITAL, 20, None), (HOSPITAL, -1, None), (OTHER_HOSPITAL, 100, 99),
    (OTHER_HOSPITAL, 95, None), (OTHER_HOSPITAL, None, 1),
]  # fmt: skip


def test_each_of_a_residents_many_stays_comes_to_the_policy_as_it_stands(store: Store) -> None:
    """However often a resident went in, each stay is one relationship, from its receipt to
    its discharge (none: a transfer with no receipt), at every hospital: found by probing each
    transfer's steps, not by a join of every transfer with every step (forty stays had made
    the policy's facts twice as costly). A review showed that standing a hospital's stays in
    by its latest open one and its last discharge decides otherwise once a receipt is in the
    future (a host's clock ahead) or missing, so each stays itself."""
    now = datetime.now(UTC)
    day = timedelta(days=1)
    with store.engine.begin() as conn:
        (person,) = people_with_nhs_number(conn, NHS)
        for n, (hospital, received, discharged) in enumerate(_OFTEN):
            conn.execute(TRANSFERS.insert(), {
                "id": f"stay-{n}", "care_home": CARE_HOME, "hospital": hospital,
                "person_id": person, "nhs_number": NHS,
                "status": "received" if discharged is None else "discharged", "updated_at": now,
            })  # fmt: skip
            steps = [("received", received), ("discharged", discharged)]
            for status, ago in ((s, a) for s, a in steps if a is not None):
                conn.execute(STATUS.insert(), {
                    "transfer_id": f"stay-{n}", "status": status, "org": hospital,
                    "user_id": "scr", "at": now - ago * day,
                })  # fmt: skip
        facts = gather_facts(conn, person, tuple(patients_of(conn, person)), load())
    stays = [(r.org, r.start, r.end) for r in facts.relationships if r.kind == "transfer"]
    expected = [
        (h, None if r is None else now - r * day, None if d is None else now - d * day)
        for h, r, d in _OFTEN
    ]
    assert sorted(stays, key=str) == sorted(expected, key=str)


def test_a_transfer_racing_a_message_for_its_header_id_waits_without_holding_the_trail(
    store: Store, home: str
) -> None:
    """PostgreSQL writes a care-home transfer's rows in the statement that appends its entry,
    and an acknowledgement or a discharge writes its message and then appends: were the
    transfer to lock the trail's head before its rows, two messages with one header id at the
    same instant, one of each kind, would each wait for the other (the database ends that after
    a second by failing one, the trail held all the while). Its rows come first: it waits for
    the other message, which appends and commits, and then it is the one that lost the id."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the store's write lock first for every message")
    with store.engine.connect() as conn:
        (person,) = people_with_nhs_number(conn, NHS)
    h = header_of(unsigned())
    accepted = transfers.Accepted(
        header=h, raw=b"{}", content_hash="first", response=b"{}", person_id=person,
        patient_id="p", nhs_number=NHS, transfer_id=h.id, user_id="u-nurse",
    )  # fmt: skip
    entry = AuditEntry(request_id="race", action="transfer-receive", outcome="permit",
                       user_id="u-nurse", user_name="", role_code="", profile="care-home",
                       org=CARE_HOME, purpose="TREAT", rules=("transfer.accepted",))  # fmt: skip
    lost: list[BaseException] = []

    def transfer() -> None:
        try:
            take(store.engine, accepted, datetime.now(UTC), entry)
        except BaseException as exc:  # the test reads what it was
            lost.append(exc)

    with store.engine.connect() as rival:  # as append_within: its message first, then the head
        rival.execute(MESSAGES.insert(), {
            "header_id": h.id, "transfer_id": h.id, "event": "transfer-acknowledgement",
            "sender": HOSPITAL, "destination": CARE_HOME, "person_id": person,
            "nhs_number": NHS, "content_hash": "other", "raw": b"{}", "response": b"{}",
            "received_at": datetime.now(UTC),
        })  # fmt: skip
        racing = threading.Thread(target=transfer)
        racing.start()
        time.sleep(0.3)  # the transfer is now waiting for the rival's header id
        rival.execute(text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))
        rival.commit()
        racing.join(10)
    assert not racing.is_alive()
    assert [type(e) for e in lost] == [transfers.Taken]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(TRANSFERS)).scalar_one() == 0
