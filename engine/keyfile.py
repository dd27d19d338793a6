"""Private key files: made once, readable by their owner alone, never seen half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def create(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) unless it exists, then raise ``FileExistsError``.

    The data is written whole under another name and linked into place, so of processes making
    the same key at once one wins and the others read its key, never an empty file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.link(written, path)
    finally:
        os.unlink(written)
