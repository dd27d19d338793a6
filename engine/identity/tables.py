"""Tables of the master person index, declared on ``engine.models.Base`` (one metadata for all).

``person_link`` is the table the read path needs (which Patients make up a person now), with
``patient_nhs_number`` (each Patient's valid NHS number) to find a person by number; the rest
keep the index explainable and safe to re-run: ``link_event`` is the history of every change
with who, when and why; ``link_pin`` holds manual decisions, which automatic linking must
respect forever; ``review_item`` is the queue of pairs a person has to decide;
``identity_block`` holds each Patient's blocking keys so new data finds its candidates without
reading every Patient; ``identity_lock`` is one row every identity write updates first, so two
writers (a relink after an ingest and an administrator's manual link) take turns on either
database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class Person(Base):
    __tablename__ = "person"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Set when this person was merged into another; links to it then follow the survivor.
    #: Indexed: every split looks up the people merged into the one it splits.
    merged_into: Mapped[str | None] = mapped_column(String(36), index=True)


class PersonLink(Base):
    """Current membership: each stored Patient resource belongs to exactly one person."""

    __tablename__ = "person_link"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: What put the Patient here: a match rule id, ``manual``, ``new`` (first seen) or ``split``.
    rule: Mapped[str] = mapped_column(String(32))


class LinkEvent(Base):
    """One change to the index, never updated or deleted."""

    __tablename__ = "link_event"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: ``new``, ``link``, ``unlink``, ``review`` or ``keep-apart``.
    action: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str] = mapped_column(String(64))
    #: The other Patient of the pair that caused the change, when there was one.
    other_patient_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(36))
    from_person_id: Mapped[str | None] = mapped_column(String(36))
    manual: Mapped[bool] = mapped_column(Boolean)
    who: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    #: The decision's reasons (each comparison's level and weight) and the rules version.
    detail: Mapped[dict[str, object]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_link_event_patient", "patient_id", "id"),
        Index("ix_link_event_other", "other_patient_id"),
    )


class LinkPin(Base):
    """A manual decision on a pair (stored sorted): ``together`` or ``apart``."""

    __tablename__ = "link_pin"

    patient_a: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_b: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    pin: Mapped[str] = mapped_column(String(8))
    who: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewItem(Base):
    """A pair the rules could neither link nor keep apart (stored sorted)."""

    __tablename__ = "review_item"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    patient_a: Mapped[str] = mapped_column(String(64))
    patient_b: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    #: ``open``; ``linked`` or ``kept-apart`` (a person decided); ``superseded`` (new data did).
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("patient_a", "patient_b", name="uq_review_item_pair"),)


class IdentityBlock(Base):
    """A Patient's blocking keys (see ``engine.identity.blocking``)."""

    __tablename__ = "identity_block"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PatientNumber(Base):
    """Each active Patient's valid NHS number, kept with its blocking keys: how a search by
    NHS number finds the Patients (and so the people) that hold it."""

    __tablename__ = "patient_nhs_number"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)


class IdentityLock(Base):
    """A single row (id 1) every identity transaction updates first, to take turns."""

    __tablename__ = "identity_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    writes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
