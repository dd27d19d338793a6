"""The review queue: every break-glass use and self-claim, open until an IG officer judges it.

Items are the rows of ``engine.access`` (grants and claims); an item is overdue when it has
been open longer than the ``break-glass-unreviewed`` alert rule allows (72 hours), so the queue
and the alert can never disagree. Recording an outcome is audited (``ig-review``) before the
item is closed; an ``inappropriate`` outcome ends the grant or claim at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Connection, Engine, Table, select

from audit import Appender, RequestContext
from audit.alerts import OpenItem
from consent import Who
from consent.model import ReviewState
from consent.policy import Policy
from engine.access import C, G, Kind, ReviewError, review
from engine.identity import members_of
from engine.ig.gate import RefusedOfficer, admit

OUTCOMES = ("appropriate", "inappropriate")
MAX_NOTE = 2000
_TABLES: dict[Kind, Table] = {"break-glass": G, "self-claim": C}
#: The rule that refuses an officer the review of their own break-glass use or self-claim.
OWN_ITEM_RULE = "ig-review.own-item"


@dataclass(frozen=True, slots=True)
class Item:
    kind: Kind
    id: str
    person_id: str
    nhs_number: str | None
    user_id: str
    role_code: str
    org: str
    reason_code: str | None
    reason_text: str
    start: datetime
    expiry: datetime
    review: str
    reviewed_by: str | None
    reviewed_at: datetime | None
    note: str | None
    overdue: bool


def _items(
    conn: Connection, kind: Kind, now: datetime, hours: int, where: Sequence[ColumnElement[bool]]
) -> list[Item]:
    table = _TABLES[kind]
    rows = conn.execute(select(table).where(*where).order_by(table.c.start.desc(), table.c.id))
    limit = timedelta(hours=hours)
    return [
        Item(
            kind=kind,
            id=r.id,
            person_id=r.person_id,
            nhs_number=members_of(conn, r.person_id).nhs_number,
            user_id=r.user_id,
            role_code=r.role_code,
            org=r.org,
            reason_code=getattr(r, "reason_code", None),
            reason_text=r.reason_text,
            start=r.start,
            expiry=r.expiry,
            review=r.review,
            reviewed_by=r.reviewed_by,
            reviewed_at=r.reviewed_at,
            note=r.review_note,
            overdue=r.review == "open" and now - r.start > limit,
        )
        for r in rows
    ]


def queue(engine: Engine, now: datetime, hours: int, *, open_only: bool) -> list[Item]:
    """Open items first, oldest first among them (the most overdue at the top), then the rest."""
    found: list[Item] = []
    with engine.connect() as conn:
        for kind, table in _TABLES.items():
            where = [table.c.review == "open"] if open_only else []
            found += _items(conn, kind, now, hours, where)
    waiting = sorted((i for i in found if i.review == "open"), key=lambda i: i.start)
    done = sorted((i for i in found if i.review != "open"), key=lambda i: i.start, reverse=True)
    return waiting + done


def find(engine: Engine, kind: str, item_id: str, now: datetime, hours: int) -> Item | None:
    if kind not in _TABLES:
        return None
    known: Kind = "break-glass" if kind == "break-glass" else "self-claim"
    table = _TABLES[known]
    with engine.connect() as conn:
        found = _items(conn, known, now, hours, [table.c.id == item_id])
    return found[0] if found else None


def open_items(items: list[Item]) -> list[OpenItem]:
    return [
        OpenItem(i.kind, i.id, i.user_id, i.person_id, i.start) for i in items if i.review == "open"
    ]


def record(
    engine: Engine,
    appender: Appender,
    policy: Policy,
    who: Who,
    ctx: RequestContext,
    item: Item,
    outcome: str,
    note: str,
    now: datetime,
) -> None:
    """Audit the review, then close the item; bad input is refused before either.

    The user who broke the glass or made the claim may hold an IG role too (same user id):
    their own item is refused (audited as ``deny``, ``ReviewError`` raised) and stays open
    for another officer.
    """
    if outcome not in OUTCOMES:
        raise ReviewError("outcome: choose 'appropriate' or 'inappropriate'")
    text = note.strip()
    if not text or len(text) > MAX_NOTE or "\x00" in text:
        raise ReviewError(f"note: say why, in 1 to {MAX_NOTE} characters")
    if item.review != "open":
        raise ReviewError(f"{item.kind} item {item.id} is already reviewed")
    own = item.user_id == who.user_id
    try:
        admit(
            appender,
            who,
            ctx,
            "ig-review",
            f"{item.kind}/{item.id}",
            patient_id=item.person_id,
            nhs_number=item.nhs_number,
            rules=(f"ig-review.{outcome}",),
            policy=policy,
            now=now,
            refuse=OWN_ITEM_RULE if own else None,
        )
    except RefusedOfficer:
        raise ReviewError(
            f"this {item.kind} item is your own: another IG officer must review it"
        ) from None
    with engine.begin() as conn:
        review(conn, item.kind, item.id, cast(ReviewState, outcome), text, who.user_id, now)
