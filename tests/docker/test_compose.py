"""docker/ checked without a container engine: the image runs a real ``scr`` command as a
non-root user, and the compose stack migrates as the owner and serves as the restricted role
with settings that load."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from engine.api import create_app
from engine.cli import app as cli_app
from engine.settings import Settings
from tests.docker.files import DOCKER, ROOT, InitSql, compose, dockerfile, url_user, variables

#: Values for the variables compose requires, as an operator's .env would give them.
FILLED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "DB_OWNER_PASSWORD": "owner-secret",
    "DB_APP_PASSWORD": "app-secret",
    "SCR_JWT_ISSUER": "https://idp.example/",
    "SCR_JWKS_URL": "https://idp.example/jwks",
    "SCR_PUBLIC_BASE_URL": "https://scr.example.nhs.uk",
    "FORWARDED_ALLOW_IPS": "172.18.0.1",
}
SETTINGS = {f"SCR_{f.name.upper()}" for f in dataclasses.fields(Settings)}
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
INIT = DOCKER / "initdb"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose(FILLED)


def scr_command(argv: list[str]) -> tuple[list[str], Any]:
    """The ``scr`` command ``argv`` names, and its click context with the options parsed as the
    CLI would parse them (typer bundles its own click, so this goes by shape, not by class)."""
    command: Any = typer.main.get_command(cli_app)
    names: list[str] = []
    words = list(argv)
    while hasattr(command, "commands") and words:
        found = command.commands.get(words[0])
        assert found is not None, f"scr has no command {argv}"
        names.append(words.pop(0))
        command = found
    assert not hasattr(command, "commands"), f"{argv} names a group, not a command"
    return names, command.make_context("scr", words)


def image_argv() -> list[str]:
    instructions = {i.keyword: i for i in dockerfile()}
    return instructions["ENTRYPOINT"].exec_form() + instructions["CMD"].exec_form()


def test_the_image_is_slim_python_311_and_runs_as_a_user() -> None:
    steps = dockerfile()
    assert [i.args for i in steps if i.keyword == "FROM"] == ["python:3.11-slim-bookworm"]
    users = [i.args for i in steps if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_default_command_serves_on_every_interface() -> None:
    argv = image_argv()
    assert argv[0] == "scr"
    names, ctx = scr_command(argv[1:])
    assert names == ["serve"]
    assert ctx.params["host"] == "0.0.0.0"
    workers = next(p for p in ctx.command.params if p.name == "workers")
    assert workers.envvar == "WEB_CONCURRENCY"
    env = " ".join(i.args for i in dockerfile() if i.keyword == "ENV").split()
    assert any(word.startswith("WEB_CONCURRENCY=") for word in env)


def test_the_healthcheck_asks_a_route_the_app_has(tmp_path: Path) -> None:
    check = next(i for i in dockerfile() if i.keyword == "HEALTHCHECK").exec_form()
    urls = re.findall(r"https?://[^'\"]+", " ".join(check))
    assert urls == ["http://127.0.0.1:8000/healthz"]
    assert "EXPOSE 8000" in {f"{i.keyword} {i.args}" for i in dockerfile()}
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/h.db", data_dir=tmp_path, auth_mode="dev"
    )
    paths = {getattr(r, "path", None) for r in create_app(settings).routes}
    assert "/healthz" in paths


def test_what_the_image_copies_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for step in dockerfile():
        if step.keyword != "COPY":
            continue
        *sources, _dest = step.args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
            copied.add(source)
    runtime = {"engine", "adapters", "consent", "audit", "mappings", "pyproject.toml", "README.md"}
    assert runtime <= copied
    assert {"**/.env", ".venv", "tests"} <= set(ignored)


def test_every_scr_variable_is_a_real_setting() -> None:
    named = set(re.findall(r"\bSCR_[A-Z0-9_]+", COMPOSE_TEXT))
    named |= set(re.findall(r"\bSCR_[A-Z0-9_]+", (DOCKER / "Dockerfile").read_text()))
    named |= set(re.findall(r"^(SCR_[A-Z0-9_]+)=", (DOCKER / "env.example").read_text(), re.M))
    assert named, "compose names no setting at all"
    assert named <= SETTINGS, f"not settings: {sorted(named - SETTINGS)}"


def test_every_variable_compose_reads_is_in_the_example_env() -> None:
    example = set(re.findall(r"^([A-Z0-9_]+)=", (DOCKER / "env.example").read_text(), re.M))
    assert variables(COMPOSE_TEXT) <= example
    assert "$" not in re.sub(r"\$\{[A-Za-z0-9_]+(:[-?][^}]*)?\}", "", COMPOSE_TEXT)


def test_the_proxy_the_readme_says_to_name_reaches_the_app(stack: dict[str, Any]) -> None:
    """README, *Behind the proxy*: set FORWARDED_ALLOW_IPS, or the trail records the proxy's
    address as every user's. Set in docker/.env, compose must pass it to the app."""
    assert "FORWARDED_ALLOW_IPS" in (ROOT / "README.md").read_text()
    assert stack["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"] == "172.18.0.1"
    proxied = compose(FILLED | {"FORWARDED_ALLOW_IPS": "172.18.0.5"})
    assert proxied["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"] == "172.18.0.5"


def test_required_variables_stop_compose_when_unset() -> None:
    for name in ("POSTGRES_PASSWORD", "DB_OWNER_PASSWORD", "DB_APP_PASSWORD", "SCR_JWT_ISSUER",
                 "FORWARDED_ALLOW_IPS", "SCR_PUBLIC_BASE_URL"):  # fmt: skip
        with pytest.raises(KeyError, match=name):
            compose({k: v for k, v in FILLED.items() if k != name})


def test_three_services_start_in_order(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {"db", "migrate", "app"}
    assert services["db"]["image"] == "postgres:15"
    assert services["db"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["app"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["migrate"]["restart"] == "no"
    for name in ("migrate", "app"):
        build = services[name]["build"]
        assert (DOCKER / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert services["migrate"]["image"] == services["app"]["image"]


def test_migrate_upgrades_as_the_owner_and_names_the_app_role(stack: dict[str, Any]) -> None:
    migrate = stack["services"]["migrate"]
    assert scr_command(migrate["command"])[0] == ["db", "upgrade"]
    env = migrate["environment"]
    settings = Settings.load(env)
    init = InitSql.read(INIT / "10-scr-roles.sql")
    user, database = url_user(settings.database_url)
    assert init.databases == {database: user}, "migrate must connect as the database owner"
    assert settings.db_app_role in init.login_roles
    assert env["PGPASSWORD"] == FILLED["DB_OWNER_PASSWORD"]


def test_the_app_connects_as_the_restricted_role_in_jwt_mode(stack: dict[str, Any]) -> None:
    app = stack["services"]["app"]
    assert "command" not in app, "the app runs the image's default command, scr serve"
    env = {k: str(v) for k, v in app["environment"].items()}
    settings = Settings.load(env)
    assert settings.auth_mode == "jwt"
    assert settings.jwt_issuer == FILLED["SCR_JWT_ISSUER"]
    assert settings.db_app_role is None
    user, database = url_user(settings.database_url)
    migrate = Settings.load(stack["services"]["migrate"]["environment"])
    assert user == migrate.db_app_role
    assert database == url_user(migrate.database_url)[1]
    assert env["PGPASSWORD"] == FILLED["DB_APP_PASSWORD"]
    assert ":" not in url_user_part(settings)
    mounts = {m.split(":")[1]: m.split(":")[0] for m in app["volumes"]}
    assert str(settings.data_dir) in mounts and mounts[str(settings.data_dir)] in stack["volumes"]


def url_user_part(settings: Settings) -> str:
    """The userinfo of the database URL: a password belongs in PGPASSWORD, not in the URL."""
    return settings.database_url.split("//", 1)[1].split("@", 1)[0]


def test_the_init_sql_makes_the_roles_from_the_db_environment(stack: dict[str, Any]) -> None:
    db = stack["services"]["db"]
    assert "./initdb:/docker-entrypoint-initdb.d:ro" in db["volumes"]
    scripts = sorted(INIT.glob("*"))
    assert scripts == [INIT / "10-scr-roles.sql"]
    init = InitSql.read(scripts[0])
    assert len(init.login_roles) == 2
    assert init.env_passwords <= set(db["environment"])
    assert set(init.databases.values()) <= init.login_roles
