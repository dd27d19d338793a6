"""Signing keys for organisations whose messages scr's own pages send.

A care-home system that calls ``POST /fhir/$process-message`` holds its own key and registers
only the public half. When a care home or hospital uses scr's web pages instead, scr signs on
the organisation's behalf with a key kept in the data directory (mode 0600), made and
registered the first time the organisation sends.

The key file is the one thing made once: it is created whole or not at all, and of two first
sends at once one makes it and both read it. The registration follows from the file, and
a key is used only once the key registered for the organisation is the file's. A send that
finds the file with no key registered (another send is registering it this moment, or one
failed to: a lock timeout, a failover) registers the file's public key itself; the first
registration wins, and both can only register the same key, so the order does not matter.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from engine.keyfile import create
from engine.transfer import signature, store
from engine.transfer.signature import SigningKeyError


def _path(data_dir: Path, org: str) -> Path:
    return data_dir / "transfer-keys" / f"{org}.pem"


def write_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Keep ``key`` at ``path``; ``FileExistsError`` if a key is there (never overwritten)."""
    create(path, signature.private_pem(key))


def _registered(engine: Engine, org: str) -> str | None:
    with engine.connect() as conn:
        return store.sender_key(conn, org)


def org_key(engine: Engine, data_dir: Path, org: str, by: str) -> Ed25519PrivateKey:
    """The key scr signs ``org``'s messages with, made and registered on first use, and
    returned only once it is the key registered for ``org``; an organisation that registered
    a key of its own signs for itself (:class:`OwnKey`). A failed registration raises, and
    the next send registers the same key."""
    path = _path(data_dir, org)
    registered = _registered(engine, org)
    if not path.exists():
        if registered is not None:  # a registered key with no file here is the organisation's
            raise OwnKey(f"{org} signs its own messages: send them from its system")
        with suppress(FileExistsError):  # another first send made it a moment ago: it is the key
            write_key(path, signature.new_key())
    key = signature.load_private(path.read_bytes())
    pem = signature.public_pem(key)
    if registered is None:
        try:
            with engine.begin() as conn:
                store.register_first(conn, org, pem, by, datetime.now(UTC))
        except IntegrityError:
            pass  # registered a moment ago: by another send of this file's key, or below
        registered = _registered(engine, org)
    if not _same(registered, pem):  # the organisation registered its own key over scr's
        raise OwnKey(f"{org} signs its own messages: send them from its system")
    return key


def _same(registered: str | None, pem: str) -> bool:
    """Whether the registered key is ``pem``'s key, however its PEM text is laid out (one
    registered again by hand may lack the final newline)."""
    if registered is None:
        return False
    try:
        return signature.public_pem(signature.load_public(registered)) == pem
    except SigningKeyError:
        return False


class OwnKey(RuntimeError):
    """The organisation registered its own key, so scr cannot sign for it."""
