"""Reading docker/ without a container engine: Dockerfile instructions, the compose file with
its variables filled in the way compose fills them, and the init SQL's roles."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON-array form of CMD, ENTRYPOINT or HEALTHCHECK's CMD (shell form refused)."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.split(r"\bCMD\b", text, maxsplit=1)[1]
        form = json.loads(text)
        assert isinstance(form, list) and all(isinstance(a, str) for a in form), self
        return form


def dockerfile(path: Path = DOCKER / "Dockerfile") -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    found = []
    for line in joined:
        keyword, _, args = line.partition(" ")
        found.append(Instruction(keyword.upper(), args.strip()))
    return found


def variables(text: str) -> set[str]:
    """The names of every ``${NAME...}`` the text interpolates."""
    return {m["name"] for m in _VARIABLE.finditer(text)}


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` (the forms the file
    uses); an unset required variable raises, as ``docker compose config`` would refuse it."""

    def one(m: re.Match[str]) -> str:
        have = env.get(m["name"])
        if have:
            return have
        if m["op"] == "?":
            raise KeyError(f"{m['name']}: {m['arg']}")
        return m["arg"] or ""

    return _VARIABLE.sub(one, value)


def compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker/compose.yaml parsed (merge keys resolved) with ``env``'s values filled in."""
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(interpolate(text, env))
    return doc


def url_user(url: str) -> tuple[str, str]:
    """The user and database a SQLAlchemy URL connects as."""
    parts = urlsplit(url)
    return parts.username or "", parts.path.lstrip("/")


@dataclass(frozen=True)
class InitSql:
    login_roles: frozenset[str]
    databases: dict[str, str]
    env_passwords: frozenset[str]

    @classmethod
    def read(cls, path: Path) -> InitSql:
        text = path.read_text(encoding="utf-8")
        roles = re.findall(r"CREATE ROLE (\w+) LOGIN\b", text)
        owners = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", text))
        passwords = re.findall(r"\\getenv \w+ (\w+)", text)
        return cls(frozenset(roles), owners, frozenset(passwords))
