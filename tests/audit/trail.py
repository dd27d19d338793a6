"""Helpers for the audit tests: synthetic entries, a filled trail, and the attacker's tools.

"Tampering with the store directly" means what the database owner can do: drop the triggers
and edit rows. The chain and the checkpoints are what must catch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, Engine, text

import audit.writer
from audit.chain import link
from audit.entry import AuditEntry
from audit.storage import TRIGGERS, protect
from audit.writer import append_batch
from tests.factories import nhs_numbers


@contextmanager
def stamped(monkeypatch: pytest.MonkeyPatch, when: datetime) -> Iterator[None]:
    """Entries appended inside are stamped ``when``: by the writer's clock on SQLite, by the
    database's in the sealing statement on PostgreSQL."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return when

    held = f"CAST('{when.isoformat()}' AS timestamptz)"
    with monkeypatch.context() as m:
        m.setattr("audit.writer.datetime", Fixed)
        m.setattr("audit.writer._PG_SEAL", audit.writer._PG_SEAL.replace("clock_timestamp()", held))
        yield


def entry(n: int, **over: Any) -> AuditEntry:
    """The ``n``-th synthetic entry: a few users reading a few people's records."""
    numbers = nhs_numbers()
    nhs = [next(numbers) for _ in range(5)][n % 5]
    fields: dict[str, Any] = {
        "request_id": f"req-{n}",
        "action": "everything" if n % 3 else "search",
        "outcome": "deny" if n % 7 == 0 else "permit",
        "user_id": f"55555500{n % 4:04d}",
        "user_name": f"Synthetic user {n % 4}",
        "role_code": "S8000:G8000:R8000",
        "profile": "clinical",
        "org": "Y90011",
        "purpose": "TREAT",
        "rules": ("basis.relationship",),
        "policy_version": "test",
        "patient_id": f"patient-{n % 5}",
        "nhs_number": nhs,
        "disclosed": {"Observation": n % 11, "Condition": 2},
        "withheld": {"sensitive": 1} if n % 2 else {},
        "query": "identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhs,
        "client_address": "10.0.0.5",
        "user_agent": "scr-test/1",
    }
    fields.update(over)
    return AuditEntry(**fields)


def fill(engine: Engine, n: int, batch: int = 7) -> None:
    entries = [entry(i) for i in range(1, n + 1)]
    for start in range(0, n, batch):
        append_batch(engine, entries[start : start + batch])


@contextmanager
def as_owner(engine: Engine) -> Iterator[Connection]:
    """A transaction with the append-only triggers dropped, restored when it commits."""
    with engine.begin() as conn:
        for name in TRIGGERS[conn.dialect.name]:
            on = " ON audit_entry" if conn.dialect.name == "postgresql" else ""
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}{on}"))
        yield conn
        protect(conn)


def row(conn: Connection, seq: int) -> dict[str, Any]:
    found = conn.execute(text("SELECT * FROM audit_entry WHERE seq = :s"), {"s": seq}).one()
    return dict(found._mapping)


def insert(conn: Connection, values: dict[str, Any]) -> None:
    cols = ", ".join(values)
    conn.execute(
        text(f"INSERT INTO audit_entry ({cols}) VALUES ({', '.join(':' + c for c in values)})"),
        values,
    )


def rechain(conn: Connection, start: int) -> None:
    """What a careful attacker does after an edit: recompute every later hash, and the head."""
    prev = bytes(row(conn, start - 1)["hash"]) if start > 1 else bytes(32)
    rows = conn.execute(
        text("SELECT seq, body FROM audit_entry WHERE seq >= :s ORDER BY seq"), {"s": start}
    ).all()
    for seq, body in rows:
        digest = link(prev, bytes(body))
        conn.execute(
            text("UPDATE audit_entry SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": prev, "h": digest, "s": seq},
        )
        prev = digest
    conn.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


def rewrite(engine: Engine, seq: int) -> None:
    """A careful attacker with the owner's rights: entry ``seq`` names someone else as the
    user, and every later hash is recomputed, so the chain holds on its own."""
    with as_owner(engine) as conn:
        body = orjson.loads(row(conn, seq)["body"])
        body["index"]["user_id"] = "someone-else"
        conn.execute(
            text("UPDATE audit_entry SET body = :b, user_id = :u WHERE seq = :s"),
            {"b": orjson.dumps(body, option=orjson.OPT_SORT_KEYS), "u": "someone-else", "s": seq},
        )
        rechain(conn, seq)
