"""``scr transfer``: make a key, register it, and send a message signed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.cli import app
from tests.api.conftest import NHS, Store, Token
from tests.api.transfers import CARE_HOME, CARE_ROLE, HOSPITAL, add_parties, place

runner = CliRunner()


def scr(db_url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"SCR_DATABASE_URL": db_url, **env})


def test_a_registered_key_signs_a_message_scr_accepts(
    client: TestClient, store: Store, token: Token, tmp_path: Path, monkeypatch: Any
) -> None:
    add_parties(store.engine, tmp_path)
    place(store, CARE_HOME)
    url = store.settings.database_url
    made = scr(url, "transfer", "keygen", str(tmp_path / "home.pem"))
    assert made.exit_code == 0, made.output
    (tmp_path / "home.pub").write_text(made.stdout)
    assert scr(url, "transfer", "register-key", "R0000", str(tmp_path / "home.pub")).exit_code
    registered = scr(url, "transfer", "register-key", CARE_HOME, str(tmp_path / "home.pub"))
    assert registered.exit_code == 0, registered.output
    resident = ["--nhs", NHS, "--family", "Smith", "--given", "Renée", "--born", "1950-03-01"]
    example = scr(url, "transfer", "example", *resident, "--from", CARE_HOME, "--to", HOSPITAL)
    assert example.exit_code == 0, example.output
    (tmp_path / "message.json").write_text(example.stdout)
    monkeypatch.setattr(httpx, "post", lambda url, timeout, **kw: client.post(url, **kw))
    home = token("gp", org=CARE_HOME, role_code=CARE_ROLE)
    args = ["transfer", "send", str(tmp_path / "message.json"), "--to", "http://testserver"]
    sent = scr(url, *args, "--key", str(tmp_path / "home.pem"), SCR_TOKEN=home)
    assert sent.exit_code == 0, sent.output
    assert orjson.loads(sent.stdout)["entry"][0]["resource"]["response"]["code"] == "ok"
    again = scr(url, *args, "--key", str(tmp_path / "home.pem"), SCR_TOKEN=home)
    assert again.exit_code == 0


def test_keygen_never_overwrites_a_key(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("kept")
    made = scr(db_url, "transfer", "keygen", str(tmp_path / "k.pem"))
    assert made.exit_code == 2
    assert (tmp_path / "k.pem").read_text() == "kept"


@pytest.mark.parametrize("content", [b"not json", b'{"resourceType": "Bundle"}'])
def test_send_names_an_unreadable_message(db_url: str, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "m.json").write_bytes(content)
    (tmp_path / "k.pem").write_bytes(b"")
    sent = scr(db_url, "transfer", "send", str(tmp_path / "m.json"), "--to", "http://x",
               "--key", str(tmp_path / "k.pem"))  # fmt: skip
    assert sent.exit_code == 2
