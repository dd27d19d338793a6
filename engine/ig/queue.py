"""The review queue: every break-glass use and self-claim, open until an IG officer judges it.

Items are the rows of ``engine.access`` (grants and claims); an item is overdue when it has
been open longer than the ``break-glass-unreviewed`` alert rule allows (72 hours), so the queue
and the alert can never disagree. Recording an outcome is audited (``ig-review``) before the
item is closed; an ``inappropriate`` outcome ends the grant or claim at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Connection, Engine, Table, select

from audit import Appender, RequestContext, append_within, disclose
from audit.alerts import OpenItem
from consent import Who
from consent.model import ReviewState
from consent.policy import Policy
from engine.access import C, G, Kind, ReviewError, review
from engine.db import durable_write
from engine.identity import members_of
from engine.ig.gate import Decided, NotIgOfficer, decided

OUTCOMES = ("appropriate", "inappropriate")
MAX_NOTE = 2000
_TABLES: dict[Kind, Table] = {"break-glass": G, "self-claim": C}
#: The rule that refuses an officer the review of their own break-glass use or self-claim.
OWN_ITEM_RULE = "ig-review.own-item"
#: The rule of a review refused for its form: an unknown outcome, or a blank or overlong note.
INVALID_RULE = "ig-review.invalid"
#: The rule of a review refused because the item already has its outcome.
CLOSED_RULE = "ig-review.closed"


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
    """The item, or None: an id that is not one ``engine.access`` makes (a UUID) names none,
    and is never sent to the store (PostgreSQL refuses a NUL in text, as a 500)."""
    if kind not in _TABLES or not _an_id(item_id):
        return None
    known: Kind = "break-glass" if kind == "break-glass" else "self-claim"
    table = _TABLES[known]
    with engine.connect() as conn:
        found = _items(conn, known, now, hours, [table.c.id == item_id])
    return found[0] if found else None


def _an_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


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
    """Close the item with its audit entry, in one transaction; a refused review is audited.

    The gate comes first, whatever was posted, so the item page answered for a refused
    review is covered by its own entry: a blank or overlong note or an unknown outcome is
    audited as ``deny`` with ``ig-review.invalid``, an item already reviewed with
    ``ig-review.closed``, and ``ReviewError`` raised. The user who broke the glass or made
    the claim may hold an IG role too (same user id): their own item is refused (audited as
    ``deny`` with ``ig-review.own-item``) and stays open for another officer. The outcome and
    its ``permit`` entry commit together (``audit.append_within``): of two officers reviewing
    one item at once, the one whose update finds it closed leaves no entry saying their
    outcome was recorded, and is refused as ``ig-review.closed``.
    """
    text = note.strip()
    refusal: tuple[str, str] | None = None
    closed = (CLOSED_RULE, f"{item.kind} item {item.id} is already reviewed")
    if item.user_id == who.user_id:
        why = f"this {item.kind} item is your own: another IG officer must review it"
        refusal = (OWN_ITEM_RULE, why)
    elif outcome not in OUTCOMES:
        refusal = (INVALID_RULE, "outcome: choose 'appropriate' or 'inappropriate'")
    elif not text or len(text) > MAX_NOTE or "\x00" in text:
        refusal = (INVALID_RULE, f"note: say why, in 1 to {MAX_NOTE} characters")
    elif item.review != "open":
        refusal = closed

    def gate(refused: tuple[str, str] | None) -> Decided:
        return decided(
            who,
            ctx,
            "ig-review",
            f"{item.kind}/{item.id}",
            patient_id=item.person_id,
            nhs_number=item.nhs_number,
            # only a known outcome is named: the posted text never reaches the rules
            rules=(f"ig-review.{outcome}",) if outcome in OUTCOMES else (),
            policy=policy,
            now=now,
            refuse=refused[0] if refused else None,
        )

    if refusal is None and (d := gate(None)).permit:
        try:
            with durable_write(engine) as conn:
                review(conn, item.kind, item.id, cast(ReviewState, outcome), text, who.user_id, now)
                append_within(conn, [d.entry])
            return
        except ReviewError:
            refusal = closed
    d = gate(refusal)
    disclose(appender, d.entry, None)
    if not d.permit:
        raise NotIgOfficer(who.user_id, d.why)
    assert refusal is not None
    raise ReviewError(refusal[1])
