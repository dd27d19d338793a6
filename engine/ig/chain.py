"""The chain's status for the console, and the verify action, which also signs a checkpoint.

A verify checks the trail against the latest checkpoint kept here, as ``scr audit verify
--checkpoint`` does: a rewrite with every later hash recomputed is a valid chain, and only the
checkpoint shows it. A verify that passes signs a new checkpoint and keeps it as the latest in
the data directory, so the console shows when the trail was last proved whole and IG can
download it to keep away from the database; one that fails signs nothing and keeps the old
checkpoint, the evidence of what the trail was.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, Table, select

from audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse,
    sign,
    signature_valid,
    verify_against,
)
from audit.keys import SigningKeyError, key_id, signing_key
from audit.tables import AuditHead
from audit.verify import Report, verify
from engine.settings import Settings

H = cast(Table, AuditHead.__table__)
LATEST = "audit-checkpoint-latest.json"
#: Locked while the latest checkpoint is compared and replaced (:func:`_keep`).
LOCK = "audit-checkpoint-latest.lock"


@dataclass(frozen=True, slots=True)
class Status:
    entries: int
    head: str
    checkpoint: dict[str, Any] | None
    #: The latest checkpoint's file is there but is not a checkpoint (cut short, or edited).
    unreadable: bool = False


def latest_path(settings: Settings) -> Path:
    return settings.data_dir / LATEST


def _latest(path: Path) -> tuple[dict[str, Any] | None, bool]:
    """The latest checkpoint, or that it cannot be read: the pages showing it, and the Verify
    button that would replace it, must not fail because of it."""
    try:
        return parse(path.read_bytes()).as_dict(), False
    except FileNotFoundError:
        return None, False
    except (CheckpointError, OSError):
        return None, True


def status(engine: Engine, settings: Settings) -> Status:
    with engine.connect() as conn:
        row = conn.execute(select(H.c.seq, H.c.hash).where(H.c.id == 1)).first()
    checkpoint, unreadable = _latest(latest_path(settings))
    return Status(row.seq if row else 0, row.hash.hex() if row else "", checkpoint, unreadable)


def _keep(path: Path, data: bytes, public: Ed25519PublicKey) -> None:
    """Keep the checkpoint ``data`` as the latest, unless the latest is one this key signed
    later.

    Two verifies at once each sign their own checkpoint; whichever is kept last would win, and
    one that signed first but got here last would put an older checkpoint back behind a newer
    one already reported signed. So the comparison and the replacement happen under an
    exclusive lock on a file beside it (``flock``: it holds between processes, and between
    threads, each opening the file anew). They are compared by when they were signed, not by
    size: a trail restored from a backup is shorter than one signed before it, and the
    checkpoint that holds now is its own. The latest counts only if its signature holds, so an
    edited or cut-short file is replaced."""
    signed = parse(data).time
    with path.with_name(LOCK).open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        latest = _ours(path, public)
        if latest is None or latest.time <= signed:
            _write(path, data)
    # Closing the file releases the lock.


def _ours(path: Path, public: Ed25519PublicKey) -> Checkpoint | None:
    """The latest checkpoint, if it is there, readable and signed by ``public``."""
    try:
        cp = parse(path.read_bytes())
    except (CheckpointError, OSError):
        return None
    return cp if signature_valid(cp, public) else None


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` whole under another name, flushed to disk, then rename it into place: a
    crash or a full disk leaves the previous checkpoint or this one, never part of one."""
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(written, path)
    except BaseException:
        Path(written).unlink(missing_ok=True)
        raise


def _kept(path: Path) -> Checkpoint | None:
    """The latest checkpoint kept here, signed or not; none when there is no file. A file
    that is not a checkpoint raises :class:`CheckpointError`: spoiling it must not be a way to
    have a rewritten trail walked alone, found whole and signed over the evidence."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"the kept checkpoint cannot be read: {exc}") from exc
    return parse(data)


class Verified(NamedTuple):
    """A verify from the console: the walk; why no checkpoint was signed, if none was; and the
    id of a signing key made by this verify, if one was (the first, where none was kept), which
    the IG office must then take the public half of, or its checkpoints prove nothing."""

    report: Report
    unsigned: str | None = None
    new_key: str | None = None


def verify_now(engine: Engine, settings: Settings, now: datetime) -> Verified:
    """Walk the whole trail once, checking it still extends the latest checkpoint kept; when
    it holds, sign and keep a checkpoint of it. Also says why no checkpoint was signed when
    the signing key cannot be used, or is not the one that signed the kept checkpoint (the
    walk still runs). A key is made here only when no checkpoint is kept yet, and said."""
    path = latest_path(settings)
    try:
        kept = _kept(path)
    except CheckpointError as exc:
        why = (
            f"{path.name}: {exc}; nothing was signed over it. Check the trail against IG's own "
            "copy (scr audit verify --checkpoint), then move the file aside and verify again"
        )
        return Verified(verify(engine), why)
    made: list[str] = []
    try:
        key = signing_key(
            settings, create=kept is None, made=lambda _, public: made.append(key_id(public))
        )
    except SigningKeyError as exc:
        return Verified(verify(engine), str(exc))
    new_key = made[0] if made else None
    try:
        report = verify(engine) if kept is None else verify_against(engine, kept, key.public_key())
    except CheckpointError as exc:  # another key's, or edited: the kept one proves nothing
        return Verified(verify(engine), str(exc), new_key)
    if report.problem is not None:
        return Verified(report, None, new_key)
    cp = sign(engine, key, report, now)
    _keep(path, orjson.dumps(cp.as_dict(), option=orjson.OPT_INDENT_2), key.public_key())
    return Verified(Report(cp.size, bytes.fromhex(cp.head)), None, new_key)
