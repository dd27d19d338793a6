"""Loading the policy files: schema and cross-file checks, and the role → profile map."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.schema import MapFileError
from consent import Policy, PolicyError, load, section_of
from consent.policy import POLICY_DIR
from consent.rules import RULES
from tests.consent.personas import POLICY

DOCS = Path(__file__).resolve().parents[2] / "docs" / "caldicott.md"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, target)
    return target


def _edit(directory: Path, name: str, change: Callable[[Any], object]) -> None:
    path = directory / f"{name}.json"
    doc = orjson.loads(path.read_bytes())
    change(doc)
    path.write_bytes(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("job_role", "org_kind", "activities", "profile"),
    [
        ("R8000", "gp-practice", set(), "clinical"),
        ("R0260", "gp-practice", set(), "clinical"),
        ("R8001", "hospital", set(), "clinical"),
        ("R8014", "council", set(), "social-care"),
        ("R0243", "council", set(), "social-care"),
        ("R8001", "care-home", set(), "care-home"),
        ("R8009", "gp-practice", set(), "admin"),
        ("R8010", "hospital", set(), "admin"),
        ("R8012", "ig-office", set(), "ig-officer"),
        ("R8012", "ig-office", {"B1510"}, "analyst"),
        ("R8014", "hospital", set(), None),
        ("R8004", "hospital", set(), None),
        ("R8000", "council", set(), None),
    ],
)
def test_roles_map_to_profiles(
    job_role: str, org_kind: str, activities: set[str], profile: str | None
) -> None:
    assert POLICY.profile_for(job_role, org_kind, frozenset(activities)) == profile


def test_the_shipped_policy_loads_with_its_versions() -> None:
    policy = load()
    assert isinstance(policy, Policy)
    assert policy.version.startswith("profiles@")
    assert policy.sensitive["sti"] == "sensitive-sti"


def test_an_unknown_type_is_unclassified_and_seen_by_no_one() -> None:
    assert section_of({"resourceType": "Basic"}, POLICY) == "unclassified"
    assert all(
        "unclassified" not in p.sections and "privacy" not in p.sections
        for p in POLICY.profiles.values()
    )


def test_a_malformed_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory, "purposes", lambda d: d["purposes"]["TREAT"].pop("direct_care"))
    with pytest.raises(MapFileError, match=r"purposes\.json"):
        load(directory)


def test_wildcards_are_not_roles(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory, "profiles", lambda d: d["assignments"][0]["roles"].append("*"))
    with pytest.raises(MapFileError):
        load(directory)


def test_files_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory, "profiles", lambda d: d["profiles"]["admin"]["sections"].append("secrets"))
    _edit(directory, "purposes", lambda d: d["purposes"]["TREAT"]["profiles"].append("nobody"))
    with pytest.raises(PolicyError) as raised:
        load(directory)
    assert "no section 'secrets'" in str(raised.value)
    assert "no profile 'nobody'" in str(raised.value)


def test_every_rule_is_in_the_caldicott_table() -> None:
    table = DOCS.read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule.id}`" in table, rule.id
        assert 1 <= rule.principle <= 8


def test_every_test_the_caldicott_table_names_exists() -> None:
    table = DOCS.read_text(encoding="utf-8")
    suite = Path(__file__).parents[1]
    sources = "".join(p.read_text(encoding="utf-8") for p in suite.rglob("test_*.py"))
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    assert named
    for name in named:
        assert f"def {name}(" in sources, name
