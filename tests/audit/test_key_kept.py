"""A signing key that went missing is not replaced silently once a checkpoint is kept.

The IG office checks its checkpoints with the old key's public half: a cron job that went on
signing under a new key, or a ``public-key`` that handed out the new one as if it were the
same, would leave it unable to tell. As the console's Verify, the commands refuse, unless the
operator asks for a new key (``--new-key``), and say so on stderr whenever they make one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from audit.keys import KEY_FILE
from engine.cli import app
from engine.ig.chain import latest_path, verify_now
from engine.settings import Settings
from tests.audit.trail import fill

runner = CliRunner()


def _run(db_url: str, tmp_path: Path, *args: str) -> Any:
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "COLUMNS": "400"}
    return runner.invoke(app, ["audit", *args], env=env)


def _said(text: str) -> str:
    """The words said, whatever the line breaks."""
    return " ".join(text.split())


@pytest.fixture
def kept(engine: Engine, db_url: str, tmp_path: Path) -> str:
    """The console's Verify kept a checkpoint here; then the key file went. Its key id."""
    fill(engine, 5)
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    assert verify_now(engine, settings, datetime.now(UTC))[1] is None
    (tmp_path / KEY_FILE).unlink()
    return str(orjson.loads(latest_path(settings).read_bytes())["key_id"])


@pytest.mark.parametrize("command", ["checkpoint", "public-key"])
def test_a_missing_key_is_not_replaced_while_a_checkpoint_is_kept(
    kept: str, db_url, tmp_path, command
) -> None:
    result = _run(db_url, tmp_path, command)
    assert result.exit_code == 1 and result.stdout == ""
    said = _said(result.stderr)
    assert "signing key" in said and "missing" in said and "--new-key" in said
    assert str(latest_path(Settings(data_dir=tmp_path))) in said
    assert not (tmp_path / KEY_FILE).exists()


def test_new_key_makes_one_and_says_so(kept: str, db_url, tmp_path) -> None:
    made = _run(db_url, tmp_path, "checkpoint", "--new-key")
    assert made.exit_code == 0, made.output
    new = orjson.loads(made.stdout)["key_id"]
    assert new != kept and (tmp_path / KEY_FILE).exists()
    assert f"made a new audit signing key {tmp_path / KEY_FILE} (key id {new})" in _said(
        made.stderr
    )
    again = _run(db_url, tmp_path, "checkpoint", "--new-key")
    assert again.exit_code == 0 and orjson.loads(again.stdout)["key_id"] == new
    assert again.stderr == "", "an existing key is used, never replaced"


def test_the_first_key_is_made_where_nothing_is_kept_and_said_once(
    engine: Engine, db_url, tmp_path
) -> None:
    first = _run(db_url, tmp_path, "public-key")
    assert first.exit_code == 0 and first.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert "made a new audit signing key" in _said(first.stderr)
    made = _run(db_url, tmp_path, "checkpoint")
    assert made.exit_code == 0 and made.stderr == ""
    assert orjson.loads(made.stdout)["size"] == 0
