"""The hash chain: ``hash = SHA-256(prev_hash || body)`` over a gapless sequence from 1.

``prev_hash`` of entry 1 is 32 zero bytes (:data:`GENESIS`). Hashes are stored as raw 32-byte
values and shown in hex. An edit, deletion, insertion or reordering breaks the chain at the
first entry it touches, and :class:`Walk` names that entry's sequence number. Everything here
is pure: the database is read in ``audit.verify`` and written in ``audit.writer``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit.entry import AuditEntry, body

GENESIS = bytes(32)


def link(prev_hash: bytes, entry_body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + entry_body).digest()


@dataclass(frozen=True, slots=True)
class Sealed:
    """An entry with its place in the chain, ready to insert."""

    seq: int
    time: datetime
    entry: AuditEntry
    body: bytes
    prev_hash: bytes
    hash: bytes

    def row(self) -> dict[str, Any]:
        e = self.entry
        return {
            "seq": self.seq,
            "time": self.time,
            "request_id": e.request_id,
            "action": e.action,
            "outcome": e.outcome,
            "user_id": e.user_id,
            "org": e.org,
            "purpose": e.purpose,
            "patient_id": e.patient_id,
            "nhs_number": e.nhs_number,
            "body": self.body,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def seal(
    entries: Sequence[AuditEntry], after_seq: int, after_hash: bytes, time: datetime
) -> list[Sealed]:
    """Chain ``entries`` on after the head (``after_seq``, ``after_hash``)."""
    out: list[Sealed] = []
    prev = after_hash
    for n, entry in enumerate(entries, start=after_seq + 1):
        data = body(entry, n, time)
        digest = link(prev, data)
        out.append(Sealed(n, time, entry, data, prev, digest))
        prev = digest
    return out


#: Why a row numbered below 1 is not one of scr's.
BELOW_ONE = "not appended by scr: sequence numbers start at 1"
#: Why a row with no sequence number is not one of scr's.
NO_SEQ = "a row with no sequence number (seq is NULL): not appended by scr"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first entry that does not hold, and why; ``seq`` is None for a row that has none."""

    seq: int | None
    reason: str

    @property
    def label(self) -> str:
        """The sequence number as shown, a missing one as NULL."""
        return "NULL" if self.seq is None else str(self.seq)


def out_of_place(seq: int | None, expected: int) -> Problem:
    """A row in place of entry ``expected``, named by the row itself when it cannot be one of
    scr's (no number, below 1, or a number already walked) rather than as ``expected`` missing."""
    if seq is None:
        return Problem(None, NO_SEQ)
    if seq < 1:
        return Problem(seq, BELOW_ONE)
    if seq < expected:
        return Problem(seq, f"more than one row holds entry {seq}: one was not appended by scr")
    return Problem(expected, f"entry {expected} is missing (next is {seq})")


class Walk:
    """Checks ``(seq, body, prev_hash, hash)`` rows in sequence order, chunk by chunk.

    Only the last hash is remembered, so memory is bounded however long the trail is. ``keep``
    names a sequence number whose hash the caller wants (a checkpoint's size).
    """

    def __init__(self, keep: int | None = None) -> None:
        self.size = 0
        self.head = GENESIS
        self.kept: bytes | None = None
        self._keep = keep

    def feed(self, rows: Iterable[Sequence[Any]]) -> Problem | None:
        expected, prev, sha256 = self.size + 1, self.head, hashlib.sha256
        try:
            for seq, entry_body, prev_hash, digest in rows:
                if seq != expected:
                    return out_of_place(seq, expected)
                if prev_hash != prev:
                    return Problem(seq, "does not follow the entry before it (prev_hash differs)")
                try:
                    holds = sha256(prev_hash + entry_body).digest() == digest
                except TypeError:  # a body the owner replaced with text or NULL
                    holds = False
                if not holds:
                    return Problem(seq, "content does not match its hash")
                if seq == self._keep:
                    self.kept = digest
                prev, expected = digest, expected + 1
        finally:
            self.size, self.head = expected - 1, prev
        return None
