"""The Ed25519 key that signs checkpoints: from ``SCR_AUDIT_SIGNING_KEY`` or made on first use.

``SCR_AUDIT_SIGNING_KEY`` is either the path of a PEM file or the PEM text itself (PKCS#8,
unencrypted). Unset, the key lives in ``<data_dir>/audit-signing-key.pem``, created with mode
0600 on first use; a key file others can read is refused, since whoever holds the key can sign
a checkpoint for a rewritten log. The public key is what the IG office keeps beside its
checkpoints (``scr audit public-key``). A missing key file is :class:`KeyMissing`, so a caller
can tell it from a key it cannot use, and decide whether a new key may take its place.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.keyfile import create
from engine.settings import Settings

KEY_FILE = "audit-signing-key.pem"


class SigningKeyError(RuntimeError):
    """The signing key cannot be used; the message says why, never what the key is."""


class KeyMissing(SigningKeyError):
    """No key file in the data directory (moved, deleted, or never made there)."""


#: Told where a new key file was written, and its public key.
Made = Callable[[Path, Ed25519PublicKey], None]


def _from_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{where}: not an unencrypted PEM private key") from None
    except UnsupportedAlgorithm:  # a well-formed key of a kind cryptography cannot load
        raise SigningKeyError(f"{where}: not an Ed25519 key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where}: not an Ed25519 key")
    return key


def _read_file(path: Path, where: str) -> Ed25519PrivateKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{where}: {path} is readable by others (chmod 600 it)")
    return _from_pem(path.read_bytes(), where)


def _generate(path: Path, made: Made | None) -> Ed25519PrivateKey:
    """Create the key file atomically: of two processes starting at once, one writes it, and
    only that one tells ``made``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        create(path, pem)
    except FileExistsError:
        return _read_file(path, "audit signing key")
    if made is not None:
        made(path, key.public_key())
    return key


def signing_key(
    settings: Settings, *, create: bool = True, made: Made | None = None
) -> Ed25519PrivateKey:
    """The key in use. Without ``create``, a key file that is not there is :class:`KeyMissing`,
    not a new key: a verify that made one would blame the checkpoint for a key that was
    removed. ``made`` is told of a key file this call wrote, for the caller to say so."""
    configured = settings.audit_signing_key
    if configured:
        if configured.lstrip().startswith("-----BEGIN"):
            return _from_pem(configured.encode(), "SCR_AUDIT_SIGNING_KEY")
        path = Path(configured)
        if not path.is_file():
            raise SigningKeyError(f"SCR_AUDIT_SIGNING_KEY: no file {path}")
        return _read_file(path, "SCR_AUDIT_SIGNING_KEY")
    path = settings.data_dir / KEY_FILE
    if path.exists():
        return _read_file(path, "audit signing key")
    if not create:
        raise KeyMissing(
            f"audit signing key: no file {path}: the key that signed checkpoints is missing "
            "(moved, deleted or never made here); no new one was made in its place"
        )
    return _generate(path, made)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError("not a PEM public key") from None
    except UnsupportedAlgorithm:
        raise SigningKeyError("not an Ed25519 public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for the key, so a checkpoint says which key signed it."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
