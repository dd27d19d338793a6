"""Signing keys for organisations whose messages scr's own pages send.

A care-home system that calls ``POST /fhir/$process-message`` holds its own key and registers
only the public half. When a care home or hospital uses scr's web pages instead, scr signs on
the organisation's behalf with a key kept in the data directory (mode 0600), made and
registered the first time the organisation sends.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from engine.keyfile import create
from engine.transfer import signature, store

#: How long a first send waits for the key another first send of the same organisation is
#: registering at the same moment (a double click); a key file and a row are all it writes.
REGISTERING = 5.0


def _path(data_dir: Path, org: str) -> Path:
    return data_dir / "transfer-keys" / f"{org}.pem"


def write_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Keep ``key`` at ``path``; ``FileExistsError`` if a key is there (never overwritten)."""
    create(path, signature.private_pem(key))


def org_key(engine: Engine, data_dir: Path, org: str, by: str) -> Ed25519PrivateKey:
    """The key scr signs ``org``'s messages with, made and registered on first use; an
    organisation that registered a key of its own signs for itself (:class:`OwnKey`)."""
    path = _path(data_dir, org)
    if path.exists():
        return signature.load_private(path.read_bytes())
    key = signature.new_key()
    with engine.begin() as conn:
        if store.sender_key(conn, org) is None:
            try:
                write_key(path, key)
            except FileExistsError:
                pass  # another first send made it a moment ago, and is registering it
            else:
                store.register_key(conn, org, signature.public_pem(key), by, datetime.now(UTC))
                return key
        elif not path.exists():  # a registered key with no file here is the organisation's
            raise OwnKey(f"{org} signs its own messages: send them from its system")
    return _registered(engine, path, org)


def _registered(engine: Engine, path: Path, org: str) -> Ed25519PrivateKey:
    """The key another send wrote at ``path``, once its registration has committed (or the wait
    is over): a message signed with it before then would be refused as signed by no key."""
    deadline = time.monotonic() + REGISTERING
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if store.sender_key(conn, org) is not None:
                break
        time.sleep(0.01)
    return signature.load_private(path.read_bytes())


class OwnKey(RuntimeError):
    """The organisation registered its own key, so scr cannot sign for it."""
