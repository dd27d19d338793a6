"""Reads and the one write of a red-bag message: everything it changes, in one transaction.

Accepting a transfer stores the message byte-exact, opens the transfer in the hospital's inbox
with its first steps (``sent``, ``received``); the hospital's ``transfer`` relationship with the
person follows from those steps (``hospital_stays``, read by ``engine.gate.gather_facts``). A
discharge closes the transfer (``discharged``). The message header id is the primary key, so
a concurrent duplicate fails the insert and is answered from what the first one stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from consent import Relationship
from engine.canonical import dumps
from engine.transfer.message import Header
from engine.transfer.tables import KEYS, MESSAGES, STATUS, TRANSFERS

#: The steps of a transfer, in the order they happen.
STEPS = ("sent", "received", "acknowledged", "discharged", "returned")


def message_hash(doc: dict[str, Any]) -> str:
    """The hash a resubmission is compared by: the content, not its whitespace nor its
    signature (a sender that re-signs the same message is resending it)."""
    return hashlib.sha256(dumps({k: v for k, v in doc.items() if k != "signature"})).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    sender: str
    content_hash: str
    response: bytes


def stored(conn: Connection, header_id: str) -> Stored | None:
    row = conn.execute(
        select(MESSAGES.c.sender, MESSAGES.c.content_hash, MESSAGES.c.response).where(
            MESSAGES.c.header_id == header_id
        )
    ).first()
    return Stored(row.sender, row.content_hash, row.response) if row else None


def sender_key(conn: Connection, org: str) -> str | None:
    return conn.execute(select(KEYS.c.public_key).where(KEYS.c.org == org)).scalar_one_or_none()


def register_key(conn: Connection, org: str, public_pem: str, by: str, now: datetime) -> None:
    """The organisation's signing key from now on; the key it replaces stops verifying."""
    values = {"public_key": public_pem, "registered_at": now, "registered_by": by}
    done = conn.execute(update(KEYS).where(KEYS.c.org == org).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(KEYS).values(org=org, **values))


@dataclass(frozen=True, slots=True)
class TransferRow:
    id: str
    care_home: str
    hospital: str
    person_id: str
    nhs_number: str
    status: str
    updated_at: datetime


def transfer(conn: Connection, transfer_id: str) -> TransferRow | None:
    row = conn.execute(select(TRANSFERS).where(TRANSFERS.c.id == transfer_id)).first()
    return TransferRow(*row) if row else None


def transfers_of(conn: Connection, org: str) -> list[TransferRow]:
    """The transfers an organisation sent or received, newest first."""
    rows = conn.execute(
        select(TRANSFERS)
        .where(or_(TRANSFERS.c.care_home == org, TRANSFERS.c.hospital == org))
        .order_by(TRANSFERS.c.updated_at.desc(), TRANSFERS.c.id)
    )
    return [TransferRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Step:
    status: str
    org: str
    user_id: str
    at: datetime


def history(conn: Connection, transfer_id: str) -> list[Step]:
    rows = conn.execute(
        select(STATUS.c.status, STATUS.c.org, STATUS.c.user_id, STATUS.c.at)
        .where(STATUS.c.transfer_id == transfer_id)
        .order_by(STATUS.c.id)
    )
    return [Step(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Stay:
    """A transfer as the person's combined record shows it: the two organisations, where it
    stands, and each step's (status, organisation, time); no user and no message content."""

    id: str
    care_home: str
    hospital: str
    status: str
    steps: tuple[tuple[str, str, datetime], ...]


def stays_of(conn: Connection, person_id: str) -> list[Stay]:
    """Every transfer of the person with its steps, newest first, in one query."""
    rows = conn.execute(
        select(TRANSFERS.c.id, TRANSFERS.c.care_home, TRANSFERS.c.hospital, TRANSFERS.c.status,
               STATUS.c.status.label("step"), STATUS.c.org, STATUS.c.at)
        .join(STATUS, STATUS.c.transfer_id == TRANSFERS.c.id)
        .where(TRANSFERS.c.person_id == person_id)
        .order_by(TRANSFERS.c.updated_at.desc(), TRANSFERS.c.id, STATUS.c.id)
    ).all()  # fmt: skip
    stays: dict[str, Stay] = {}
    for r in rows:
        found = stays.get(r.id) or Stay(r.id, r.care_home, r.hospital, r.status, ())
        stays[r.id] = replace(found, steps=(*found.steps, (r.step, r.org, r.at)))
    return list(stays.values())


def messages_of(conn: Connection, transfer_id: str) -> list[tuple[str, bytes]]:
    """(event, raw bytes) of each message of a transfer, in the order received."""
    rows = conn.execute(
        select(MESSAGES.c.event, MESSAGES.c.raw)
        .where(MESSAGES.c.transfer_id == transfer_id)
        .order_by(MESSAGES.c.received_at, MESSAGES.c.header_id)
    )
    return [(r.event, r.raw) for r in rows]


def add_step(
    conn: Connection, transfer_id: str, status: str, org: str, user_id: str, now: datetime
) -> None:
    conn.execute(
        insert(STATUS).values(transfer_id=transfer_id, status=status, org=org, user_id=user_id,
                              at=now)
    )  # fmt: skip
    conn.execute(
        update(TRANSFERS).where(TRANSFERS.c.id == transfer_id).values(status=status, updated_at=now)
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message that passed every rule, with what the store needs to take it in."""

    header: Header
    raw: bytes
    content_hash: str
    response: bytes
    person_id: str
    patient_id: str
    nhs_number: str
    transfer_id: str
    user_id: str


def hospital_stays(conn: Connection, person_id: str) -> tuple[Relationship, ...]:
    """Each hospital's ``transfer`` relationship with the person: from receipt, ended by its
    discharge; the policy's ``transfer`` window (mappings/policy/rules.json) says how long it
    holds after that, as for any windowed relationship."""
    rows = conn.execute(
        select(TRANSFERS.c.id, TRANSFERS.c.hospital, STATUS.c.status, STATUS.c.at)
        .join(STATUS, STATUS.c.transfer_id == TRANSFERS.c.id)
        .where(TRANSFERS.c.person_id == person_id, STATUS.c.status.in_(("received", "discharged")))
        .order_by(TRANSFERS.c.id, STATUS.c.id)
    ).all()
    steps: dict[str, dict[str, datetime]] = {}
    hospital: dict[str, str] = {}
    for row in rows:
        hospital[row.id] = row.hospital
        steps.setdefault(row.id, {}).setdefault(row.status, row.at)
    return tuple(
        Relationship(org=hospital[t], kind="transfer", start=at.get("received"),
                     end=at.get("discharged"))
        for t, at in steps.items()
    )  # fmt: skip


def accept(conn: Connection, a: Accepted, now: datetime) -> None:
    """Take a message in (the caller's transaction); a duplicate header id fails the insert."""
    h = a.header
    conn.execute(
        insert(MESSAGES).values(
            header_id=h.id, transfer_id=a.transfer_id, event=h.event, sender=h.sender,
            destination=h.destination, person_id=a.person_id, nhs_number=a.nhs_number,
            content_hash=a.content_hash, raw=a.raw, response=a.response, received_at=now,
        )
    )  # fmt: skip
    if h.event == "care-home-transfer":
        conn.execute(
            insert(TRANSFERS).values(
                id=a.transfer_id, care_home=h.sender, hospital=h.destination,
                person_id=a.person_id, nhs_number=a.nhs_number, status="sent", updated_at=now,
            )
        )  # fmt: skip
        add_step(conn, a.transfer_id, "sent", h.sender, a.user_id, now)
        add_step(conn, a.transfer_id, "received", h.destination, "scr", now)
    else:
        add_step(conn, a.transfer_id, "discharged", h.sender, a.user_id, now)
