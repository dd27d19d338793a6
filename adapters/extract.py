"""What the CSV-folder adapters (SystmOne, EMIS, council) share: one table at a time, by map."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.base import ExtractError, Issue, MapContext, MapOutcome, SourceRecord, SourceRef
from adapters.csvread import read_rows
from adapters.mapper import compiled_table_map, load_table_map, map_row

Enrich = Callable[[dict[str, str]], Mapping[str, Any]]


def map_columns(table_map: Mapping[str, Any]) -> set[str]:
    """Every column a table map reads, so extra columns can be listed and required ones checked."""
    found: set[str] = {
        *key_columns(table_map),
        *table_map.get("required_columns", []),
        *table_map.get("reader_columns", []),
    }

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("column", "code", "display", "text", "precision") and isinstance(
                    value, str
                ):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in table_map.items() if k != "row_id"})
    return {c for c in found if not c.startswith("_")}


def key_columns(table_map: Mapping[str, Any]) -> list[str]:
    """The row id column, or the columns of a natural key for tables that have no id column."""
    row_id = table_map["row_id"]
    return [row_id] if isinstance(row_id, str) else list(row_id)


def first_row(path: Path, encoding: str, column: str) -> str:
    """The extract owner's code: the first row of the organisation file (see docs/sources.md)."""
    if not path.parent.is_dir():
        raise ExtractError(f"{path.parent}: no such extract folder")
    if not path.exists():
        raise ExtractError(f"{path.parent}: required file {path.name} is missing")
    for row in read_rows(path, encoding, required=[column]):
        value = row.fields.get(column, "").strip()
        if value:
            return value
    raise ExtractError(f"{path.name}: no organisation row with a {column}")


def table_records(
    folder: Path,
    style: str,
    table: str,
    org: str,
    encoding: str,
    notes: list[str],
    *,
    required: bool = False,
    enrich: Enrich | None = None,
) -> Iterator[SourceRecord]:
    """Stream one table's rows as records; a missing optional file counts as empty."""
    path = folder / f"{table}.csv"
    if not path.exists():
        if required:
            raise ExtractError(f"{folder}: required file {table}.csv is missing")
        return
    table_map = load_table_map(style, table)
    key = key_columns(table_map)
    must = list(dict.fromkeys([*key, *table_map.get("required_columns", [])]))
    for row in read_rows(path, encoding, must, notes, map_columns(table_map)):
        parts = [row.fields.get(column, "").strip() for column in key]
        row_id = "|".join(parts)
        issues = row.issues
        missing = [column for column, part in zip(key, parts, strict=True) if not part]
        if missing:
            row_id = f"line-{row.line}"
            issues = (*issues, Issue(missing[0], "row identifier is missing"))
        fields: dict[str, Any] = row.fields  # the reader's own dict, made for this row
        if enrich is not None:  # a row with problems too: quarantine keeps it whole for replay
            fields.update(enrich(fields))
        yield SourceRecord(
            SourceRef(style, org, table, row_id), path.name, row.line, fields, issues
        )


def map_table_record(style: str, record: SourceRecord, ctx: MapContext) -> MapOutcome:
    return map_row(compiled_table_map(style, record.ref.table), record, ctx)


class TableAdapter:
    """An adapter for a folder of CSV tables, each mapped by ``mappings/<kind>/<table>.json``.

    A source style supplies its ``kind`` and ``read`` (the edge: encodings and joins).
    """

    kind: str

    def __init__(self) -> None:
        self.notes: list[str] = []

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        return map_table_record(self.kind, record, ctx)


def unknown_files(folder: Path, known: set[str], notes: list[str]) -> None:
    extra = sorted(p.name for p in folder.glob("*.csv") if p.stem not in known)
    if extra:
        notes.append(f"{folder.name}: unknown files ignored: {', '.join(extra)}")
