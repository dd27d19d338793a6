"""Signed checkpoints: Ed25519 over the trail's size, head hash and the time of signing.

A checkpoint the IG office keeps lets it prove later that the trail it sees extends the trail
it saw: the entry at the checkpoint's size must still have the checkpointed hash. Someone with
database access who rewrites an entry and recomputes every later hash makes a valid chain, but
not one that passes through the old head. A checkpoint is only signed over a trail that
verifies, so a tampered trail is never blessed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from audit.chain import Problem
from audit.entry import time_text
from audit.keys import key_id
from audit.verify import Report, verify
from audit.writer import durable
from engine import canonical

#: Names what is signed, so a signature over something else can never pass for a checkpoint.
LOG = "scr-audit-trail/1"


class CheckpointError(ValueError):
    """A checkpoint file that is not one, or a trail that cannot be checkpointed."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    size: int
    head: str
    time: str
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "log": LOG,
            "size": self.size,
            "head": self.head,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def _message(size: int, head: str, time: str) -> bytes:
    return canonical.dumps({"head": head, "log": LOG, "size": size, "time": time})


def make(engine: Engine, key: Ed25519PrivateKey, now: datetime) -> Checkpoint:
    """Verify the trail, then sign its size and head; refuses a trail that does not verify.

    The walk may have seen appends still in their flush step; they are made durable before
    the signature vouches for them, so a crash cannot leave a checkpoint beyond the trail.
    """
    report = verify(engine)
    if report.problem is not None:
        raise CheckpointError(
            f"the trail does not verify at entry {report.problem.label}: {report.problem.reason}"
        )
    return sign(engine, key, report, now)


def sign(engine: Engine, key: Ed25519PrivateKey, report: Report, now: datetime) -> Checkpoint:
    """Sign the size and head of a walk that found no problem (the caller's to check), so a
    walk that also checked an earlier checkpoint is the one vouched for, not a second one."""
    durable(engine)
    head, when = report.head.hex(), time_text(now)
    signature = key.sign(_message(report.size, head, when))
    return Checkpoint(
        report.size, head, when, key_id(key.public_key()), base64.b64encode(signature).decode()
    )


def parse(data: bytes) -> Checkpoint:
    try:
        doc = orjson.loads(data)
        if doc.get("log") != LOG:
            raise CheckpointError("not an scr audit checkpoint")
        cp = Checkpoint(
            int(doc["size"]),
            str(doc["head"]),
            str(doc["time"]),
            str(doc["key_id"]),
            str(doc["signature"]),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"not a readable checkpoint: {exc}") from None
    if cp.size < 0:
        raise CheckpointError("checkpoint size is negative")
    return cp


def signature_valid(cp: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(
            base64.b64decode(cp.signature, validate=True), _message(cp.size, cp.head, cp.time)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_against(engine: Engine, cp: Checkpoint, public: Ed25519PublicKey) -> Report:
    """Verify the trail, and that it extends the checkpointed one (same entry at its size).

    A checkpoint that cannot be checked raises :class:`CheckpointError` without walking: one
    signed by another key than ``public`` (naming both keys), and one whose signature fails
    (edited since it was signed, or never signed by this key). Either says nothing about the
    trail, only that the file is no evidence of what it was."""
    if cp.key_id != key_id(public):
        raise CheckpointError(
            f"the checkpoint was signed by key {cp.key_id}, not by the key in use "
            f"({key_id(public)}): the signing key has changed"
        )
    if not signature_valid(cp, public):
        raise CheckpointError(
            f"the checkpoint's signature is not valid for key {cp.key_id}: the file was edited "
            "after it was signed, or that key never signed it; the trail was not checked"
        )
    report = verify(engine, keep=cp.size)
    if report.problem is not None:
        return report
    if cp.size > report.size:
        problem = Problem(
            report.size + 1, f"the trail has {report.size} entries; the checkpoint saw {cp.size}"
        )
        return Report(report.size, report.head, problem, report.kept)
    if cp.size > 0 and (report.kept is None or report.kept.hex() != cp.head):
        problem = Problem(
            cp.size,
            f"entry {cp.size} is not the one checkpointed at {cp.time}: "
            f"the trail was rewritten at or before entry {cp.size}",
        )
        return Report(report.size, report.head, problem, report.kept)
    return report
