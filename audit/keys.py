"""The Ed25519 key that signs checkpoints: from ``SCR_AUDIT_SIGNING_KEY`` or made on first use.

``SCR_AUDIT_SIGNING_KEY`` is either the path of a PEM file or the PEM text itself (PKCS#8,
unencrypted). Unset, the key lives in ``<data_dir>/audit-signing-key.pem``, created with mode
0600 on first use; a key file others can read is refused, since whoever holds the key can sign
a checkpoint for a rewritten log. The public key is what the IG office keeps beside its
checkpoints (``scr audit public-key``).
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.keyfile import create
from engine.settings import Settings

KEY_FILE = "audit-signing-key.pem"


class SigningKeyError(RuntimeError):
    """The signing key cannot be used; the message says why, never what the key is."""


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


def _generate(path: Path) -> Ed25519PrivateKey:
    """Create the key file atomically: of two processes starting at once, one writes it."""
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
    return key


def signing_key(settings: Settings, *, create: bool = True) -> Ed25519PrivateKey:
    """The key in use. Without ``create``, a key file that is not there is an error, not a
    new key: a verify that made one would blame the checkpoint for a key that was removed."""
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
        raise SigningKeyError(
            f"audit signing key: no file {path}: the key that signed checkpoints is missing "
            "(moved, deleted or never made here); a verify does not make a new one"
        )
    return _generate(path)


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
