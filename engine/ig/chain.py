"""The chain's status for the console, and the verify action, which also signs a checkpoint.

A verify that passes signs a checkpoint (``audit.checkpoint.make`` verifies first and never
signs a broken trail) and keeps it as the latest in the data directory, so the console shows
when the trail was last proved whole and IG can download it to keep away from the database.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Engine, Table, select

from audit.checkpoint import CheckpointError, make, parse
from audit.keys import SigningKeyError, signing_key
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


def _keep(path: Path, data: bytes) -> None:
    """Keep the checkpoint ``data`` as the latest, unless the latest covers more of the trail.

    Two verifies at once each sign their own checkpoint; whichever is kept last would win, and
    one that signed first (fewer entries) but got here last would put an older checkpoint back
    behind a newer one already reported signed. So the comparison and the replacement happen
    under an exclusive lock on a file beside it (``flock``: it holds between processes, and
    between threads, each opening the file anew): a checkpoint of fewer entries never replaces
    the latest; one of as many (a later signature of the same trail) does, as does any over an
    unreadable file."""
    size = parse(data).size
    with path.with_name(LOCK).open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        latest, _ = _latest(path)
        if latest is None or int(latest["size"]) <= size:
            _write(path, data)
    # Closing the file releases the lock.


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


def verify_now(engine: Engine, settings: Settings, now: datetime) -> tuple[Report, str | None]:
    """Walk the whole trail once; when it holds, sign and keep a checkpoint of it. Also says
    why no checkpoint was signed when the signing key cannot be used (the walk still runs)."""
    try:
        key = signing_key(settings)
    except SigningKeyError as exc:
        return verify(engine), str(exc)
    try:
        cp = make(engine, key, now)
    except CheckpointError:
        return verify(engine), None
    _keep(latest_path(settings), orjson.dumps(cp.as_dict(), option=orjson.OPT_INDENT_2))
    return Report(cp.size, bytes.fromhex(cp.head)), None
