"""Tables: stored resources with history, ingest runs, the run's staging area, and quarantine.

A resource's body is its canonical JSON (sorted keys, no whitespace) as it will be served, so the
read path never re-validates or re-serialises it. Columns beside the body (type, patient,
labels, status) are what queries narrow on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Times are UTC with an offset everywhere; SQLite would hand them back naive."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: scr stores times in UTC with an offset")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class IngestRun(Base):
    __tablename__ = "ingest_run"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: running → completed | failed; a run left ``running`` by a crash is abandoned by the next.
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    #: When its Patients were linked into people (after it completed); ``None`` until then,
    #: so a run whose process died in between is linked by the next run.
    linked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Resource(Base):
    """The current version of each resource."""

    __tablename__ = "resource"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: ``active`` or ``entered-in-error`` (a row the source deleted: it leaves every view).
    status: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(Text, index=True)
    source_system: Mapped[str] = mapped_column(String(32))
    source_org: Mapped[str] = mapped_column(String(64))
    #: The Patient resource this belongs to (its own id for a Patient); linking joins people.
    patient_id: Mapped[str | None] = mapped_column(String(64))
    #: scr security label codes, space separated, so queries can exclude what policy hides.
    labels: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str] = mapped_column(ForeignKey("ingest_run.id"))
    #: What ``consent.meta_of`` derives from the body, stored at ingest (``engine.facts``) so
    #: a read judges the row without parsing it; trusted only under the same ``facts_version``.
    section: Mapped[str | None] = mapped_column(String(64))
    policy_labels: Mapped[str | None] = mapped_column(Text)
    #: What the row says about the person for the policy (a relationship, a directive, an
    #: organisation's ODS code) and the ``Organization`` a relationship names by reference:
    #: gathered without parsing the body, under the same ``facts_version``.
    relation: Mapped[str | None] = mapped_column(Text)
    relation_ref: Mapped[str | None] = mapped_column(Text)
    facts_version: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_resource_patient_type", "patient_id", "resource_type"),
        Index("ix_resource_type_updated", "resource_type", "last_updated"),
    )


class ResourceVersion(Base):
    """Every version ever stored, the current one included."""

    __tablename__ = "resource_version"

    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str] = mapped_column(ForeignKey("ingest_run.id"))


class Staged(Base):
    """A run's writes, committed batch by batch and applied to ``resource`` in one transaction.

    This is what makes a crash harmless: until the run applies its staging area, nothing it
    read is visible, so no person is ever half-written.
    """

    __tablename__ = "staged"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``create`` or ``update``
    op: Mapped[str] = mapped_column(String(8))
    resource_type: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(Text)
    source_system: Mapped[str] = mapped_column(String(32))
    source_org: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[str] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(String(64))
    policy_labels: Mapped[str | None] = mapped_column(Text)
    relation: Mapped[str | None] = mapped_column(Text)
    relation_ref: Mapped[str | None] = mapped_column(Text)
    facts_version: Mapped[str | None] = mapped_column(String(16))


class QuarantineItem(Base):
    """A record that could not be taken in, kept whole with where it came from and why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("ingest_run.id"))
    kind: Mapped[str] = mapped_column(String(32))
    source_key: Mapped[str] = mapped_column(Text, index=True)
    file: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    #: The record as read (ref, file, line, fields), so it can be replayed without the file.
    record: Mapped[dict[str, object]] = mapped_column(JSON)
    #: ``open``, ``replayed`` (taken in by replay) or ``superseded`` (a later run took it in).
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_run: Mapped[str | None] = mapped_column(String(36))


class RunSeen(Base):
    """Every resource id a run has taken in so far, changed or not: a row met again later in
    the same extract is a duplicate even when its first copy was unchanged (and so not staged).
    """

    __tablename__ = "run_seen"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64))


class StagedResolution(Base):
    """Source keys this run took in that had open quarantine items; closed when the run applies."""

    __tablename__ = "staged_resolution"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(512), primary_key=True)


class Pointer(Base):
    """Which records each source record names (``_pointed_records``): a label such a record
    gains later, in an extract that does not bring the records naming it, is passed back to
    them (``engine.relabel``)."""

    __tablename__ = "pointer"

    to_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    from_key: Mapped[str] = mapped_column(String(512), primary_key=True, index=True)


class StagedInherit(Base):
    """What a run's records named and took the stored labels of (``_pointed_records`` they did
    not meet): a label such a record gains in the same run must still reach them."""

    __tablename__ = "staged_inherit"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    from_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    to_key: Mapped[str] = mapped_column(String(512), primary_key=True)


class StagedPointer(Base):
    """A run's changes to ``pointer``, applied with its rows, so a run that does not complete
    changes no pointer."""

    __tablename__ = "staged_pointer"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    from_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    to_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    #: The record no longer names ``to_key``.
    gone: Mapped[bool] = mapped_column(Boolean)


class KeptRow(Base):
    """A source row as last taken in, for a table that chooses its resources by joined rows
    (a coded event is a problem when SRProblem names it): a delta that brings only the joined
    row maps the kept row again with it (``engine.kept``). The record as quarantine keeps it."""

    __tablename__ = "kept_row"

    source_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    record: Mapped[dict[str, object]] = mapped_column(JSON)
    #: The run that took it in: a quarantine item of the same run is no newer version of it.
    run_id: Mapped[str] = mapped_column(String(36))


class StagedKeptRow(Base):
    """A run's kept rows until it completes; ``record`` is null for a row the run deleted. (On
    PostgreSQL the run's one transaction writes ``kept_row`` itself.)"""

    __tablename__ = "staged_kept_row"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    record: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))


class SignedOut(Base):
    """Sessions signed out, until their tokens expire: a copy of the cookie taken before
    sign-out signs no one in after it, nor reads the API (``engine.signouts``)."""

    __tablename__ = "signed_out"

    session: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
