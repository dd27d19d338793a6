"""Storing an accepted message with its audit entry, in one durable transaction.

The message, what it does to its transfer and the entry that records its acceptance commit
together or not at all: a message that loses a race for its header id, or for its transfer's
next step, leaves neither, and its own refusal or resubmission is audited instead. The commit is
on disk before the response is sent.

On PostgreSQL a care-home transfer (the message, the transfer, its ``sent`` and ``received``
steps) is data-modifying CTEs in the very statement that appends its entry, committed on its
own (``audit.commit_with``): the audit head is locked only while the database works. A
discharge or an acknowledgement takes ``store.accept`` inside ``engine.db.durable_write`` (with
``audit.append_within``): it must see that its conditional update moved the transfer on before
the message is kept. SQLite has no data-modifying CTEs, so there every message takes
``store.accept``.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from audit import AuditEntry, append_within, commit_with
from engine.db import durable_write
from engine.transfer import store

#: The rows ``store.accept`` writes for a transfer, with the same values, as data-modifying
#: statements for ``audit.commit_with``: one statement with the entry that records them.
_TRANSFER = {
    "message": "INSERT INTO transfer_message (header_id, transfer_id, event, sender, "
    "destination, person_id, nhs_number, content_hash, raw, response, received_at) VALUES "
    "(%(header_id)s, %(transfer_id)s, %(event)s, %(sender)s, %(destination)s, %(person_id)s, "
    "%(nhs_number)s, %(content_hash)s, %(raw)s, %(response)s, %(now)s) RETURNING 1",
    "stay": "INSERT INTO transfer (id, care_home, hospital, person_id, nhs_number, status, "
    "updated_at) VALUES (%(transfer_id)s, %(sender)s, %(destination)s, %(person_id)s, "
    "%(nhs_number)s, 'received', %(now)s) RETURNING 1",
    "steps": "INSERT INTO transfer_status (transfer_id, status, org, user_id, at) VALUES "
    "(%(transfer_id)s, 'sent', %(sender)s, %(user_id)s, %(now)s), "
    "(%(transfer_id)s, 'received', %(destination)s, 'scr', %(now)s) RETURNING 1",
}


def take(engine: Engine, a: store.Accepted, now: datetime, entry: AuditEntry) -> None:
    """Keep ``a`` and append ``entry`` atomically. A header id another message took meanwhile
    raises ``store.Taken``; a message whose transfer another moved on meanwhile raises
    ``store.Closed``; neither keeps anything."""
    h = a.header
    if engine.dialect.name == "postgresql" and h.event == "care-home-transfer":
        row = {
            "header_id": h.id, "transfer_id": a.transfer_id, "event": h.event,
            "sender": h.sender, "destination": h.destination, "person_id": a.person_id,
            "nhs_number": a.nhs_number, "content_hash": a.content_hash, "raw": a.raw,
            "response": a.response, "now": now, "user_id": a.user_id,
        }  # fmt: skip
        raw = engine.raw_connection()
        try:
            commit_with(raw, _TRANSFER, row, [entry])
        except psycopg.IntegrityError as exc:
            raise store.Taken(h.id) from exc
        finally:
            raw.close()
        return
    try:
        with durable_write(engine) as conn:
            store.accept(conn, a, now)
            append_within(conn, [entry])
    except IntegrityError as exc:
        raise store.Taken(h.id) from exc
