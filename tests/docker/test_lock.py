"""constraints.txt: the versions the suite passes on, which the image and ``make`` install."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.docker.files import ROOT, dockerfile

LOCK = ROOT / "constraints.txt"


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, pinned = line.partition("==")
        assert sep and re.fullmatch(r"[A-Za-z0-9._-]+", name), f"not name==version: {line!r}"
        pins[canonicalize_name(name)] = Version(pinned)
    return pins


def _asked() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    return [Requirement(r) for r in [*project["dependencies"], *(r for e in extras for r in e)]]


def test_every_dependency_is_pinned_within_what_pyproject_allows() -> None:
    pins = _pins()
    for req in _asked():
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is not in constraints.txt: run make lock"
        assert req.specifier.contains(pinned, prereleases=True), f"{req.name}=={pinned}: {req}"


def test_the_suite_runs_on_the_pinned_versions() -> None:
    """What the tests pass on is what the image installs (``make test`` installs the lock)."""
    differ = {}
    for name, pinned in _pins().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:  # a platform's own, as uvloop is not on Windows
            continue
        if installed != pinned:
            differ[name] = f"{installed} installed, {pinned} pinned"
    assert not differ, f"not the locked environment (make clean test): {differ}"


def test_the_image_and_make_install_with_the_lock() -> None:
    installs = [i.args for i in dockerfile() if i.keyword == "RUN" and "pip install" in i.args]
    assert installs and all("--constraint constraints.txt" in i for i in installs)
    copied = " ".join(i.args for i in dockerfile() if i.keyword == "COPY")
    assert "constraints.txt" in copied.split()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pips = [line for line in makefile.splitlines() if "$(BIN)/python -m pip install" in line]
    projects = [line for line in pips if "--upgrade pip" not in line]
    assert len(projects) == 2 and all("--constraint $(LOCK)" in line for line in projects), pips
