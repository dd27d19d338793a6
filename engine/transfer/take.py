"""Storing an accepted message with its audit entry, in one durable transaction.

The message, what it does to its transfer and the entry that records its acceptance commit
together or not at all (``audit.append_within``): a message that loses a race for its header
id, or for its transfer's next step, leaves neither, and its own refusal or resubmission is
audited instead. The commit is on disk before the response is sent (``engine.db.durable_write``).

On PostgreSQL a care-home transfer (the message, the transfer, its ``sent`` and ``received``
steps) is one statement of data-modifying CTEs: the same rows as ``store.accept`` in one
statement instead of three. A discharge or an acknowledgement takes ``store.accept``: it must
see that its conditional update moved the transfer on before the message is kept. SQLite has no
data-modifying CTEs, so there every message takes ``store.accept``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, LargeBinary, bindparam, text

from audit import AuditEntry, append_within
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


def take(engine: Engine, a: store.Accepted, now: datetime, entry: AuditEntry) -> None:
    """Keep ``a`` and append ``entry`` atomically; a duplicate header id raises
    ``IntegrityError`` and a message whose transfer another moved on meanwhile raises
    ``store.Closed``, keeping neither."""
    h = a.header
    with durable_write(engine) as conn:
        if engine.dialect.name == "postgresql" and h.event == "care-home-transfer":
            conn.execute(_TRANSFER, {
                "header_id": h.id, "transfer_id": a.transfer_id, "event": h.event,
                "sender": h.sender, "destination": h.destination, "person_id": a.person_id,
                "nhs_number": a.nhs_number, "content_hash": a.content_hash, "raw": a.raw,
                "response": a.response, "now": now, "user_id": a.user_id,
            })  # fmt: skip
        else:
            store.accept(conn, a, now)
        append_within(conn, [entry])
