"""What the CSV-folder adapters (SystmOne, EMIS, council) share: one table at a time, by map."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from adapters.base import (
    CorrectionRefused,
    ExtractError,
    ExtractStamp,
    Issue,
    MapContext,
    MapOutcome,
    SourceRecord,
    SourceRef,
)
from adapters.csvread import read_rows
from adapters.mapper import (
    JOINS_KNOWN,
    TAKE_STORED_JOINS,
    TAKE_STORED_ROW,
    compiled_table_map,
    load_table_map,
    map_row,
)

Enrich = Callable[[dict[str, str]], Mapping[str, Any]]
#: A joined field naming a lookup row read with a problem: the record it is joined into is held
#: in quarantine naming that row, rather than taken in without it (as something else).
JOINED_ROW_PROBLEM = "_JoinedRowProblem"
#: The patient column of the row a ``rejoined`` record's joins are for, and the patient the
#: joined row names: another patient's joined row holds the row (``engine.kept``).
JOINED_PATIENT = "_JoinedPatient"


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
                if key not in ("value", "map"):  # constants, not columns
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


def table_file(folder: Path, name: str) -> Path:
    """The file of ``folder`` named ``name`` in any case (``SRCode.CSV``, as Windows tools
    write it): opened by its exact name alone, it was neither read nor noted, and its rows
    were lost without a word. ``folder / name`` when there is none. Two files whose names
    differ only in case refuse the extract: which one holds the table cannot be told."""
    wanted = name.lower()
    found = sorted(p for p in folder.glob("*") if p.name.lower() == wanted and p.is_file())
    if len(found) > 1:
        raise ExtractError(
            f"{folder}: {' and '.join(p.name for p in found)} are both the file {name}: "
            "nothing is taken in; remove the one that is not the extract's"
        )
    return found[0] if found else folder / name


def first_row(path: Path, encoding: str, column: str) -> str:
    """The extract owner's code: the first row of the organisation file (see docs/sources.md).
    It is part of every record's key, so one holding a control character (a NUL, which
    PostgreSQL's text cannot hold) refuses the extract."""
    if not path.parent.is_dir():
        raise ExtractError(f"{path.parent}: no such extract folder")
    path = table_file(path.parent, path.name)
    if not path.exists():
        raise ExtractError(f"{path.parent}: required file {path.name} is missing")
    for row in read_rows(path, encoding, required=[column]):
        value = row.fields.get(column, "").strip()
        if value and _CONTROL.search(value):
            raise ExtractError(
                f"{path.name}, line {row.line}: {column} {value!r} holds a control character"
            )
        if value:
            return value
    raise ExtractError(f"{path.name}: no organisation row with a {column}")


def lookup_rows(
    path: Path, encoding: str, required: Sequence[str], notes: list[str]
) -> Iterator[dict[str, str]]:
    """A lookup file's rows, those read with a problem too: dropping one would silently change
    what the records joining it are taken in as (a problem's code row, a plain observation).
    Each such row is noted, and carries its problem as ``JOINED_ROW_PROBLEM``. A row whose
    quoted field swallowed the lines after it stops the extract: the rows on those lines are
    not read, so records joined to them would be taken in without them (a private problem as a
    shared observation), and which records those are cannot be told."""
    found = table_file(path.parent, path.name)
    if not found.exists():
        return
    for row in read_rows(found, encoding, required, notes):
        if not row.issues:
            yield row.fields
            continue
        # Named as the reader asked for it: ``engine.kept`` tells a joined row's problems by it.
        problem = f"{path.name}, line {row.line}: {'; '.join(map(str, row.issues))}"
        if row.swallowed:
            raise ExtractError(
                f"{problem}. Nothing is taken in: the lookup rows on those lines would not be "
                "joined to the records that need them. Correct the file at the source and ingest "
                "again"
            )
        notes.append(f"{problem} (a lookup row: a record joined to it is held in quarantine)")
        yield {**row.fields, JOINED_ROW_PROBLEM: problem}


#: Joined fields naming records: lists, added together when several joins name some.
_NAMING = ("_pointed_records", "_met_records")


def joined_fields(*parts: Mapping[str, Any], deleted: bool = False) -> dict[str, Any]:
    """Joined fields from several lookups, later parts winning, but for what must not be
    lost by a merge: the records each names are added together (a record naming its problem
    and its consultation names both), and so is each joined row's problem (a bad code row
    must not hide another patient's problem row). A deleted row joins no problem: nothing
    joined can hold its deletion."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for part in parts:
        for name, value in part.items():
            if name in _NAMING:
                out[name] = list(dict.fromkeys([*out.get(name, ()), *value]))
            elif name == JOINED_ROW_PROBLEM:
                problems.extend([value] if isinstance(value, str) else value)
            else:
                out[name] = value
    if problems and not deleted:
        out[JOINED_ROW_PROBLEM] = list(dict.fromkeys(problems))
    return out


def joined_problem(row: Mapping[str, str]) -> dict[str, str]:
    """What a lookup row read with a problem passes on to the records it is joined into."""
    problem = row.get(JOINED_ROW_PROBLEM)
    return {JOINED_ROW_PROBLEM: problem} if problem else {}


#: C0 control characters but tab, line feed and carriage return (which a quoted cell may hold):
#: a NUL cannot be stored in PostgreSQL's text at all, and none is part of a real id.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def row_key(fields: Mapping[str, Any], key: Sequence[str], line: int) -> tuple[str, Issue | None]:
    """A row's id from its key columns; a row missing one, or whose one holds a control
    character, is named by its line, with why: the id is part of every key the store writes,
    and a NUL in one failed the write of the whole run."""
    parts = [str(fields.get(column, "")).strip() for column in key]
    for column, part in zip(key, parts, strict=True):
        if not part:
            return unkeyed_row_id(f"line-{line}", fields), Issue(
                column, "row identifier is missing"
            )
        if bad := _CONTROL.search(part):
            return unkeyed_row_id(f"line-{line}", fields), Issue(
                column, f"row identifier {part!r} holds control character U+{ord(bad[0]):04X}"
            )
    return "|".join(parts), None


def unkeyed_row_id(place: str, fields: Mapping[str, Any]) -> str:
    """A row without an id is named by where it was read and a hash of what it holds: named by
    its place alone, the next extract's id-less row there would take over its quarantine item,
    and the first rejected row could no longer be reviewed or replayed. The same row read again
    (a re-run) gets the same name, and so its one item."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return f"{place}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


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
    path = table_file(folder, f"{table}.csv")
    if not path.exists():
        if required:
            raise ExtractError(f"{folder}: required file {table}.csv is missing")
        return
    table_map = load_table_map(style, table)
    key = key_columns(table_map)
    must = list(dict.fromkeys([*key, *table_map.get("required_columns", [])]))
    for row in read_rows(path, encoding, must, notes, map_columns(table_map)):
        row_id, missing = row_key(row.fields, key, row.line)
        issues = row.issues if missing is None else (*row.issues, missing)
        fields: dict[str, Any] = row.fields  # the reader's own dict, made for this row
        if enrich is not None:  # a row with problems too: quarantine keeps it whole for replay
            fields.update(enrich(fields))
            issues = (*issues, *_joined_issues(fields.pop(JOINED_ROW_PROBLEM, None)))
        yield SourceRecord(
            SourceRef(style, org, table, row_id), path.name, row.line, fields, issues
        )


class ProblemRows(NamedTuple):
    """A lookup of problem rows by the row each makes a problem (a coded event)."""

    #: Row id → what its problem row joins into it.
    live: dict[str, dict[str, Any]]
    #: The rows whose problem row this extract removes (so whether they are problems is
    #: known: they are not).
    removed: set[str]
    #: Row id → the patient its live problem row names, where it names one (a removal joins
    #: nothing, so whose it says it was does not matter).
    patients: dict[str, str]


def _stored_joins(file: str, names: Sequence[str]) -> dict[str, Any]:
    """The mark on a row whose joined row of ``file`` this extract does not hold: the ingest
    takes ``names`` from the row as last seen (``engine.kept``)."""
    return {TAKE_STORED_JOINS: {"file": file, "fields": list(names)}}


def problem_join(
    problems: ProblemRows,
    file: str,
    names: Sequence[str],
    row: tuple[str, str],
    *,
    known: bool,
    deleted: bool,
) -> dict[str, Any]:
    """What a row (its id and patient) takes from its problem row: the problem's fields;
    whether the reader met the problem row (``JOINS_KNOWN``) or the ingest must take ``names``
    as last seen (``_stored_joins``); and a hold when the problem row names another patient.
    A deleted row joins nothing that could hold it: its deletion withdraws what its key holds
    whatever its problem row says (a bad one, another patient's)."""
    row_id, patient = row
    joins = dict(problems.live.get(row_id, {}))
    if deleted:
        joins.pop(JOINED_ROW_PROBLEM, None)
        return joins
    mark = {JOINS_KNOWN: "true"} if known else _stored_joins(file, names)
    return joined_fields(joins, mark, _another_patient(file, row_id, patient, problems))


def _another_patient(file: str, row_id: str, patient: str, problems: ProblemRows) -> dict[str, str]:
    """A problem row naming another patient than its row holds the row: joined, one
    patient's event would be taken in as a problem of the other's."""
    named = problems.patients.get(row_id, "")
    if not named or named == patient.strip():
        return {}
    return {
        JOINED_ROW_PROBLEM: f"{file}: the problem row for row {row_id} names patient {named}, "
        f"not {patient.strip()}"
    }


def problem_changes(
    table: SourceRef,
    file: str,
    problems: ProblemRows,
    met: set[str],
    replaced: Sequence[str],
    patient_column: str,
) -> Iterator[SourceRecord]:
    """A delta's problem rows added, changed or removed whose rows of ``table`` (a ref
    without a row id) it does not hold, ``met`` being those it does: only the problem
    changed, so each row is mapped again as last seen (``engine.kept``). An id holding a
    control character names no row (such a row is named by its line: ``row_key``)."""
    for row_id in sorted((problems.live.keys() | problems.removed) - met - {""}):
        if _CONTROL.search(row_id):
            continue
        patient = (patient_column, problems.patients.get(row_id, ""))
        ref = replace(table, row_id=row_id)
        yield rejoined(ref, file, problems.live.get(row_id, {}), replaced, patient)


def rejoined(
    ref: SourceRef,
    file: str,
    joins: Mapping[str, Any],
    replaced: Sequence[str],
    patient: tuple[str, str] | None,
) -> SourceRecord:
    """The joins a delta brings for a row it does not (``joins``, empty for a joined row it
    removes): the ingest maps the row as last seen with them in place of ``replaced``
    (``engine.kept``). A joined row read with a problem holds it in quarantine, as does one
    naming another patient than the row (``patient``: the row's patient column, and the
    patient the joined row names)."""
    fields = {
        **joins,
        TAKE_STORED_ROW: list(replaced),
        JOINS_KNOWN: "true",
        **({JOINED_PATIENT: list(patient)} if patient and patient[1] else {}),
    }
    return SourceRecord(ref, file, 0, fields, _joined_issues(fields.pop(JOINED_ROW_PROBLEM, None)))


def _joined_issues(joined: str | list[str] | None) -> tuple[Issue, ...]:
    """An issue for each joined row read with a problem (``joined_fields`` keeps them all)."""
    problems = [joined] if isinstance(joined, str) else joined or []
    return tuple(_joined_issue(p) for p in problems)


def _joined_issue(problem: str) -> Issue:
    """Named by the joined row's file first (``engine.kept`` replaces it with that file's
    joins brought again)."""
    return Issue(
        JOINED_ROW_PROBLEM,
        f"{problem} (a row joined into this record): correct it at the source and ingest again",
    )


def map_table_record(style: str, record: SourceRecord, ctx: MapContext) -> MapOutcome:
    return map_row(compiled_table_map(style, record.ref.table), record, ctx)


class TableAdapter:
    """An adapter for a folder of CSV tables, each mapped by ``mappings/<kind>/<table>.json``.

    A source style supplies its ``kind`` and ``read`` (the edge: encodings and joins).
    """

    kind: str
    #: Per table, the columns its reader joins other rows (or files) by, and what it joins:
    #: correcting one on replay would leave what was joined stale.
    joined_by: Mapping[str, Mapping[str, str]] = {}

    def __init__(self) -> None:
        self.notes: list[str] = []

    def map(self, record: SourceRecord, ctx: MapContext) -> MapOutcome:
        return map_table_record(self.kind, record, ctx)

    def stamp(self, location: str) -> ExtractStamp | None:
        """No stamp unless the style's extracts carry one."""
        return None

    def row_joins(self, ref: SourceRef, fields: Mapping[str, Any], today: str) -> dict[str, Any]:
        """The joined fields the reader works out from the row alone; ``None`` drops one."""
        return {}

    def correct(
        self, record: SourceRecord, corrections: Mapping[str, str], today: str
    ) -> SourceRecord:
        """A corrected row gets its id and its own joined fields worked out again; the
        problems found reading it no longer stand (someone has looked at the row), except a
        key still missing, and a joined row read with a problem (only the source can correct
        that)."""
        table = record.ref.table
        table_map = load_table_map(self.kind, table)
        columns = map_columns(table_map)
        for name in corrections:
            if name.startswith("_"):
                raise CorrectionRefused(
                    f"{name}: joined by the reader, not a column of {table}; correct the "
                    "source columns it is worked out from"
                )
            if name not in columns:
                raise CorrectionRefused(
                    f"{name}: not a column the {table} map reads ({', '.join(sorted(columns))})"
                )
            joined = self.joined_by.get(table, {}).get(name)
            if joined:
                raise CorrectionRefused(
                    f"{name}: the reader joins {joined} by it, which replay cannot join again; "
                    "correct the source and ingest it again"
                )
        fields: dict[str, Any] = {**record.fields, **corrections}
        for name, value in self.row_joins(record.ref, fields, today).items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        if not corrections:
            return replace(record, fields=fields)
        kept = tuple(i for i in record.read_issues if i.field == JOINED_ROW_PROBLEM)
        row_id, missing = row_key(fields, key_columns(table_map), record.line)
        if missing is not None:
            return replace(record, fields=fields, read_issues=(missing, *kept))
        ref = replace(record.ref, row_id=row_id)
        return replace(record, ref=ref, fields=fields, read_issues=kept)


def unknown_files(folder: Path, known: set[str], notes: list[str]) -> None:
    """Note the CSV files (``.csv`` in any case) that are no table of ``known``, and those read
    as one under another case (``table_file``); refuse two files of one table."""
    tables = {t.lower(): t for t in known}
    csvs = sorted(p for p in folder.glob("*") if p.suffix.lower() == ".csv" and p.is_file())
    extra = [p.name for p in csvs if p.stem.lower() not in tables]
    if extra:
        notes.append(f"{folder.name}: unknown files ignored: {', '.join(extra)}")
    for p in csvs:
        table = tables.get(p.stem.lower())
        if table is not None and p.name != f"{table}.csv":
            read = table_file(folder, f"{table}.csv")  # refuses a second file of the table
            notes.append(f"{folder.name}: {read.name} read as {table}.csv")
