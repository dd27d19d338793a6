"""The one declarative mapper: a reviewed table map (JSON in ``mappings/``) applied to one row.

A table map names the row id and patient columns, conditions for deleted and confidential rows,
and one or more resources, each a list of element rules. An element rule sets one FHIR path from
a constant, a column (parsed by a named type, optionally through a value map), a coded concept
(source codings plus their SNOMED translation), a reference to another source row, or a nested
object. Rules hold paths and lookups, never expressions, so a clinical safety officer can review
a map without reading Python. See ``docs/mappings.md`` for the full rule language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from adapters import labels, values
from adapters.base import Issue, MapContext, MapOutcome, Mapped, SourceRecord, SourceRef
from adapters.codes import MAPPINGS_DIR
from adapters.schema import check

Parser = Callable[[str], Any]

PARSERS: dict[str, Parser] = {
    "text": lambda s: s.strip(),
    "words": lambda s: s.split(),
    "tpp_date": values.tpp_date,
    "tpp_datetime": values.tpp_datetime,
    "iso_date": values.iso_date,
    "boolean": values.boolean,
    "decimal": lambda s: _json_number(values.decimal(s)),
    "integer": lambda s: int(values.decimal(s)),
    "nhs_number": values.nhs_number,
    "guid": lambda s: s.strip().strip("{}").lower(),
}


def _json_number(value: Decimal) -> int | float:
    """JSON has one number type; integral values stay integers so ``120`` is not ``120.0``."""
    return int(value) if value == value.to_integral_value() else float(value)


class _RowProblem(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.issue = Issue(field, reason)


def _raw(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def holds(cond: Mapping[str, Any] | None, row: Mapping[str, Any]) -> bool:
    """Evaluate a condition: ``present``, ``in``/``not_in`` (case-insensitive), ``all``, ``any``."""
    if cond is None:
        return True
    if "all" in cond:
        return all(holds(c, row) for c in cond["all"])
    if "any" in cond:
        return any(holds(c, row) for c in cond["any"])
    raw = _raw(row, cond["column"])
    if "present" in cond:
        return bool(raw) is cond["present"]
    if "in" in cond:
        return raw.lower() in {str(v).lower() for v in cond["in"]}
    return raw.lower() not in {str(v).lower() for v in cond["not_in"]}


@dataclass(frozen=True, slots=True)
class _Env:
    record: SourceRecord
    ctx: MapContext
    row: Mapping[str, Any]
    #: Issues of ``withhold_invalid`` objects left out of this record's resources.
    withheld: list[Issue]


def _parse(rule: Mapping[str, Any], raw: str, column: str, env: _Env) -> Any:
    kind = rule.get("type", "text")
    try:
        if kind == "iso_date" and "precision" in rule:
            value: Any = values.iso_date(raw, _raw(env.row, rule["precision"]))
        else:
            value = PARSERS[kind](raw)
    except values.ValueProblem as exc:
        raise _RowProblem(column, str(exc)) from None
    if "map" in rule:
        key = str(value).lower() if isinstance(value, bool) else str(value)
        table = rule["map"]
        if key not in table:
            if "map_default" in rule:
                return rule["map_default"]
            raise _RowProblem(column, f"value {raw!r} has no entry in the map")
        return table[key]
    return value


def _coding(spec: Mapping[str, Any], env: _Env) -> list[dict[str, Any]]:
    code = _raw(env.row, spec["code"])
    if not code:
        return []
    if "code_map" in spec:
        mapped = spec["code_map"].get(code)
        if mapped is None:
            raise _RowProblem(spec["code"], f"code {code!r} has no entry in the map")
        code = mapped
    system = spec["system"]
    coding: dict[str, Any] = {"system": system, "code": code}
    display = _raw(env.row, spec["display"]) if "display" in spec else ""
    if display:
        coding["display"] = display
    out = [coding]
    target_system = spec.get("translate")
    if target_system:
        target = env.ctx.codes.translate(system, code, target_system)
        if target is not None:
            out.append(
                {"system": target_system, "code": target.code}
                | ({"display": target.display} if target.display else {})
            )
    return out


def _concept(rule: Mapping[str, Any], env: _Env) -> dict[str, Any] | None:
    codings: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for spec in rule["concept"]:
        for c in _coding(spec, env):
            if (c["system"], c["code"]) not in seen:
                seen.add((c["system"], c["code"]))
                codings.append(c)
    text = _raw(env.row, rule["text"]) if "text" in rule else ""
    need = rule.get("require_system")
    if need and codings and not any(c["system"] == need for c in codings):
        given = ", ".join(f"{c['code']} ({c['system']})" for c in codings)
        field = rule["concept"][0]["code"]
        raise _RowProblem(field, f"unknown code {given} with no map to {need}")
    if not codings:
        return {"text": text} if text else None
    return {"coding": codings} | ({"text": text} if text else {})


def _reference(rule: Mapping[str, Any], env: _Env) -> dict[str, str] | None:
    ref = rule["ref"]
    row_id = _raw(env.row, ref["column"])
    if not row_id:
        return None
    source = env.record.ref
    target = SourceRef(source.system, source.org, ref["table"], row_id)
    return {"reference": f"{ref['type']}/{target.resource_id(ref['type'])}"}


def _value(rule: Mapping[str, Any], env: _Env) -> Any:
    if "value" in rule:
        return rule["value"]
    if "column" in rule:
        raw = _raw(env.row, rule["column"])
        return _parse(rule, raw, rule["column"], env) if raw else None
    if "concept" in rule:
        return _concept(rule, env)
    if "ref" in rule:
        return _reference(rule, env)
    if "object" in rule:
        try:
            obj = _build(rule["object"], env, nested=True)
        except _RowProblem as problem:
            if not rule.get("withhold_invalid"):
                raise
            issue = problem.issue
            env.withheld.append(Issue(issue.field, f"{issue.reason}; taken in without it"))
            return None
        return obj or None
    raise _RowProblem(None, f"map rule for {rule.get('path')!r} has no source")  # schema prevents


@cache
def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    """``a.b[].c[0]`` → ``(("a", None), ("b", -1), ("c", 0))``: -1 appends, None is a key."""
    steps: list[tuple[str, int | None]] = []
    for part in path.split("."):
        if part.endswith("]"):
            name, index = part[:-1].split("[")
            steps.append((name, int(index) if index else -1))
        else:
            steps.append((part, None))
    return tuple(steps)


def _set(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path; ``name[]`` appends (or extends with a list), ``name[0]`` indexes."""
    *parents, (last, last_index) = _steps(path)
    node: Any = target
    for name, index in parents:
        if index is None:
            node = node.setdefault(name, {})
            continue
        items = node.setdefault(name, [])
        if index < 0:
            items.append({})
            node = items[-1]
            continue
        while len(items) <= index:
            items.append({})
        node = items[index]
    if last_index is None:
        node[last] = value
    elif last_index < 0:
        node.setdefault(last, []).extend(value if isinstance(value, list) else [value])
    else:
        items = node.setdefault(last, [])
        while len(items) <= last_index:
            items.append(None)
        items[last_index] = value


def _build(rules: list[Mapping[str, Any]], env: _Env, nested: bool = False) -> dict[str, Any]:
    """Build an object; a nested one whose data rules all came out empty is dropped whole."""
    out: dict[str, Any] = {}
    has_data = False
    for rule in rules:
        if not holds(rule.get("when"), env.row):
            continue
        value = _value(rule, env)
        if value is None or value == [] or value == "":
            if rule.get("required"):
                field = rule.get("column") or rule["path"]
                raise _RowProblem(field, "required value is missing")
            continue
        if "value" not in rule:
            has_data = True
        _set(out, rule["path"], value)
    if nested and not has_data and any("value" not in r for r in rules):
        return {}
    return out


def map_row(table_map: Mapping[str, Any], record: SourceRecord, ctx: MapContext) -> MapOutcome:
    """Apply a table map to one row: resources with provenance, or the issues that stop it."""
    if record.read_issues:
        return MapOutcome(issues=record.read_issues)
    row = record.fields
    env = _Env(record, ctx, row, [])
    patient = table_map.get("patient")
    patient_key: str | None = None
    if patient == "self":
        patient_key = record.ref.key
    elif patient:
        pid = _raw(row, patient["column"])
        if not pid:
            return MapOutcome(issues=(Issue(patient["column"], "patient reference is missing"),))
        src = record.ref
        patient_key = SourceRef(src.system, src.org, patient["table"], pid).key
    deleted = holds(table_map["deleted"], row) if "deleted" in table_map else False
    security = confidential_labels(table_map, row, ctx.canonical_base)
    produced: list[Mapped] = []
    try:
        for spec in table_map["resources"]:
            if not holds(spec.get("when"), row):
                continue
            produced.append(_resource(spec, env, patient_key, deleted, security))
    except _RowProblem as problem:
        return MapOutcome(issues=(problem.issue,))
    if not produced:
        route = table_map.get("route_column")
        reason = (
            f"value {_raw(row, route)!r} matches no map for {record.ref.table}"
            if route
            else f"row matches no map for {record.ref.table}"
        )
        return MapOutcome(issues=(Issue(route, reason),))
    return MapOutcome(resources=tuple(produced), withheld=tuple(env.withheld))


def confidential_labels(
    table_map: Mapping[str, Any], row: Mapping[str, Any], canonical_base: str
) -> list[dict[str, str]]:
    """Labels from every ``confidential`` rule that holds for the row (one rule or a list)."""
    rules = table_map.get("confidential", [])
    codes = [
        code
        for rule in ([rules] if isinstance(rules, dict) else rules)
        if holds(rule["when"], row)
        for code in rule["labels"]
    ]
    return labels.confidential_labels(canonical_base, *dict.fromkeys(codes)) if codes else []


def _resource(
    spec: Mapping[str, Any],
    env: _Env,
    patient_key: str | None,
    deleted: bool,
    security: list[dict[str, str]],
) -> Mapped:
    rtype = spec["resourceType"]
    body: dict[str, Any] = {"resourceType": rtype, "id": env.record.ref.resource_id(rtype)}
    if "profile" in spec:
        body["meta"] = {"profile": [spec["profile"]]}
    body.update(_build(spec["elements"], env))
    if spec.get("source_identifier", True):
        body.setdefault("identifier", []).append(
            {"system": env.ctx.canonical_base + "Id/source-record", "value": env.record.ref.key}
        )
    labels.add_labels(body, security)
    return Mapped(resource=body, patient_key=patient_key, deleted=deleted)


@cache
def load_table_map(style: str, table: str, root: Path = MAPPINGS_DIR) -> dict[str, Any]:
    """Load and schema-check ``mappings/<style>/<table>.json`` once per process."""
    path = root / style / f"{table}.json"
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    check("table-map", doc, str(path))
    return doc
