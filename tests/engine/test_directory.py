"""The organisation directory: the kind of each organisation, from a reviewed file only."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from consent import load
from engine.directory import (
    D,
    DirectoryError,
    Kinds,
    org_kind,
    read_directory,
    replace_directory,
)
from tests.engine.test_gate import NOW

KINDS = load().org_kinds


def write(tmp_path: Path, organisations: list[dict[str, str]]) -> Path:
    path = tmp_path / "organisations.json"
    path.write_bytes(orjson.dumps({"version": "test.1", "organisations": organisations}))
    return path


def test_loaded_directory_names_each_kind_and_unknown_codes_have_none(engine, tmp_path):
    path = write(tmp_path, [
        {"code": "Y90011", "name": "Ambridge Surgery", "kind": "gp-practice"},
        {"code": "R9Z", "name": "Borchester General", "kind": "hospital"},
    ])  # fmt: skip
    version, entries = read_directory(path, KINDS)
    with engine.begin() as conn:
        assert replace_directory(conn, version, entries, NOW) == 2
        assert org_kind(conn, "R9Z") == "hospital"
        assert org_kind(conn, "Y99999") is None
        replace_directory(conn, version, entries[:1], NOW)
        assert org_kind(conn, "R9Z") is None


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"code": "R9Z", "name": "Borchester", "kind": "spaceport"}, "organisations/0/kind"),
        ({"code": "r9z lower", "name": "Borchester", "kind": "hospital"}, "organisations/0/code"),
        ({"code": "R9Z", "kind": "hospital"}, "'name' is a required property"),
    ],
    ids=["unknown-kind", "bad-code", "missing-name"],
)
def test_a_bad_directory_entry_is_named(tmp_path, entry, named):
    with pytest.raises(DirectoryError, match=named):
        read_directory(write(tmp_path, [entry]), KINDS)


def test_a_code_listed_twice_is_refused(tmp_path):
    twice = [{"code": "R9Z", "name": "A", "kind": "hospital"}] * 2
    with pytest.raises(DirectoryError, match="organisations/1/code: R9Z is listed twice"):
        read_directory(write(tmp_path, twice), KINDS)


def test_kinds_are_cached_for_their_ttl_and_forgotten_when_a_load_commits(engine, tmp_path):
    hospital = {"code": "R9Z", "name": "Borchester General", "kind": "hospital"}
    version, entries = read_directory(write(tmp_path, [hospital]), KINDS)
    with engine.begin() as conn:
        replace_directory(conn, version, entries, NOW)
    clock = [0.0]
    kinds = Kinds(engine, ttl=60, clock=lambda: clock[0])
    assert kinds.cached("R9Z") == (False, None)  # never read: the caller must ask kind()
    assert kinds.kind("R9Z") == "hospital"
    assert kinds.cached("R9Z") == (True, "hospital")
    with engine.begin() as conn:  # another process's load: seen only after the ttl
        conn.execute(update(D).values(kind="council"))
    clock[0] = 59.0
    assert kinds.kind("R9Z") == "hospital"
    clock[0] = 61.0
    assert kinds.cached("R9Z") == (False, None)
    assert kinds.kind("R9Z") == "council"
    council = hospital | {"kind": "care-home"}
    version, entries = read_directory(write(tmp_path, [council]), KINDS)
    with engine.connect() as conn:  # a load that rolls back changes nothing
        replace_directory(conn, version, entries, NOW)
        conn.rollback()
    assert kinds.kind("R9Z") == "council"
    with engine.begin() as conn:  # a load in this process: at once
        replace_directory(conn, version, entries[:0], NOW)
    assert kinds.cached("R9Z") == (False, None)
    assert kinds.kind("R9Z") is None
