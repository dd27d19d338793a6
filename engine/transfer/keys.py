"""Signing keys for organisations whose messages scr's own pages send.

A care-home system that calls ``POST /fhir/$process-message`` holds its own key and registers
only the public half. When a care home or hospital uses scr's web pages instead, scr signs on
the organisation's behalf with a key kept in the data directory (mode 0600), made and
registered the first time the organisation sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from engine.keyfile import create
from engine.transfer import signature, store


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
    with engine.begin() as conn:
        if store.sender_key(conn, org) is not None:
            raise OwnKey(f"{org} signs its own messages: send them from its system")
        key = signature.new_key()
        write_key(path, key)
        store.register_key(conn, org, signature.public_pem(key), by, datetime.now(UTC))
    return key


class OwnKey(RuntimeError):
    """The organisation registered its own key, so scr cannot sign for it."""
