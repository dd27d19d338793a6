"""Tables for red-bag transfers: each message as received, each transfer's status history, and
the keys senders sign with.

A message is kept byte-exact (``raw``) beside the response it was given, so a resubmission can
be answered with the very same bytes and the evidence is what the sender sent, not a re-encoding.
The message header id is the primary key: the same message sent at once from many connections
is stored once, on either backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base, UtcDateTime


class SenderKey(Base):
    """The public key an organisation signs its messages with (one per ODS code)."""

    __tablename__ = "transfer_sender_key"

    org: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(128))


class TransferMessage(Base):
    """A message as received, the transfer it belongs to, and the response it was given."""

    __tablename__ = "transfer_message"

    header_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(String(36))
    nhs_number: Mapped[str] = mapped_column(String(10))
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    response: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Transfer(Base):
    """One stay: the care home that sent the resident, the hospital, and where it stands now."""

    __tablename__ = "transfer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    care_home: Mapped[str] = mapped_column(String(16), index=True)
    hospital: Mapped[str] = mapped_column(String(16), index=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    nhs_number: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TransferStatus(Base):
    """Every step of a transfer, in order; rows are only added."""

    __tablename__ = "transfer_status"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    transfer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    org: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


KEYS = cast(Table, SenderKey.__table__)
MESSAGES = cast(Table, TransferMessage.__table__)
TRANSFERS = cast(Table, Transfer.__table__)
STATUS = cast(Table, TransferStatus.__table__)
