"""Every mapping and policy file is checked against its JSON Schema when it is loaded."""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "mappings" / "schema"


class MapFileError(ValueError):
    """A reviewed data file does not match its schema; lists every problem with its path."""


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(name: str, doc: Any, where: str) -> None:
    """Raise :class:`MapFileError` naming ``where`` and each failing path in ``doc``."""
    problems = _problems(name, orjson.dumps(doc))
    if problems:
        raise MapFileError(f"{where} does not match schema '{name}':\n  " + "\n  ".join(problems))


@lru_cache(maxsize=64)
def _problems(name: str, doc: bytes) -> tuple[str, ...]:
    """Each content judged once per process: jsonschema takes tens of milliseconds over the
    policy, which every app made (every test's, every worker's) loads again."""
    errors = _validator(name).iter_errors(orjson.loads(doc))
    return tuple(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(errors, key=lambda e: list(e.absolute_path))
    )
