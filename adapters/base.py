"""The contract every adapter meets: records in with provenance, FHIR resources or issues out.

Reading (I/O, encodings, joins between files) happens in each adapter's ``read`` module and
yields :class:`SourceRecord`; mapping is a pure function of one record and the run's
:class:`MapContext`, so a quarantined record can be replayed later without the source files.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from adapters.codes import CodeMaps

#: Namespace for deterministic resource ids: the same source record always gets the same id,
#: which is what makes re-ingesting an extract idempotent.
_ID_NAMESPACE = uuid.UUID("6f1c2a8e-3f4b-5c6d-8e9f-0a1b2c3d4e5f")
_NAMESPACE_BYTES = _ID_NAMESPACE.bytes


def source_key(system: str, org: str, table: str, row_id: str) -> str:
    """The key naming one source record (``system|org|table|row``)."""
    return f"{system}|{org}|{table}|{row_id}"


@lru_cache(maxsize=65536)
def resource_id(resource_type: str, key: str) -> str:
    """Deterministic FHIR id of a source record's resource: UUIDv5 of the type and the key.

    The type is part of it because one row may yield several. Cached: a patient's id is
    computed once per row that cites the patient.
    """
    return uuid5(f"{resource_type}|{key}")


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(_ID_NAMESPACE, name))`` without building a ``UUID``: a third the cost.

    SHA-1 of the namespace and the name, the first 16 bytes, version 5 and the RFC 4122
    variant set (the same steps as :func:`uuid.uuid5`).
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class SourceRef:
    """Stable identity of one source record: which system, organisation, table and row."""

    system: str
    org: str
    table: str
    row_id: str

    @property
    def key(self) -> str:
        return source_key(self.system, self.org, self.table, self.row_id)

    @classmethod
    def from_key(cls, key: str) -> SourceRef:
        system, org, table, row_id = key.split("|", 3)
        return cls(system, org, table, row_id)

    def resource_id(self, resource_type: str) -> str:
        return resource_id(resource_type, self.key)


def fhirpath(root: str, loc: Sequence[int | str]) -> str:
    """The FHIRPath of a validation error's location (pydantic's ``("name", 0, "family")``):
    ``Patient.name[0].family``, a list index written on the element it indexes."""
    out = root
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step != "__root__":
            out += f".{step}"
    return out


@dataclass(frozen=True)
class Issue:
    """One reason a record cannot be taken in, naming the field it concerns."""

    field: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass(frozen=True)
class SourceRecord:
    """One row (or one FHIR entry) with where it came from.

    ``fields`` holds the raw values as read, plus any values the reader joined in from other
    files (prefixed ``_``), so that mapping needs nothing but the record itself. Three of them
    mean the same for every source: ``_pointed_codings``, the ``[system, code]`` pairs of
    the records this one names or belongs to, so that finishing labels it with them (a
    resource naming a sensitive one is withheld with it); ``_pointed_records``, the source keys
    of such records, which the store keeps so that labels they gain later reach this one
    (``engine.relabel``); and ``_met_records``, those of them the reader met and passed on
    itself. The ingest adds the stored labels of the others (an earlier extract brought them).
    """

    ref: SourceRef
    file: str
    line: int
    fields: Mapping[str, Any]
    #: Problems already found while reading (a truncated row, an undecodable byte).
    read_issues: tuple[Issue, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """What quarantine (and a kept row) holds of a record: enough to map it again without
        the source file."""
        return {
            "ref": [self.ref.system, self.ref.org, self.ref.table, self.ref.row_id],
            "file": self.file,
            "line": self.line,
            "fields": dict(self.fields),
            "read_issues": [[i.field, i.reason] for i in self.read_issues],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SourceRecord:
        return cls(
            SourceRef(*doc["ref"]),
            doc["file"],
            doc["line"],
            doc["fields"],
            tuple(Issue(f, r) for f, r in doc["read_issues"]),
        )


@dataclass(frozen=True)
class Mapped:
    """One FHIR R4 resource (JSON dict) produced from a source record."""

    resource: dict[str, Any]
    #: Source key of the patient record this resource belongs to (its own key for a Patient).
    patient_key: str | None
    #: The source row is flagged deleted: the stored resource becomes entered-in-error.
    deleted: bool = False


@dataclass(frozen=True)
class MapOutcome:
    """Result of mapping one record: resources, or the issues that stopped it (never both).

    Neither means the record yields nothing now (a row the source deleted that no longer maps
    as it stands, a GP Connect entry of a type left out). Whatever a record's key yielded
    before and it does not yield now is withdrawn by the ingest (``entered-in-error``).
    """

    resources: tuple[Mapped, ...] = ()
    issues: tuple[Issue, ...] = ()
    #: Non-fatal repairs made on the way (kept on the run summary).
    warnings: tuple[Issue, ...] = ()
    #: Values left out of the resources because they could not be taken as they stand (a
    #: ``withhold_invalid`` rule): the resources go in, and the record stays in quarantine
    #: with these issues until it is corrected.
    withheld: tuple[Issue, ...] = ()
    #: Which resources the row yields turned on what was joined from other rows, which an
    #: extract (a delta) need not carry: what it yielded before and not now is not withdrawn.
    joined_choice: bool = False
    #: The row's table chooses its resources by joins, so the ingest keeps the row as taken in
    #: (``engine.kept``): a later delta that changes only the joined row maps it again.
    keeps_row: bool = False
    #: Source keys the record had before its map changed them: what a store holds under them
    #: is withdrawn as the record is taken in, as no run would meet them again.
    retires: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues


@dataclass
class MapContext:
    """What mapping may consult besides the record: code maps and the run's settings."""

    codes: CodeMaps
    canonical_base: str = "https://fhir.scr.example/"
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractStamp:
    """Whose extract this is and the date it runs to, when the source says (a manifest): an
    extract older than one already taken in would roll the record back."""

    #: ``system|org``, as the start of the source keys of its records.
    source: str
    #: ISO dateTime in UTC (``+00:00``), so stamps compare as text.
    runs_to: str


class ExtractError(Exception):
    """The extract as a whole cannot be read (a required file or column is missing)."""


class CorrectionRefused(ValueError):
    """A correction replay cannot apply to a record on its own: it names no column of the
    record, or a column the reader joined other rows by (which only reading the source again
    can join anew)."""


class Adapter(Protocol):
    """One source style. ``kind`` is the name used on the command line."""

    kind: str
    #: What the run summary should mention: unknown files, extra columns ignored.
    notes: list[str]

    def read(self, location: str) -> Iterator[SourceRecord]:
        """Yield records with provenance; patients come before the records that cite them."""
        ...

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        """Pure: turn one record into R4 resources, or say why not."""
        ...

    def stamp(self, location: str) -> ExtractStamp | None:
        """The extract's stamp, when its source gives one; ``None`` when it cannot be read
        (reading the extract then says why)."""
        ...

    def correct(
        self, record: SourceRecord, corrections: Mapping[str, str], today: str
    ) -> SourceRecord:
        """Pure: a quarantined record as replay maps it, with ``corrections`` (column: value)
        applied, and what the reader worked out from the row alone (its key, whether an end
        date has passed by ``today``) worked out again. Raises :class:`CorrectionRefused`."""
        ...
