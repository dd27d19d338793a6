"""The checkpoint key: made once with mode 0600, or taken from SCR_AUDIT_SIGNING_KEY."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from audit.checkpoint import parse, signature_valid
from audit.keys import KEY_FILE, SigningKeyError, load_public, signing_key
from engine.cli import app
from engine.settings import Settings
from tests.audit.trail import fill

runner = CliRunner()


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_a_key_is_made_on_first_use_readable_only_by_its_owner(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = signing_key(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _pem(signing_key(settings)) == _pem(first), "the same key every time after"


def _public(data_dir: str) -> str:
    key = signing_key(Settings(data_dir=Path(data_dir)))
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_processes_starting_at_once_all_get_the_one_key_made(tmp_path):
    """Workers starting together race to make the key: each gets the winner's, none a file
    read before the winner had written it (no temporary file is left behind either)."""
    fork = multiprocessing.get_context("fork")
    for n in range(30):
        data = tmp_path / f"d{n}"
        with fork.Pool(4) as pool:
            keys = pool.map(_public, [str(data)] * 4)
        assert len(set(keys)) == 1
        assert [p.name for p in data.iterdir()] == [KEY_FILE]


def test_a_key_file_others_can_read_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    signing_key(settings)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(SigningKeyError, match="readable by others"):
        signing_key(settings)


def test_the_setting_takes_pem_text_or_a_path_and_is_never_in_a_repr(tmp_path):
    pem = _pem(Ed25519PrivateKey.generate())
    by_value = Settings(audit_signing_key=pem)
    assert _pem(signing_key(by_value)) == pem
    assert "PRIVATE" not in repr(by_value)
    path = tmp_path / "k.pem"
    path.write_text(pem)
    path.chmod(0o600)
    assert _pem(signing_key(Settings(audit_signing_key=str(path)))) == pem
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM"):
        signing_key(Settings(audit_signing_key="-----BEGIN nonsense"))


def test_checkpoint_is_signed_by_the_key_public_key_prints(engine, db_url, tmp_path):
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path)}
    public = runner.invoke(app, ["audit", "public-key"], env=env)
    assert public.exit_code == 0 and public.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    made = runner.invoke(app, ["audit", "checkpoint"], env=env)
    cp = parse(made.stdout.encode())
    assert cp.size == 0 and signature_valid(cp, load_public(public.stdout.encode()))

    forged = tmp_path / "forged.json"
    forged.write_text(orjson.dumps({**orjson.loads(made.stdout), "size": 0, "time": "x"}).decode())
    result = runner.invoke(app, ["audit", "verify", "--checkpoint", str(forged)], env=env)
    assert result.exit_code == 2 and "signature is not valid" in result.output

    other = tmp_path / "other.pem"
    other.write_text(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    saved = tmp_path / "cp.json"
    saved.write_text(made.stdout)
    args = ["audit", "verify", "--checkpoint", str(saved)]
    assert runner.invoke(app, args, env=env).exit_code == 0
    result = runner.invoke(app, [*args, "--public-key", str(other)], env=env)
    assert result.exit_code == 2 and "the signing key has changed" in result.output
    assert cp.key_id in result.output, "which key signed the checkpoint is named"


def test_verify_with_the_signing_key_missing_refuses_and_makes_none(engine, db_url, tmp_path):
    """Whoever deletes the key file must not have a new one made by the IG office's own
    verify, and the checkpoint then blamed: the verify refuses, saying the key is missing."""
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path)}
    fill(engine, 5)
    saved = tmp_path / "checkpoint.json"
    saved.write_text(runner.invoke(app, ["audit", "checkpoint"], env=env).stdout)
    (tmp_path / KEY_FILE).unlink()
    result = runner.invoke(app, ["audit", "verify", "--checkpoint", str(saved)], env=env)
    assert result.exit_code == 2 and "signing key" in result.output and "missing" in result.output
    assert not (tmp_path / KEY_FILE).exists(), "verify made a new signing key"


#: secp112r1: a well-formed EC key of a kind cryptography cannot load (UnsupportedAlgorithm).
UNSUPPORTED_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAENd9/cy7Y+9AFKlxa2WtgyvXrJYor13Pz
purWrg==
-----END PUBLIC KEY-----
"""
UNSUPPORTED_PRIVATE = """-----BEGIN EC PRIVATE KEY-----
MD4CAQEEDlmJZzi2ExIAWqQV4tTjoAcGBSuBBAAGoSADHgAENd9/cy7Y+9AFKlxa
2WtgyvXrJYor13PzpurWrg==
-----END EC PRIVATE KEY-----
"""


def test_a_key_of_a_kind_cryptography_cannot_load_is_a_signing_key_error(tmp_path):
    with pytest.raises(SigningKeyError, match="not an Ed25519 public key"):
        load_public(UNSUPPORTED_PUBLIC)
    with pytest.raises(SigningKeyError, match="SCR_AUDIT_SIGNING_KEY: not an Ed25519 key"):
        signing_key(Settings(data_dir=tmp_path, audit_signing_key=UNSUPPORTED_PRIVATE))


def test_verify_and_checkpoint_with_such_a_key_say_why_and_exit_2_and_1(engine, db_url, tmp_path):
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path)}
    cp = tmp_path / "cp.json"
    cp.write_text(runner.invoke(app, ["audit", "checkpoint"], env=env).stdout)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(UNSUPPORTED_PUBLIC)
    args = ["audit", "verify", "--checkpoint", str(cp), "--public-key", str(pub)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2 and "cannot verify" in result.output, repr(result.exception)
    unusable = env | {"SCR_AUDIT_SIGNING_KEY": UNSUPPORTED_PRIVATE}
    result = runner.invoke(app, ["audit", "checkpoint"], env=unusable)
    assert result.exit_code == 1 and "not an Ed25519 key" in result.output, repr(result.exception)
