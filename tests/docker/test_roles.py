"""The init SQL run for real (PostgreSQL only): the owner migrates, and the app role it makes can
serve and append to the audit trail but cannot change the schema or rewrite the trail.

The roles and database get unique names so runs sharing a server do not meet; everything is
dropped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from engine.api import create_app
from engine.db import make_engine
from engine.migrate import upgrade
from engine.settings import Settings
from tests.conftest import BACKEND
from tests.docker.files import DOCKER

pytestmark = pytest.mark.postgres
SQL = DOCKER / "initdb" / "10-scr-roles.sql"


@dataclass(frozen=True)
class Stack:
    owner: Engine
    app: Engine
    app_url: str


def _renamed(sql: str, suffix: str) -> str:
    sql = re.sub(r"\b(scr_owner|scr_app)\b", rf"\1_{suffix}", sql)
    return re.sub(r"(DATABASE |\\connect )scr\b", rf"\1scr_{suffix}", sql)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    if not BACKEND.startswith("postgresql") or shutil.which("psql") is None:
        pytest.skip("needs PostgreSQL (SCR_TEST_DATABASE) and psql")
    suffix = uuid.uuid4().hex[:8]
    admin = make_url(BACKEND)
    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    env = os.environ | {"DB_OWNER_PASSWORD": "owner-pw", "DB_APP_PASSWORD": "app-pw"}
    run = subprocess.run(
        ["psql", "-X", "-q", "-d", libpq, "-f", "-"],
        input=_renamed(SQL.read_text(encoding="utf-8"), suffix), env=env, text=True,
        capture_output=True, check=False,
    )  # fmt: skip
    database = f"scr_{suffix}"

    def url(role: str, password: str) -> str:
        return admin.set(username=role, password=password, database=database).render_as_string(
            hide_password=False
        )

    try:
        assert run.returncode == 0, run.stderr
        owner = make_engine(url(f"scr_owner_{suffix}", "owner-pw"))
        monkeypatch.setenv("SCR_DB_APP_ROLE", f"scr_app_{suffix}")
        upgrade(owner)
        monkeypatch.delenv("SCR_DB_APP_ROLE")
        app_url = url(f"scr_app_{suffix}", "app-pw")
        app = make_engine(app_url)
        yield Stack(owner, app, app_url)
        app.dispose()
        owner.dispose()
    finally:
        cleanup = make_engine(BACKEND, isolation_level="AUTOCOMMIT")
        with cleanup.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for role in (f"scr_app_{suffix}", f"scr_owner_{suffix}"):
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        cleanup.dispose()


def test_the_app_role_starts_serves_and_appends_to_the_trail(stack: Stack, tmp_path: Path) -> None:
    upgrade(stack.app)  # what `scr serve` does first: a no-op at the head revision
    settings = Settings(database_url=stack.app_url, data_dir=tmp_path, auth_mode="dev")
    with TestClient(create_app(settings, stack.app)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/fhir/Patient/x").status_code == 401  # audited as token-refused
    with stack.app.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM resource")).scalar_one() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET user_id = 'x'",
        "DELETE FROM audit_entry",
        "TRUNCATE audit_entry",
        "DROP TRIGGER audit_entry_append_only ON audit_entry",
        "CREATE TABLE sneaky (id int)",
        "ALTER TABLE resource ADD COLUMN sneaky int",
        "DELETE FROM alembic_version",
        "UPDATE alembic_version SET version_num = '0001'",
    ],
)
def test_the_app_role_cannot_rewrite_the_trail_or_the_schema(stack: Stack, statement: str) -> None:
    refused = pytest.raises(ProgrammingError, match=r"permission denied|must be owner")
    with refused, stack.app.begin() as conn:
        conn.execute(text(statement))
