"""Break-glass grants and self-claimed relationships, kept as records of their own.

They are facts the decision reads, like a GP registration, but made by a user rather than a
source, so each keeps who made it, when, why, and the IG officer's review: every one is an item
an IG officer must close (issue 8). Rows are only added and reviewed, never deleted; an
``inappropriate`` review ends a grant or a claim at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, Literal, cast

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Row,
    String,
    Table,
    Text,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from consent import Grant, Relationship, Who
from consent.model import ReviewState
from engine.identity.index import merged_in
from engine.models import Base, UtcDateTime

Kind = Literal["break-glass", "self-claim"]


class _Reviewed:
    """Columns every user-made access record has: who made it and how IG judged it."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    role_code: Mapped[str] = mapped_column(String(64))
    org: Mapped[str] = mapped_column(String(16))
    reason_text: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    expiry: Mapped[datetime] = mapped_column(UtcDateTime)
    review: Mapped[str] = mapped_column(String(16), index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    review_note: Mapped[str | None] = mapped_column(Text)


class BreakGlassGrant(_Reviewed, Base):
    __tablename__ = "break_glass_grant"

    reason_code: Mapped[str] = mapped_column(String(16))


class SelfClaim(_Reviewed, Base):
    __tablename__ = "self_claim"


G = cast(Table, BreakGlassGrant.__table__)
C = cast(Table, SelfClaim.__table__)
_TABLES: dict[Kind, Table] = {"break-glass": G, "self-claim": C}


class ReviewError(ValueError):
    """The item does not exist, is already reviewed, or the outcome is not one IG records."""


def _insert(conn: Connection, table: Table, who: Who, values: dict[str, object]) -> str:
    item_id = str(uuid.uuid4())
    maker = {"id": item_id, "user_id": who.user_id, "role_code": who.role_code, "org": who.org}
    conn.execute(insert(table), [maker | values | {"review": "open"}])
    return item_id


def record_grant(conn: Connection, who: Who, grant: Grant) -> str:
    """Store a grant ``consent.ask_break_glass`` made; its id names the IG review item."""
    return _insert(
        conn,
        G,
        who,
        {
            "person_id": grant.patient,
            "reason_code": grant.reason_code,
            "reason_text": grant.reason_text,
            "start": grant.start,
            "expiry": grant.expiry,
        },
    )


def record_claim(conn: Connection, who: Who, person_id: str, claim: Relationship) -> str:
    """Store a claim ``consent.ask_self_claim`` made; its id names the IG review item."""
    if claim.start is None or claim.end is None:
        raise ValueError("a self-claim has a start and an end")
    return _insert(
        conn,
        C,
        who,
        {
            "person_id": person_id,
            "reason_text": claim.reason,
            "start": claim.start,
            "expiry": claim.end,
        },
    )


@cache
def user_made(dialect: str) -> CompoundSelect[Any]:
    """Every grant and every claim made for the person bound as ``person_id``, or for one since
    merged into them (``kind``, ``reason_code`` and the records' columns), built once per
    dialect: ``engine.gate.gather_facts`` reads it in the same statement as the person's other
    facts."""
    columns = ("id", "user_id", "org", "reason_text", "start", "expiry", "review")
    grants = select(
        literal("break-glass").label("kind"), G.c.reason_code, *(G.c[c] for c in columns)
    )
    claims = select(literal("self-claim"), null(), *(C.c[c] for c in columns))
    return union_all(
        merged_in(grants, G.c.person_id, dialect),
        merged_in(claims, C.c.person_id, dialect),
    )


def claim_found_inappropriate(conn: Connection, user_id: str, person_id: str) -> bool:
    """Whether IG found one of this user's self-claims for this person (or for one since
    merged into them) inappropriate: ``consent.ask_self_claim`` makes no new one then."""
    found = merged_in(
        select(C.c.id).where(C.c.user_id == user_id, C.c.review == "inappropriate"),
        C.c.person_id, conn.dialect.name,
    )  # fmt: skip
    return conn.execute(found.limit(1), {"person_id": person_id}).first() is not None


def made(
    rows: Iterable[Row[Any]], person_id: str
) -> tuple[tuple[Grant, ...], tuple[Relationship, ...]]:
    """The grants and the claims among rows of :func:`user_made`: ``decide`` judges which is
    live, and whose."""
    grants: list[Grant] = []
    claims: list[Relationship] = []
    for r in rows:
        review = cast(ReviewState, r.review)
        if r.kind == "break-glass":
            grants.append(
                Grant(
                    user_id=r.user_id,
                    org=r.org,
                    patient=person_id,
                    reason_code=r.reason_code,
                    reason_text=r.reason_text,
                    start=r.start,
                    expiry=r.expiry,
                    review=review,
                )
            )
        elif r.kind == "self-claim":
            claims.append(
                Relationship(
                    org=r.org,
                    kind="self-claim",
                    start=r.start,
                    end=r.expiry,
                    reason=r.reason_text,
                    claimed_by=r.user_id,
                    review=review,
                )
            )
    return tuple(grants), tuple(claims)


def review(
    conn: Connection,
    kind: Kind,
    item_id: str,
    outcome: ReviewState,
    note: str,
    reviewer: str,
    now: datetime,
) -> None:
    """Record an IG officer's outcome, once; the item is closed from then on."""
    if outcome == "open":
        raise ReviewError("a review records 'appropriate' or 'inappropriate'")
    table = _TABLES[kind]
    done = conn.execute(
        update(table)
        .where(table.c.id == item_id, table.c.review == "open")
        .values(review=outcome, reviewed_by=reviewer, reviewed_at=now, review_note=note)
    )
    if done.rowcount != 1:
        raise ReviewError(f"{kind} item {item_id} does not exist or is already reviewed")
