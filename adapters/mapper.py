"""The one declarative mapper: a reviewed table map (JSON in ``mappings/``) applied to one row.

A table map names the row id and patient columns, conditions for deleted and confidential rows
and for rows not to take in, and one or more resources, each a list of element rules. An element
rule sets one FHIR path from a constant, a column (parsed by a named type, optionally through a
value map), a coded concept (source codings plus their SNOMED translation), a reference to
another source row, or a nested object. Rules hold paths and lookups, never expressions, so a
clinical safety officer can review a map without reading Python. See ``docs/mappings.md`` for the
full rule language.
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
from adapters.base import (
    Issue,
    MapContext,
    MapOutcome,
    Mapped,
    SourceRecord,
    resource_id,
    source_key,
)
from adapters.codes import MAPPINGS_DIR
from adapters.schema import check

Parser = Callable[[str], Any]

PARSERS: dict[str, Parser] = {
    "text": lambda s: s.strip(),
    "words": lambda s: s.split(),
    "tpp_date": values.tpp_date,
    "tpp_datetime": values.tpp_datetime,
    "tpp_instant": values.tpp_instant,
    "iso_date": values.iso_date,
    "boolean": values.boolean,
    "decimal": lambda s: _json_number(values.decimal(s)),
    "integer": values.integer,
    "nhs_number": values.nhs_number,
    "guid": lambda s: s.strip().strip("{}").lower(),
}


def _json_number(value: Decimal) -> int | Decimal:
    """A whole number written without a fraction is an integer (``120``); any other keeps the
    precision it was written with (``120.0``, ``5.10``: FHIR decimals do), written exactly by
    ``engine.canonical``."""
    exponent = value.as_tuple().exponent
    whole = isinstance(exponent, int) and exponent >= 0 and value.adjusted() < 19
    whole = whole and int(value) in values.INT64
    return int(value) if whole else value


class _RowProblem(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.issue = Issue(field, reason)


def _raw(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    return value.strip() if type(value) is str else str(value).strip()


Condition = Callable[[Mapping[str, Any]], bool]


def condition(cond: Mapping[str, Any]) -> Condition:
    """Compile a condition: ``present``, ``in``/``not_in`` (case-insensitive), ``all``, ``any``."""
    if "all" in cond:
        every = tuple(condition(c) for c in cond["all"])
        return lambda row: all(c(row) for c in every)
    if "any" in cond:
        some = tuple(condition(c) for c in cond["any"])
        return lambda row: any(c(row) for c in some)
    column = cond["column"]
    if "present" in cond:
        present = cond["present"]
        return lambda row: bool(_raw(row, column)) is present
    if "in" in cond:
        among = frozenset(str(v).lower() for v in cond["in"])
        return lambda row: _raw(row, column).lower() in among
    outside = frozenset(str(v).lower() for v in cond["not_in"])
    return lambda row: _raw(row, column).lower() not in outside


def _when(cond: Mapping[str, Any] | None) -> Condition | None:
    return None if cond is None else condition(cond)


@dataclass(frozen=True, slots=True)
class _Env:
    record: SourceRecord
    ctx: MapContext
    row: Mapping[str, Any]
    #: Issues of ``withhold_invalid`` objects left out of this record's resources.
    withheld: list[Issue]


Value = Callable[[_Env], Any]
Steps = tuple[tuple[str, int | None], ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    """One element rule, compiled: its condition, how to get its value, where to put it."""

    when: Condition | None
    value: Value
    steps: Steps
    #: The key when the path is one plain key (most are): set directly, without ``_set``.
    key: str | None
    #: The field a missing required value is reported against; None if not required.
    required: str | None
    #: Whether the value comes from the row (a constant alone does not keep an object).
    data: bool


@dataclass(frozen=True, slots=True)
class _Rules:
    rules: tuple[_Rule, ...]
    has_data_rules: bool


def _parser(rule: Mapping[str, Any]) -> Callable[[str, str, _Env], Any]:
    """The column rule's parse (by type, then through its value map), as one function."""
    kind = rule.get("type", "text")
    parse = PARSERS[kind]
    precision = rule.get("precision") if kind == "iso_date" else None
    table = rule.get("map")
    has_default = "map_default" in rule
    default = rule.get("map_default")

    def run(raw: str, column: str, env: _Env) -> Any:
        try:
            if precision is not None:
                value: Any = values.iso_date(raw, _raw(env.row, precision))
            else:
                value = parse(raw)
        except values.ValueProblem as exc:
            raise _RowProblem(column, str(exc)) from None
        if table is None:
            return value
        key = str(value).lower() if isinstance(value, bool) else str(value)
        if key not in table:
            if has_default:
                return default
            raise _RowProblem(column, f"value {raw!r} has no entry in the map")
        return table[key]

    return run


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


def _reference(ref: Mapping[str, Any], env: _Env) -> dict[str, str] | None:
    row_id = _raw(env.row, ref["column"])
    if not row_id:
        return None
    source = env.record.ref
    rtype = ref["type"]
    key = source_key(source.system, source.org, ref["table"], row_id)
    return {"reference": f"{rtype}/{resource_id(rtype, key)}"}


def _value(rule: Mapping[str, Any]) -> Value:
    """How a rule gets its value from a row, decided once when the map is compiled."""
    if "value" in rule:
        constant = rule["value"]
        return lambda env: constant
    if "column" in rule:
        column = rule["column"]
        parse = _parser(rule)

        def from_column(env: _Env) -> Any:
            raw = _raw(env.row, column)
            return parse(raw, column, env) if raw else None

        return from_column
    if "concept" in rule:
        return lambda env: _concept(rule, env)
    if "ref" in rule:
        ref = rule["ref"]
        return lambda env: _reference(ref, env)
    if "object" in rule:
        nested = _compile_rules(rule["object"])
        if rule.get("withhold_invalid"):
            return lambda env: _withholding(nested, env)
        return lambda env: _build(nested, env, nested=True) or None
    raise ValueError(f"map rule for {rule.get('path')!r} has no source")  # schema prevents


def _steps(path: str) -> Steps:
    """``a.b[].c[0]`` → ``(("a", None), ("b", -1), ("c", 0))``: -1 appends, None is a key."""
    steps: list[tuple[str, int | None]] = []
    for part in path.split("."):
        if part.endswith("]"):
            name, index = part[:-1].split("[")
            steps.append((name, int(index) if index else -1))
        else:
            steps.append((part, None))
    return tuple(steps)


def _plain_key(path: str) -> bool:
    return "." not in path and "[" not in path


def _compile_rules(rules: list[Mapping[str, Any]]) -> _Rules:
    compiled = tuple(
        _Rule(
            when=_when(rule.get("when")),
            value=_value(rule),
            steps=_steps(rule["path"]),
            key=rule["path"] if _plain_key(rule["path"]) else None,
            required=(rule.get("column") or rule["path"]) if rule.get("required") else None,
            data="value" not in rule,
        )
        for rule in rules
    )
    return _Rules(compiled, any(r.data for r in compiled))


def _set(target: dict[str, Any], steps: Steps, value: Any) -> None:
    """Set a dotted path; ``name[]`` appends (or extends with a list), ``name[0]`` indexes."""
    *parents, (last, last_index) = steps
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


def _build(rules: _Rules, env: _Env, nested: bool = False) -> dict[str, Any]:
    """Build an object; a nested one whose data rules all came out empty is dropped whole."""
    out: dict[str, Any] = {}
    has_data = False
    row = env.row
    for rule in rules.rules:
        if rule.when is not None and not rule.when(row):
            continue
        value = rule.value(env)
        if value is None or value == [] or value == "":
            if rule.required is not None:
                raise _RowProblem(rule.required, "required value is missing")
            continue
        if rule.data:
            has_data = True
        if rule.key is not None:
            out[rule.key] = value
        else:
            _set(out, rule.steps, value)
    if nested and not has_data and rules.has_data_rules:
        return {}
    return out


def _withholding(rules: _Rules, env: _Env) -> dict[str, Any] | None:
    """A ``withhold_invalid`` object: a value that cannot be parsed drops it, not the row."""
    try:
        return _build(rules, env, nested=True) or None
    except _RowProblem as problem:
        issue = problem.issue
        env.withheld.append(Issue(issue.field, f"{issue.reason}; taken in without it"))
        return None


@dataclass(frozen=True, slots=True)
class _Confidential:
    when: Condition
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Held:
    """A ``quarantine`` rule: rows it holds are not taken in, for the reason it names."""

    when: Condition
    issue: Issue


@dataclass(frozen=True, slots=True)
class _ResourceSpec:
    resource_type: str
    when: Condition | None
    profile: str | None
    source_identifier: bool
    elements: _Rules


@dataclass(frozen=True, slots=True)
class TableMap:
    """A table map compiled once: conditions, parsers and paths are resolved before any row."""

    table: str
    patient: str | Mapping[str, str] | None
    deleted: Condition | None
    confidential: tuple[_Confidential, ...]
    held: tuple[_Held, ...]
    route_column: str | None
    resources: tuple[_ResourceSpec, ...]
    #: A resource's ``when`` reads a joined (``_``) field: see ``MapOutcome.joined_choice``.
    joined_choice: bool = False


def compile_table_map(doc: Mapping[str, Any]) -> TableMap:
    rules = doc.get("confidential", [])
    return TableMap(
        table=doc["table"],
        patient=doc.get("patient"),
        deleted=_when(doc.get("deleted")),
        confidential=tuple(
            _Confidential(condition(rule["when"]), tuple(rule["labels"]))
            for rule in ([rules] if isinstance(rules, dict) else rules)
        ),
        held=tuple(
            _Held(condition(rule["when"]), Issue(rule["column"], rule["reason"]))
            for rule in doc.get("quarantine", [])
        ),
        route_column=doc.get("route_column"),
        resources=tuple(
            _ResourceSpec(
                resource_type=spec["resourceType"],
                when=_when(spec.get("when")),
                profile=spec.get("profile"),
                source_identifier=spec.get("source_identifier", True),
                elements=_compile_rules(spec["elements"]),
            )
            for spec in doc["resources"]
        ),
        joined_choice=any(_reads_joined(spec.get("when")) for spec in doc["resources"]),
    )


#: Set by a reader that met every row a record's choice of resources turns on (the joined row
#: itself, or a full extract): what the record no longer yields may then be withdrawn
#: (``MapOutcome.joined_choice``).
JOINS_KNOWN = "_JoinsKnown"
#: Set by a reader on a row whose choice joins it did not meet (a delta without the unchanged
#: problem row), naming them and the file they come from (``{"file": ..., "fields": [...]}``):
#: the ingest takes them from the row as last seen (``engine.kept``), so the row maps as it
#: did and not as if its problem had gone.
TAKE_STORED_JOINS = "_TakeStoredJoins"
#: Set by a reader on the joins it met for a row it did not (a delta's problem row, added or
#: removed, without its unchanged coded event), naming the joins they replace: the ingest maps
#: the row as last taken in with these joins instead (``engine.kept``).
TAKE_STORED_ROW = "_TakeStoredRow"


def _reads_joined(node: Any) -> bool:
    """Whether a condition reads a field the reader joined in (named ``_...``)."""
    if isinstance(node, Mapping):
        column = node.get("column")
        if isinstance(column, str) and column.startswith("_"):
            return True
        return any(_reads_joined(v) for v in node.values())
    if isinstance(node, list):
        return any(_reads_joined(v) for v in node)
    return False


def map_row(table_map: TableMap, record: SourceRecord, ctx: MapContext) -> MapOutcome:
    """Apply a table map to one row: resources with provenance, or the issues that stop it.

    A row the source deleted that no longer maps as it stands (TPP blanks a removed row's
    columns, an EMIS delta need not send a deleted entry's code) yields nothing, and no issue:
    its key alone says what is withdrawn, and the ingest withdraws what that key yielded before.
    A row a ``quarantine`` rule holds (a test patient) yields nothing either, so what it
    yielded before is withdrawn too, and stays in quarantine with the rule's reason; a deleted
    one is only a deletion.
    """
    if record.read_issues:
        return MapOutcome(issues=record.read_issues)
    row = record.fields
    deleted = table_map.deleted(row) if table_map.deleted is not None else False
    held = () if deleted else tuple(rule.issue for rule in table_map.held if rule.when(row))
    keeps = table_map.joined_choice
    if held:
        return MapOutcome(withheld=held, keeps_row=keeps)
    outcome = _map_row(table_map, record, ctx, deleted)
    return MapOutcome(keeps_row=keeps) if deleted and not outcome.ok else outcome


def _map_row(
    table_map: TableMap, record: SourceRecord, ctx: MapContext, deleted: bool
) -> MapOutcome:
    row = record.fields
    env = _Env(record, ctx, row, [])
    patient = table_map.patient
    patient_key: str | None = None
    if patient == "self":
        patient_key = record.ref.key
    elif isinstance(patient, Mapping):
        pid = _raw(row, patient["column"])
        if not pid:
            return MapOutcome(issues=(Issue(patient["column"], "patient reference is missing"),))
        src = record.ref
        patient_key = source_key(src.system, src.org, patient["table"], pid)
    security = confidential_labels(table_map, row, ctx.canonical_base)
    produced: list[Mapped] = []
    try:
        for spec in table_map.resources:
            if spec.when is not None and not spec.when(row):
                continue
            produced.append(_resource(spec, env, patient_key, deleted, security))
    except _RowProblem as problem:
        return MapOutcome(issues=(problem.issue,))
    if not produced:
        route = table_map.route_column
        reason = (
            f"value {_raw(row, route)!r} matches no map for {record.ref.table}"
            if route
            else f"row matches no map for {record.ref.table}"
        )
        return MapOutcome(issues=(Issue(route, reason),))
    return MapOutcome(
        resources=tuple(produced),
        withheld=tuple(env.withheld),
        joined_choice=table_map.joined_choice and not deleted and row.get(JOINS_KNOWN) != "true",
        keeps_row=table_map.joined_choice,
    )


def confidential_labels(
    table_map: TableMap, row: Mapping[str, Any], canonical_base: str
) -> list[dict[str, str]]:
    """Labels from every ``confidential`` rule that holds for the row (one rule or a list)."""
    codes = [code for rule in table_map.confidential if rule.when(row) for code in rule.labels]
    return labels.confidential_labels(canonical_base, *dict.fromkeys(codes)) if codes else []


def _resource(
    spec: _ResourceSpec,
    env: _Env,
    patient_key: str | None,
    deleted: bool,
    security: list[dict[str, str]],
) -> Mapped:
    rtype = spec.resource_type
    body: dict[str, Any] = {"resourceType": rtype, "id": env.record.ref.resource_id(rtype)}
    if spec.profile is not None:
        body["meta"] = {"profile": [spec.profile]}
    body.update(_build(spec.elements, env))
    if spec.source_identifier:
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


@cache
def compiled_table_map(style: str, table: str) -> TableMap:
    """The compiled form of ``mappings/<style>/<table>.json``, once per process."""
    return compile_table_map(load_table_map(style, table))
