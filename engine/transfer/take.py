"""Storing an accepted message, in as few statements as the database allows.

On PostgreSQL a care-home transfer (the message, the transfer, its ``sent`` and ``received``
steps) is one statement of data-modifying CTEs in autocommit: a single statement is atomic, so
a duplicate header id fails it whole and nothing is kept, as in a transaction, at about a third
of the CPU (one statement instead of three and a BEGIN and a COMMIT, each about 0.1–0.2 ms of
SQLAlchemy and psycopg). A discharge or an acknowledgement stays a transaction
(``store.accept``): it must see that its conditional update moved the transfer on before the
message is kept. SQLite has no data-modifying CTEs, so there every message takes the
transaction. Either way the message is on disk before its response is sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, LargeBinary, bindparam, text

from engine.db import durable_write
from engine.models import UtcDateTime
from engine.transfer import store

#: Built once; the rows ``store.accept`` writes for a transfer, with the same values.
_TRANSFER = text(
    "WITH message AS (INSERT INTO transfer_message (header_id, transfer_id, event, sender, "
    "destination, person_id, nhs_number, content_hash, raw, response, received_at) VALUES "
    "(:header_id, :transfer_id, :event, :sender, :destination, :person_id, :nhs_number, "
    ":content_hash, :raw, :response, :now)), "
    "stay AS (INSERT INTO transfer (id, care_home, hospital, person_id, nhs_number, status, "
    "updated_at) VALUES (:transfer_id, :sender, :destination, :person_id, :nhs_number, "
    "'received', :now)) "
    "INSERT INTO transfer_status (transfer_id, status, org, user_id, at) VALUES "
    "(:transfer_id, 'sent', :sender, :user_id, :now), "
    "(:transfer_id, 'received', :destination, 'scr', :now)"
).bindparams(
    bindparam("raw", type_=LargeBinary()),
    bindparam("response", type_=LargeBinary()),
    bindparam("now", type_=UtcDateTime()),
)


def take(engine: Engine, a: store.Accepted, now: datetime) -> None:
    """Keep ``a`` atomically; a duplicate header id raises ``IntegrityError`` and keeps
    nothing, a message whose transfer another moved on meanwhile raises ``store.Closed``."""
    h = a.header
    if engine.dialect.name != "postgresql" or h.event != "care-home-transfer":
        with durable_write(engine) as conn:
            store.accept(conn, a, now)
        return
    params = {
        "header_id": h.id, "transfer_id": a.transfer_id, "event": h.event, "sender": h.sender,
        "destination": h.destination, "person_id": a.person_id, "nhs_number": a.nhs_number,
        "content_hash": a.content_hash, "raw": a.raw, "response": a.response, "now": now,
        "user_id": a.user_id,
    }  # fmt: skip
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(_TRANSFER, params)
