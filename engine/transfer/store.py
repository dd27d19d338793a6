"""Reads and the one write of a red-bag message: everything it changes, in one transaction.

Accepting a transfer stores the message byte-exact, opens the transfer in the hospital's inbox
with its first steps (``sent``, ``received``); the hospital's ``transfer`` relationship with the
person follows from those steps (:func:`stays`, read inside ``engine.gate.gather_facts``). An
acknowledgement moves the transfer on (``acknowledged``) and a discharge closes it
(``discharged``). The message header id is the primary key, so a concurrent duplicate fails the
insert and is answered from what the first one stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)

from engine.canonical import dumps
from engine.db import one_of, probe_each
from engine.directory import D
from engine.identity.index import HOLDERS, holders, merged_in, merged_people
from engine.models import Resource
from engine.transfer.message import Header
from engine.transfer.tables import KEYS, MESSAGES, STATUS, TRANSFERS

#: The steps of a transfer, in the order they happen.
STEPS = ("sent", "received", "acknowledged", "discharged", "returned")
#: The steps at which the hospital still has the resident: a discharge closes the stay once.
OPEN = ("received", "acknowledged")
R = cast(Table, Resource.__table__)
#: event → (the statuses a message of that event moves a transfer on from, the status it moves
#: it to), for the events that name a transfer: a transfer is acknowledged once, on receipt.
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "hospital-discharge": (OPEN, "discharged"),
    "transfer-acknowledgement": (("received",), "acknowledged"),
}


def message_hash(doc: dict[str, Any]) -> str:
    """The hash a resubmission is compared by: the content, not its whitespace nor its
    signature (a sender that re-signs the same message is resending it)."""
    return hashlib.sha256(dumps({k: v for k, v in doc.items() if k != "signature"})).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    """A message kept under its header id: what a resubmission is answered and audited with."""

    sender: str
    content_hash: str
    response: bytes
    person_id: str
    nhs_number: str
    transfer_id: str


#: The columns :class:`Stored` is made of, in order.
_STORED = ("sender", "content_hash", "response", "person_id", "nhs_number", "transfer_id")


def stored(conn: Connection, header_id: str) -> Stored | None:
    row = conn.execute(
        select(*(MESSAGES.c[c] for c in _STORED)).where(MESSAGES.c.header_id == header_id)
    ).first()
    return Stored(*row) if row else None


def sender_key(conn: Connection, org: str) -> str | None:
    return conn.execute(select(KEYS.c.public_key).where(KEYS.c.org == org)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Parties:
    """What one round trip says about a message before any rule runs."""

    #: The message already stored under its header id, if any.
    found: Stored | None
    #: The sender's registered public key (PEM), if any.
    sender_key: str | None
    #: organisation code → kind, for the sender and the destination the directory holds.
    kinds: dict[str, str]
    #: The people holding the message's NHS number, and the Patients of the one who does.
    people: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    #: The birth dates and family names those Patients hold (:func:`demographics`).
    born: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()


def _one(column: Any, where: Any) -> Any:
    return select(column).where(where).scalar_subquery()


_MESSAGE = MESSAGES.c.header_id == bindparam("header_id")
_LIVE_PATIENT = (R.c.resource_type == "Patient", R.c.status == "active")
#: One row, to which the holders (none or more) are joined.
_ROW = select(literal_column("1").label("one")).subquery("one")
#: Built once: a statement made per call costs more CPU than its round trip saves. One row per
#: holder of the NHS number (and Patient), or one row when no one holds it, each carrying the
#: single-valued look-ups (computed once: they do not depend on the row).
_PARTIES = (
    select(
        *(_one(MESSAGES.c[c], _MESSAGE).label(f"stored_{c}") for c in _STORED),
        _one(KEYS.c.public_key, KEYS.c.org == bindparam("sender")).label("key"),
        _one(D.c.kind, D.c.code == bindparam("sender")).label("sender_kind"),
        _one(D.c.kind, D.c.code == bindparam("destination")).label("destination_kind"),
        HOLDERS.c.person_id, HOLDERS.c.merged_into, HOLDERS.c.patient_id,
        _one(R.c.body, and_(R.c.id == HOLDERS.c.patient_id, *_LIVE_PATIENT)).label("body"),
    )
    .select_from(_ROW.outerjoin(HOLDERS, true()))
    .order_by(HOLDERS.c.person_id, HOLDERS.c.patient_id)
)  # fmt: skip


def parties(conn: Connection, header: Header, nhs_number: str | None) -> Parties:
    """The stored message with this header id, the sender's key, both parties' kinds and the
    people holding ``nhs_number`` with the Patients of the one who does and what they say of
    the person, in one statement: each message needs all of them (or, resubmitted, the first
    alone). Only Patients reached through a merge are read apart."""
    params = {"header_id": header.id, "sender": header.sender, "destination": header.destination,
              "nhs_number": nhs_number}  # fmt: skip
    rows = conn.execute(_PARTIES, params).all()
    row = rows[0]
    kept = [row._mapping[f"stored_{c}"] for c in _STORED]
    found = Stored(*kept) if kept[0] is not None else None
    kinds = {
        org: kind
        for org, kind in ((header.sender, row.sender_kind),
                          (header.destination, row.destination_kind))
        if kind is not None
    }  # fmt: skip
    if found is not None:
        return Parties(found, row.key, kinds)
    people, patients = holders(conn, rows)
    listed = {r.patient_id for r in rows}
    bodies = [r.body for r in rows if r.body is not None and r.patient_id in patients]
    if unlisted := [p for p in patients if p not in listed]:
        bodies += conn.execute(_bodies_query(conn.dialect.name), {"ids": unlisted}).scalars()
    born, families = demographics(bodies)
    return Parties(None, row.key, kinds, people, tuple(patients), born, families)


@cache
def _bodies_query(dialect: str) -> Select[Any]:
    return select(R.c.body).where(one_of(R.c.id, "ids", dialect), *_LIVE_PATIENT)


def demographics(bodies: Iterable[bytes]) -> tuple[frozenset[str], frozenset[str]]:
    """The birth dates and family names the record's Patients hold for one person, from every
    source (entered-in-error ones left out), to check a message's Patient against."""
    born: set[str] = set()
    families: set[str] = set()
    for raw in bodies:
        body = orjson.loads(raw)
        if isinstance(body.get("birthDate"), str):
            born.add(body["birthDate"])
        families |= {n["family"] for n in body.get("name", []) if isinstance(n.get("family"), str)}
    return frozenset(born), frozenset(families)


def register_key(conn: Connection, org: str, public_pem: str, by: str, now: datetime) -> None:
    """The organisation's signing key from now on; the key it replaces stops verifying."""
    values = {"public_key": public_pem, "registered_at": now, "registered_by": by}
    done = conn.execute(update(KEYS).where(KEYS.c.org == org).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(KEYS).values(org=org, **values))


def register_first(conn: Connection, org: str, public_pem: str, by: str, now: datetime) -> None:
    """Register ``public_pem`` for ``org`` if no key is registered for it: ``IntegrityError``
    if one is (the first registration wins; a key is never replaced here)."""
    values = {"public_key": public_pem, "registered_at": now, "registered_by": by}
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


@cache
def _named(dialect: str) -> Select[Any]:
    """The transfer bound as ``transfer_id`` and whether it is of the person bound as
    ``person_id`` or of one since merged into them: the read a message naming a transfer makes
    anyway, so the answer costs no round trip. Built once per dialect, as every such message
    asks it."""
    theirs = TRANSFERS.c.person_id.in_(merged_people(dialect))
    return select(TRANSFERS, theirs.label("theirs")).where(
        TRANSFERS.c.id == bindparam("transfer_id")
    )


def named(
    conn: Connection, transfer_id: str, person_id: str | None
) -> tuple[TransferRow, bool] | None:
    """The transfer a discharge or an acknowledgement names, and whether it is ``person_id``'s.
    A row keeps the person id of its day: after a merge that id is the survivor's through
    ``merged_into`` (as a stay is, :func:`stays`), and a split moves the row to the group holding
    its NHS number (``engine.identity.workset``), so the row's id alone refused a merged
    person's discharge. ``None`` for ``person_id`` (no one, or more than one, holds the
    number) makes it no one's."""
    params = {"transfer_id": transfer_id, "person_id": person_id}
    row = conn.execute(_named(conn.dialect.name), params).first()
    return (TransferRow(*row[:-1]), bool(row.theirs)) if row else None


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


@cache
def _stays_of(dialect: str) -> Select[Any]:
    """Every stay of the person bound as ``person_id`` (or of one since merged into them), a
    row for each of its steps, newest first; built once per dialect. Each stay's steps are
    probed by index too (``probe_each``): joined, PostgreSQL with no statistics read every step
    in the store."""
    stay = (TRANSFERS.c.id, TRANSFERS.c.care_home, TRANSFERS.c.hospital, TRANSFERS.c.status,
            TRANSFERS.c.updated_at)  # fmt: skip
    steps = select(STATUS.c.status.label("step"), STATUS.c.org, STATUS.c.at,
                   STATUS.c.id.label("step_id"))  # fmt: skip
    each = probe_each(steps, STATUS.c.transfer_id, TRANSFERS, dialect, keep=stay)
    query = merged_in(each, TRANSFERS.c.person_id, dialect)
    c = query.selected_columns
    return query.order_by(c.updated_at.desc(), c.id, c.step_id)


def stays_of(conn: Connection, person_id: str) -> list[Stay]:
    """Every transfer of the person (or of one since merged into them) with its steps, newest
    first, in one query."""
    rows = conn.execute(_stays_of(conn.dialect.name), {"person_id": person_id}).all()
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


def opening_messages(conn: Connection, transfer_ids: list[str]) -> dict[str, bytes]:
    """Transfer id → the raw care-home message that opened it, for many transfers at once."""
    rows = conn.execute(
        select(MESSAGES.c.transfer_id, MESSAGES.c.raw).where(
            MESSAGES.c.transfer_id.in_(transfer_ids), MESSAGES.c.event == "care-home-transfer"
        )
    )
    return {r.transfer_id: r.raw for r in rows}


#: Built once: a statement built per call has its cache key worked out again each time, and
#: on SQLite these run while every other writer waits (``engine.db.durable_write``).
_ADD_MESSAGE = insert(MESSAGES)
_ADD_TRANSFER = insert(TRANSFERS)
_ADD_STEP = insert(STATUS)


def step(
    conn: Connection, transfer_id: str, froms: tuple[str, ...], to: str, org: str,
    user_id: str, now: datetime,
) -> None:  # fmt: skip
    """Move a transfer on from one of ``froms`` to ``to`` with a conditional update, so that of
    two racing to move it from the same status only one does; the other raises :class:`Closed`
    with the status it found, and the caller's transaction keeps nothing of it."""
    moved = conn.execute(
        update(TRANSFERS)
        .where(TRANSFERS.c.id == transfer_id, TRANSFERS.c.status.in_(froms))
        .values(status=to, updated_at=now)
    )
    if moved.rowcount != 1:
        status = conn.execute(
            select(TRANSFERS.c.status).where(TRANSFERS.c.id == transfer_id)
        ).scalar_one()
        raise Closed(transfer_id, status)
    conn.execute(_ADD_STEP, {"transfer_id": transfer_id, "status": to, "org": org,
                             "user_id": user_id, "at": now})  # fmt: skip


class Taken(Exception):
    """Another message took this header id (or its transfer id) while this one was checked: a
    resubmission racing the first, or a conflict."""

    def __init__(self, header_id: str) -> None:
        super().__init__(f"message {header_id} was received meanwhile")


class Closed(Exception):
    """A step lost the race to another that moved the same transfer on since it was read (two
    discharges, two acknowledgements by message or by hand, a discharge before an
    acknowledgement)."""

    def __init__(self, transfer_id: str, status: str) -> None:
        super().__init__(f"transfer {transfer_id} is {status}")
        self.status = status


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


def _first(status: str) -> Any:
    """When the transfer in the enclosing row first reached ``status``: a probe of the steps'
    index for that one transfer, whatever the planner thinks of the tables' sizes."""
    return (
        select(func.min(STATUS.c.at))
        .where(STATUS.c.transfer_id == TRANSFERS.c.id, STATUS.c.status == status)
        .scalar_subquery()
    )


@cache
def stays(dialect: str) -> Select[Any]:
    """Each hospital's ``transfer`` relationship with the person (or one since merged into
    them): from receipt, ended by its discharge; the policy's ``transfer`` window
    (mappings/policy/rules.json) says how long it holds after that, as for any windowed
    relationship. One row per transfer, its steps probed by index (``_first``): a join of every
    transfer with every step, grouped, had the planner scan both tables whole while they had no
    statistics, and made a resident's forty stays cost the policy's facts twice over."""
    return merged_in(select(
        TRANSFERS.c.hospital, _first("received").label("received"),
        _first("discharged").label("discharged"),
    ), TRANSFERS.c.person_id, dialect)  # fmt: skip


def accept(conn: Connection, a: Accepted, now: datetime) -> None:
    """Take a message in (the caller's transaction); a duplicate header id fails the insert.

    A transfer is inserted at its latest step with both first steps at once, rather than
    stepped through :func:`step`: the same rows in half the statements.
    """
    h = a.header
    conn.execute(_ADD_MESSAGE, {
        "header_id": h.id, "transfer_id": a.transfer_id, "event": h.event, "sender": h.sender,
        "destination": h.destination, "person_id": a.person_id, "nhs_number": a.nhs_number,
        "content_hash": a.content_hash, "raw": a.raw, "response": a.response,
        "received_at": now,
    })  # fmt: skip
    if h.event in MOVES:
        froms, to = MOVES[h.event]
        step(conn, a.transfer_id, froms, to, h.sender, a.user_id, now)
        return
    conn.execute(_ADD_TRANSFER, {
        "id": a.transfer_id, "care_home": h.sender, "hospital": h.destination,
        "person_id": a.person_id, "nhs_number": a.nhs_number, "status": "received",
        "updated_at": now,
    })  # fmt: skip
    conn.execute(
        _ADD_STEP,
        [
            {"transfer_id": a.transfer_id, "status": "sent", "org": h.sender,
             "user_id": a.user_id, "at": now},
            {"transfer_id": a.transfer_id, "status": "received", "org": h.destination,
             "user_id": "scr", "at": now},
        ],
    )  # fmt: skip
