"""Tables of the audit trail, declared on ``engine.models.Base`` (one metadata for all).

``audit_entry`` is the trail: one row per access decision, never updated or deleted (a trigger
refuses both, and on PostgreSQL the application's role is granted only SELECT and INSERT). The
row's ``body`` is the entry's canonical JSON, which is what the chain hashes; the columns beside
it are copies of body fields that searches narrow on, and ``verify`` checks they still agree.
``audit_head`` is one row holding the last sequence number and hash: every append locks it
first, which is what keeps the sequence gapless with many writers on many processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base, UtcDateTime

_SEQ = BigInteger().with_variant(Integer, "sqlite")
#: The CHECK that refuses an entry numbered below 1, on PostgreSQL (migration 0017 says why
#: not on SQLite).
SEQ_FROM_ONE = "audit_entry_seq_from_one"


class AuditRow(Base):
    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    request_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    #: ``permit`` or ``deny``
    outcome: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str | None] = mapped_column(String(32))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    nhs_number: Mapped[str | None] = mapped_column(String(10))
    #: Canonical JSON of the entry (``audit.entry``), exactly the bytes that were hashed.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        Index("ix_audit_entry_patient", "patient_id", "time"),
        Index("ix_audit_entry_nhs", "nhs_number", "time"),
        Index("ix_audit_entry_user", "user_id", "time"),
        Index("ix_audit_entry_time", "time"),
        CheckConstraint("seq >= 1", name=SEQ_FROM_ONE).ddl_if(dialect="postgresql"),
    )


class AuditHead(Base):
    """The chain's head: ``seq`` 0 and a zero hash before the first entry."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(_SEQ)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
