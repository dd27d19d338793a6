"""The sender's signature over a message: a detached compact JWS (EdDSA, Ed25519).

What is signed is the canonical JSON of the Bundle without its ``signature``, so any system can
sign before it knows the bytes it will send and scr can check the meaning, not the whitespace.
``Bundle.signature.data`` (base64Binary) carries the JWS ``header..signature``; the header's
``kid`` is the sender's ODS code, whose registered key is the only one that can verify it.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.canonical import dumps

SIG_FORMAT = "application/jose"
#: ISO/ASTM E1762 "Author's Signature", the type FHIR's signature-type value set gives first.
SIG_TYPE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}
_HEADER = {"alg": "EdDSA"}


class SigningKeyError(ValueError):
    """A key file is not an Ed25519 key in PEM."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_input(bundle: dict[str, Any], header: str) -> bytes:
    """JWS signing input for a detached payload: header '.' base64url(canonical bundle)."""
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    return f"{header}.{_b64url(dumps(unsigned))}".encode("ascii")


def sign(
    bundle: dict[str, Any], key: Ed25519PrivateKey, org: str, when: datetime
) -> dict[str, Any]:
    """The bundle with ``signature`` set: signed by ``org`` with ``key`` at ``when``."""
    header = _b64url(orjson.dumps(_HEADER | {"kid": org}, option=orjson.OPT_SORT_KEYS))
    signature = _b64url(key.sign(signing_input(bundle, header)))
    jws = f"{header}..{signature}"
    return bundle | {
        "signature": {
            "type": [SIG_TYPE],
            "when": when.isoformat(),
            "who": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                   "value": org}},
            "sigFormat": SIG_FORMAT,
            "data": base64.b64encode(jws.encode("ascii")).decode("ascii"),
        }
    }  # fmt: skip


def signed_by(bundle: dict[str, Any]) -> str | None:
    """The ``kid`` the signature names, or ``None`` when there is no readable signature."""
    parts = _parts(bundle)
    return parts[0].get("kid") if parts else None


def who(bundle: dict[str, Any]) -> str | None:
    """The organisation ``Bundle.signature.who`` names: the signer the stored copy declares."""
    signature = bundle.get("signature")
    found = signature.get("who") if isinstance(signature, dict) else None
    ident = found.get("identifier") if isinstance(found, dict) else None
    value = ident.get("value") if isinstance(ident, dict) else None
    return value if isinstance(value, str) else None


def _parts(bundle: dict[str, Any]) -> tuple[dict[str, Any], str, bytes] | None:
    signature = bundle.get("signature")
    data = signature.get("data") if isinstance(signature, dict) else None
    if not isinstance(data, str):
        return None
    try:
        header, payload, sig = base64.b64decode(data, validate=True).decode("ascii").split(".")
        head = orjson.loads(_unb64url(header))
        return (head, header, _unb64url(sig)) if payload == "" and isinstance(head, dict) else None
    except (ValueError, orjson.JSONDecodeError):
        return None


def verify(bundle: dict[str, Any], key: Ed25519PublicKey) -> bool:
    """True only for an EdDSA JWS over this bundle that ``key`` made."""
    parts = _parts(bundle)
    if parts is None or parts[0].get("alg") != "EdDSA":
        return False
    _, header, sig = parts
    try:
        key.verify(sig, signing_input(bundle, header))
    except InvalidSignature:
        return False
    return True


def by(bundle: dict[str, Any], org: str, key: Ed25519PublicKey) -> bool:
    """Signed by ``org`` with ``key`` over this bundle, and declaring so (``who``)."""
    return signed_by(bundle) == org and who(bundle) == org and verify(bundle, key)


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_private(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("the key is not an Ed25519 key")
    return key


def load_public(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the key is not an Ed25519 key")
    return key
