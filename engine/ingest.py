"""One ingest run: records → map → finish → validate → stage in batches → visible at once.

Every record is stored (created, updated or unchanged) or quarantined with its file, line,
field and reason, or both: a record stored without a value its map withholds (an NHS number
failing modulus 11) stays in quarantine, open, until it is corrected. The run becomes visible
in a single commit at the end, so a crash part-way leaves the store as it was and a re-run
completes the load.

How it gets there depends on the database. PostgreSQL runs the whole run in one transaction
on one connection, applying each batch as it is written: its uncommitted rows are invisible to
everyone else, and a killed process's transaction is rolled back by the server. SQLite allows
one writer at a time, so a transaction that long would stall every other writer (the audit
trail of a server reading the same file) for the whole run: there each batch is committed to a
staging area, and the run is applied from it in one short transaction at the end.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, insert, select, update

from adapters import labels
from adapters.base import (
    Adapter,
    ExtractStamp,
    Issue,
    MapContext,
    MapOutcome,
    SourceRecord,
    SourceRef,
    fhirpath,
    resource_id,
    uuid5,
)
from adapters.codes import CodeMaps
from engine import extracts, kept, store
from engine.canonical import SHOWN_FOR_UNENCODABLE, content_hash, dumps, encodable, loads
from engine.facts import row_facts
from engine.finish import entered_in_error, finish, mark_entered_in_error
from engine.identity import patients_of_run, relink
from engine.lock import ingest_lock
from engine.models import IngestRun, QuarantineItem
from engine.relabel import pass_back
from engine.settings import Settings
from engine.validate import ElementMemo, narrative_issues, validate_resource
from engine.writer import BackgroundWriter

MapFn = Callable[[SourceRecord], MapOutcome]
Progress = Callable[[int], None]

RUNS = cast(Table, IngestRun.__table__)
Q = cast(Table, QuarantineItem.__table__)

#: The type ``run_seen`` records each source key the run met under (taken in or quarantined),
#: hashed into an id: a later copy of a row is a duplicate even when its first was quarantined.
_MET = "(source record met)"


@dataclass
class RunSummary:
    run_id: str
    kind: str
    location: str
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    #: Stored records given a label passed back from a record this run labelled.
    relabelled: int = 0
    quarantined: int = 0
    warnings: int = 0
    status: str = "running"
    reasons: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    #: What linking the run's patients into people changed (engine.identity.relink).
    linking: dict[str, Any] = field(default_factory=dict)
    #: The extract's source and date, when it has them (``engine.extracts``).
    extract: ExtractStamp | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "location": self.location,
            "status": self.status,
            "read": self.read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "relabelled": self.relabelled,
            "quarantined": self.quarantined,
            "warnings": self.warnings,
            "quarantine_reasons": dict(self.reasons.most_common(20)),
            "notes": self.notes,
            "linking": self.linking,
            **({"extract": asdict(self.extract)} if self.extract else {}),
        }


@dataclass
class _Good:
    record: SourceRecord
    rows: list[dict[str, Any]]
    #: Values the mapper left out: the rows go in and the record stays quarantined for them.
    withheld: tuple[Issue, ...] = ()
    #: The source keys it names that its reader did not meet (``_Run._unmet``).
    unmet: frozenset[str] = frozenset()
    #: What it yielded before and not now is withdrawn (not when that turned on joins).
    withdraws: bool = True
    #: Its table chooses resources by joins, so the row is kept as taken in (``engine.kept``).
    keeps_row: bool = False
    #: Keys it had before its map changed them, whose resources it withdraws.
    retires: tuple[str, ...] = ()
    #: The rows that differ from what is stored, and what validating them found.
    changed: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[Issue] = field(default_factory=list)


@dataclass
class _Writes:
    """What one batch writes, decided (all lookups done) before it goes to the writer."""

    staged: list[dict[str, Any]]
    #: Every id taken in, changed or not, with its type.
    seen: list[dict[str, Any]]
    #: Source keys taken in that had open quarantine items (closed when the run applies).
    resolved: list[str]
    #: Source keys quarantined by this batch: an earlier batch must not close their items.
    reopened: list[str]
    quarantine_updates: list[tuple[int, dict[str, Any]]]
    quarantine_inserts: list[dict[str, Any]]
    #: Changes to what the batch's records name: ``from_key``, ``to_key``, ``gone``.
    pointed: list[dict[str, Any]]
    #: What they took the stored labels of: ``from_key``, ``to_key``.
    inherited: list[dict[str, Any]]
    #: The rows to keep: ``source_key``, ``record`` (null for a row deleted).
    kept: list[dict[str, Any]]
    #: Refresh planner statistics after this batch.
    analyse: bool


def _now() -> datetime:
    return datetime.now(UTC)


class _Run:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        codes: CodeMaps,
        summary: RunSummary,
        resolution: str,
        renamed: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.codes = codes
        self.summary = summary
        self.resolution = resolution
        #: A corrected record's source key → the key its quarantine item was kept under.
        self.renamed = renamed
        self.good: list[_Good] = []
        #: Patients this run created, updated or deleted: linking re-evaluates only these.
        self.patients: set[str] = set()
        #: Patients this run withdrew: records citing them, in any later batch, are not taken.
        self.withdrawn_patients: set[str] = set()
        self.bad: list[tuple[SourceRecord, tuple[Issue, ...]]] = []
        #: The batch's source keys, each with the first record met under it.
        self.met: dict[str, SourceRecord] = {}
        #: Later copies of those in the batch, quarantined as duplicates after its checks.
        self.copies: list[tuple[SourceRecord, tuple[Issue, ...]]] = []
        #: SQLite: updates of existing quarantine items, applied when the run completes, so a
        #: run that fails leaves them as they were (on PostgreSQL its transaction does that).
        self.item_updates: list[tuple[int, dict[str, Any]]] = []
        self.pending = 0
        self.flushes = 0
        self.writer = BackgroundWriter()
        self.elements = ElementMemo()
        #: PostgreSQL: the run's one connection and transaction, used by one thread at a time
        #: (the writer for a batch's writes; this thread, once they are done, for its lookups).
        self.conn = engine.connect() if engine.dialect.name == "postgresql" else None

    def take(self, record: SourceRecord, outcome: MapOutcome) -> None:
        self.summary.read += 1
        self.summary.warnings += len(outcome.warnings)
        record, outcome = _storable(*_held_copy(record, outcome))
        first = self.met.setdefault(record.ref.key, record)
        if first is not record:
            self.copies.append((record, (_duplicate(record, first),)))
        elif not outcome.ok:
            self.bad.append((record, outcome.issues))
        else:
            self._take_resources(record, outcome)
        if self.pending + len(self.bad) + len(self.copies) >= self.settings.ingest_batch_size:
            self.flush()

    def _take_resources(self, record: SourceRecord, outcome: MapOutcome) -> None:
        base = self.settings.canonical_base
        rows: list[dict[str, Any]] = []
        pointed = record.fields.get("_pointed_codings", ())
        for mapped in outcome.resources:
            res = mapped.resource
            finish(res, record.ref, self.codes, base, mapped.deleted, pointed)
            patient_id = resource_id("Patient", mapped.patient_key) if mapped.patient_key else None
            rows.append(
                {
                    "resource": res,
                    "resource_id": res["id"],
                    "resource_type": res["resourceType"],
                    "status": "entered-in-error"
                    if mapped.deleted or entered_in_error(res) is not None
                    else "active",
                    "source_key": record.ref.key,
                    "source_system": record.ref.system,
                    "source_org": record.ref.org,
                    "patient_id": patient_id,
                    "labels": labels.column(res, base),
                    "content_hash": content_hash(res),
                }
            )
        self.good.append(
            _Good(
                record,
                rows,
                outcome.withheld,
                self._unmet(record),
                withdraws=not outcome.joined_choice,
                keeps_row=outcome.keeps_row,
                retires=outcome.retires,
            )
        )
        self.pending += len(rows)

    def _unmet(self, record: SourceRecord) -> frozenset[str]:
        """The keys ``record`` names that its reader did not meet, so takes the stored labels
        of. A replayed record met nothing: what its extract held is stored now, and may have
        been labelled since it was quarantined."""
        named = frozenset(record.fields.get("_pointed_records", ()))
        if self.summary.kind == "replay":
            return named
        return named - set(record.fields.get("_met_records", ()))

    def _inherit(self, conn: Connection) -> None:
        """Label the batch's records with what the records they name and the reader did not
        meet (an earlier run brought them) are stored with: a course for a problem recorded
        last month is withheld with the problem. A record naming a stored record of another
        patient (an issue whose course is another patient's) is held: it would land on one
        patient carrying the other's course and labels."""
        unmet = sorted({k for g in self.good for k in g.unmet})
        if not unmet:
            return
        held = store.named(conn, unmet)
        base = self.settings.canonical_base
        keep: list[_Good] = []
        for g in self.good:
            own = {r["patient_id"] for r in g.rows if r["patient_id"]}
            other = next(
                (k for k in sorted(g.unmet) if k in held and held[k].patients - own and own),
                None,
            )
            if other is not None:
                reason = f"names {other}, a record of another patient"
                self.bad.append((g.record, (Issue(None, reason),)))
                continue
            keep.append(g)
            passed = sorted({c for k in g.unmet if k in held for c in held[k].labels})
            if not passed:
                continue
            for r in g.rows:
                labels.add_labels(r["resource"], labels.confidential_labels(base, *passed))
                r["labels"] = labels.column(r["resource"], base)
                r["content_hash"] = content_hash(r["resource"])
        self.good = keep

    def flush(self) -> None:
        """Check, validate and decide the batch here; its writes commit on the writer thread.

        What does not depend on the batch in flight (the stored versions, which only the run's
        apply changes, and validating what differs from them) is done while it commits. Then
        the batch's transaction starts, after the previous batch has committed, and is handed
        to the writer with its lookups done, so it commits exactly what a synchronous flush
        would.
        """
        if not self.good and not self.bad and not self.copies:
            return
        ids = {r["resource_id"]: None for g in self.good for r in g.rows}
        ids.update({r["patient_id"]: None for g in self.good for r in g.rows if r["patient_id"]})
        taking = [g.record.ref.key for g in self.good]
        retired = [k for g in self.good for k in g.retires]
        with self.engine.connect() as look:
            self._inherit(look)
            stored = store.stored(look, list(ids), [*taking, *retired])
            ids.update(dict.fromkeys(self._withdraw(look, stored)))
            named = store.pointers(look, taking)
        self._validate(stored.current)
        self.writer.wait()
        conn = self.conn or self.engine.connect()
        try:
            keys = list(self.met)
            keys += [self.renamed[k] for k in keys if k in self.renamed]
            met = {uuid5(f"{_MET}|{k}"): k for k in self.met}
            state = store.run_state(conn, self.summary.run_id, [*ids, *met], keys)
            self._check_duplicates({k for i, k in met.items() if i in state.ids})
            self._check_patients(stored.patients | state.patients)
            staged, seen, taken = self._stage(stored.current)
            seen += [{"resource_id": i, "resource_type": _MET} for i in met if i not in state.ids]
            self.bad += self.copies
            pointed = _pointer_changes(self.good, named)
            inherited = [
                {"from_key": g.record.ref.key, "to_key": k}
                for g in self.good
                if not g.invalid
                for k in sorted(g.unmet)
            ]
            keeps = [_kept(g) for g in self.good if g.keeps_row and not g.invalid]
            reopened = [rec.ref.key for rec, _ in self.bad]
            quarantined = set(reopened)
            taken += [self.renamed[k] for k in taken if k in self.renamed]
            resolved = [k for k in taken if k in state.open and k not in quarantined]
            updates, inserts = self._quarantine(state.open)
            if conn is not self.conn:
                self.item_updates += updates
                updates = []
        except BaseException:
            if conn is not self.conn:
                conn.close()
            raise
        self.good, self.bad, self.copies, self.met, self.pending = [], [], [], {}, 0
        self.flushes += 1
        analyse = self.flushes & (self.flushes - 1) == 0  # after batches 1, 2, 4, 8, ...
        writes = _Writes(
            staged, seen, resolved, reopened, updates, inserts, pointed, inherited, keeps, analyse
        )
        self.writer.submit(partial(self._write, conn, writes))

    def _withdraw(self, conn: Connection, stored: store.Stored) -> list[str]:
        """Add to each record the withdrawal of what its key holds active and it no longer
        yields: a carer blanked out of the patient row leaves no active RelatedPerson, a
        deleted row that no longer maps withdraws all its key held, and a record whose key its
        map changed withdraws what its old key holds (``MapOutcome.retires``). Not where which
        resources a row yields turned on other rows' joins (a coded event is a Condition when
        SRProblem names it): a delta need not carry the joined row, so its absence is no
        withdrawal.
        Returns the ids withdrawn.

        A withdrawal is a new version of the stored body marked ``entered-in-error``, so the
        history shows what was withdrawn; it goes in, or is quarantined, with its record.
        """
        gone: dict[str, _Good] = {}
        for g in self.good:
            held = set(stored.live.get(g.record.ref.key, ())) if g.withdraws else set()
            for key in g.retires:
                held |= stored.live.get(key, set())
            if held:
                yields = {r["resource_id"] for r in g.rows}
                gone.update((rid, g) for rid in held - yields)
        if not gone:
            return []
        for row in store.withdrawn(conn, list(gone)):
            body = loads(row.body)
            mark_entered_in_error(body)
            stored.current[row.id] = store.Current(row.content_hash, row.version_id, row.status)
            gone[row.id].rows.append(
                {
                    "resource": body,
                    "resource_id": row.id,
                    "resource_type": row.resource_type,
                    "status": "entered-in-error",
                    "source_key": row.source_key,
                    "source_system": row.source_system,
                    "source_org": row.source_org,
                    "patient_id": row.patient_id,
                    "labels": row.labels,
                    "content_hash": content_hash(body),
                    "withdrawn": True,
                }
            )
        return list(gone)

    def _write(self, conn: Connection, writes: _Writes) -> None:
        """On the writer thread: the batch's writes, then any statistics refresh.

        In the run's own transaction they are applied at once; otherwise they are committed to
        the staging area.
        """
        if conn is self.conn:
            self._batch_writes(conn, writes)
            store.apply_rows(conn, self.summary.run_id, writes.staged)
            store.keep_rows(conn, self.summary.run_id, writes.kept)
            if writes.analyse:
                store.refresh_statistics(conn)
            return
        with conn:
            self._batch_writes(conn, writes)
            store.stage_kept(conn, self.summary.run_id, writes.kept)
            conn.commit()
        if writes.analyse:
            with self.engine.begin() as stats:
                store.refresh_statistics(stats)

    def _batch_writes(self, conn: Connection, writes: _Writes) -> None:
        run_id = self.summary.run_id
        store.stage(
            conn,
            run_id,
            writes.staged,
            writes.seen,
            writes.resolved,
            writes.pointed,
            writes.inherited,
        )
        store.keep_open(conn, run_id, writes.reopened)
        store.update_items(conn, writes.quarantine_updates)
        if writes.quarantine_inserts:
            conn.execute(insert(Q), writes.quarantine_inserts)

    def close(self) -> None:
        """Flush what is left and wait until every batch is written."""
        try:
            self.flush()
        finally:
            self.writer.close()

    def complete(self, now: datetime) -> None:
        """Make the run visible: apply what is still staged (quarantine items' updates too),
        close what it resolved, commit."""
        conn = self.conn or self.engine.connect()
        with conn:
            if conn is not self.conn:
                store.apply_rows(conn, self.summary.run_id)
                store.update_items(conn, self.item_updates)
            store.apply_pointers(conn, self.summary.run_id)
            if conn is not self.conn:
                store.apply_kept(conn, self.summary.run_id)
            base = self.settings.canonical_base
            self.summary.relabelled = pass_back(conn, self.summary.run_id, base, now)
            store.finish_run(conn, self.summary.run_id, self.resolution, now)
            _end_run(conn, self.summary.run_id, "completed", self.summary.as_dict())
            conn.commit()

    def abort(self) -> None:
        """Stop the writer and roll back the run's own transaction, if it has one."""
        try:
            self.writer.close()
        finally:
            if self.conn is not None:
                self.conn.close()

    def _check_duplicates(self, earlier: set[str]) -> None:
        """Quarantine as duplicates the batch's records whose source keys an earlier batch of
        the run met, taken in or quarantined (copies within the batch were caught as they came,
        ``take``): a copy taken in after its first was quarantined closed the item the run had
        just opened, and each re-run added another."""
        if not earlier:
            return
        self.bad = [
            (rec, (_duplicate(rec, None),)) if rec.ref.key in earlier else (rec, issues)
            for rec, issues in self.bad
        ]
        self.bad += [
            (g.record, (_duplicate(g.record, None),))
            for g in self.good
            if g.record.ref.key in earlier
        ]
        self.good = [g for g in self.good if g.record.ref.key not in earlier]

    def _check_patients(self, elsewhere: set[str]) -> None:
        """Quarantine records citing a patient neither in the batch nor ``elsewhere``.

        ``elsewhere`` holds the active Patients stored and the Patients this run staged; a
        Patient this run withdrew (a test patient) counts as neither. A deletion or a
        withdrawal needs no live patient: TPP removes a patient and its rows together.
        """
        patients = [r for g in self.good for r in g.rows if r["resource_type"] == "Patient"]
        self.withdrawn_patients.update(r["resource_id"] for r in patients if "withdrawn" in r)
        own = {r["resource_id"] for r in patients if "withdrawn" not in r}
        known = (own | elsewhere) - self.withdrawn_patients
        keep: list[_Good] = []
        for g in self.good:
            missing = next(
                (
                    r
                    for r in g.rows
                    if r["patient_id"]
                    and r["patient_id"] not in known
                    and r["status"] != "entered-in-error"
                ),
                None,
            )
            if missing is None:
                keep.append(g)
                continue
            self.bad.append(
                (
                    g.record,
                    (
                        Issue(
                            "patient",
                            "refers to a patient that is neither in this extract nor in the store "
                            "(or was quarantined)",
                        ),
                    ),
                )
            )
        self.good = keep

    def _validate(self, existing: dict[str, store.Current]) -> None:
        """Validate each record's rows that are new or changed; the checks after may still
        quarantine the record for another reason, which then comes first.

        Unchanged content was valid when it was stored, so it is not validated again: a
        re-run of an extract costs a hash comparison per resource. Nor is a withdrawal: a
        stored body with only its status changed. The policy facts stored beside each body
        are worked out here too: a NUL in one (an organisation's ODS code) is text PostgreSQL
        cannot hold, and would fail the write of the whole run.
        """
        for g in self.good:
            g.changed = [
                r
                for r in g.rows
                if (cur := existing.get(r["resource_id"])) is None
                or cur.content_hash != r["content_hash"]
                or cur.status != r["status"]
            ]
            for r in g.changed:
                r["facts"] = row_facts(r["resource"], r["source_org"], r["labels"])
            g.invalid = [
                i
                for r in g.changed
                if "withdrawn" not in r
                for i in (
                    *validate_resource(r["resource"], self.elements),
                    *narrative_issues(r["resource"]),
                )
            ]
            g.invalid += [_nul_issue(r) for r in g.changed if _holds_nul(r["facts"])]

    def _stage(
        self, existing: dict[str, store.Current]
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
        """Stage what is new or changed of each record that passed every check; with it, every
        id those records hold (changed or not) and the source keys of the records taken in."""
        now = _now()
        stamp = now.isoformat()
        staged: list[dict[str, Any]] = []
        seen: list[dict[str, str]] = []
        taken: list[str] = []
        for g in self.good:
            if g.invalid:
                self.bad.append((g.record, (*g.invalid, *g.withheld)))
                continue
            if g.withheld:
                self.bad.append((g.record, g.withheld))
            else:
                taken.append(g.record.ref.key)
            self.summary.unchanged += len(g.rows) - len(g.changed)
            seen.extend(
                {"resource_id": r["resource_id"], "resource_type": r["resource_type"]}
                for r in g.rows
            )
            for r in g.changed:
                staged.append(self._staged_row(r, existing.get(r["resource_id"]), now, stamp))
                if r["resource_type"] == "Patient":
                    self.patients.add(r["resource_id"])
        return staged, seen, taken

    def _staged_row(
        self, r: dict[str, Any], cur: store.Current | None, now: datetime, stamp: str
    ) -> dict[str, Any]:
        """The staging row for a new version; ``stamp`` is ``now`` as the body's lastUpdated."""
        version = cur.version_id + 1 if cur else 1
        res = r["resource"]
        res["meta"]["versionId"] = str(version)
        res["meta"]["lastUpdated"] = stamp
        if r["status"] == "entered-in-error":
            self.summary.deleted += 1
        elif cur is None:
            self.summary.created += 1
        else:
            self.summary.updated += 1
        return {
            "run_id": self.summary.run_id,
            "resource_id": r["resource_id"],
            "op": "update" if cur else "create",
            "resource_type": r["resource_type"],
            "version_id": version,
            "last_updated": now,
            "content_hash": r["content_hash"],
            "body": dumps(res),
            "status": r["status"],
            "source_key": r["source_key"],
            "source_system": r["source_system"],
            "source_org": r["source_org"],
            "patient_id": r["patient_id"],
            "labels": r["labels"],
            **r["facts"],
        }

    def _quarantine(
        self, existing: dict[str, int]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
        """Count the batch's quarantined records and decide their writes: an update of the
        ``existing`` open item for the same source key, or an insert."""
        if not self.bad:
            return [], []
        now = _now()
        updates: list[tuple[int, dict[str, Any]]] = []
        inserts: list[dict[str, Any]] = []
        latest: dict[str, tuple[SourceRecord, dict[str, Any]]] = {}
        for record, issues in self.bad:
            self.summary.quarantined += 1
            first = issues[0]
            reason = first.reason if len(issues) == 1 else "; ".join(str(i) for i in issues)
            self.summary.reasons[f"{record.ref.table}.{first.field or '(row)'}"] += 1
            values = {
                "field": _text(first.field),
                "reason": _text(reason),
                "record": record.as_json(),
                "file": _text(record.file),
                "line": record.line,
            }
            latest[record.ref.key] = (record, values)  # one item per key: a later copy's
        for key, (record, values) in latest.items():
            item = existing.get(key, existing.get(self.renamed.get(key, key)))
            if item is not None:
                # Held again by this run: ``engine.kept.latest`` tells a copy held beside the
                # row this run took in from a newer one by the run that held it.
                updates.append((item, {**values, "source_key": key, "run_id": self.summary.run_id}))
                continue
            inserts.append(
                {
                    **values,
                    "run_id": self.summary.run_id,
                    "kind": record.ref.system,
                    "source_key": record.ref.key,
                    "status": "open",
                    "created_at": now,
                }
            )
        return updates, inserts


def _kept(g: _Good) -> dict[str, Any]:
    """The row to keep for a record taken in: none once it yields nothing live (deleted). Its
    empty columns are left out (mapping reads a missing column as empty): about half a coded
    event's, and so of what a run writes for it. Joined fields stay as they are (a replay
    tells a join never made from an empty one), and the reader's marks go (``engine.kept``)."""
    if all(r["status"] == "entered-in-error" for r in g.rows):
        return {"source_key": g.record.ref.key, "record": None}
    fields = {
        k: v
        for k, v in g.record.fields.items()
        if (v != "" or k.startswith("_")) and k not in kept.MARKS
    }
    return {"source_key": g.record.ref.key, "record": {**g.record.as_json(), "fields": fields}}


def _duplicate(record: SourceRecord, first: SourceRecord | None) -> Issue:
    """The issue of a later copy of a row (``first``, when met in the same batch)."""
    where = f" (first at {first.file} line {first.line})" if first is not None else ""
    return Issue(None, f"{kept.DUPLICATE} {record.ref.row_id!r}{where}")


def _held_copy(record: SourceRecord, outcome: MapOutcome) -> tuple[SourceRecord, MapOutcome]:
    """``record`` held again for its item's reason when it joins a copy held as a duplicate
    (``kept.HELD_COPY``), without the mark: a replay of the item takes that copy in with
    these joins."""
    reason = record.fields.get(kept.HELD_COPY)
    if reason is None:
        return record, outcome
    fields = {k: v for k, v in record.fields.items() if k != kept.HELD_COPY}
    return replace(record, fields=fields), MapOutcome(issues=(Issue(None, reason),))


def _storable(record: SourceRecord, outcome: MapOutcome) -> tuple[SourceRecord, MapOutcome]:
    """``record`` held in quarantine when a key it carries holds a NUL, which PostgreSQL's text
    cannot: one such key failed the write of the whole run. The CSV readers name such a row by
    its line (``adapters.extract.row_key``); this holds what any other reader passes on, under
    its key with the NUL shown as U+FFFD (its fields keep the raw values: JSON escapes a NUL)."""
    if "\x00" in record.ref.key:
        issue = Issue(None, f"row identifier {record.ref.row_id!r} holds a NUL character")
    elif any("\x00" in k for k in record.fields.get("_pointed_records", ())):
        issue = Issue("_pointed_records", "names a record whose key holds a NUL character")
    else:
        return record, outcome
    ref = record.ref
    parts = (ref.system, ref.org, ref.table, ref.row_id)
    shown = SourceRef(*(p.replace("\x00", SHOWN_FOR_UNENCODABLE) for p in parts))
    return replace(record, ref=shown), MapOutcome(issues=(issue,))


def _holds_nul(facts: Mapping[str, str | None]) -> bool:
    return any(v is not None and "\x00" in v for v in facts.values())


def _nul_issue(row: Mapping[str, Any]) -> Issue:
    """The issue of a resource whose stored facts would hold a NUL, at the element that does."""
    res = row["resource"]
    loc = _nul_at(res)
    return Issue(fhirpath(res["resourceType"], loc) if loc else None, "holds a NUL character")


def _nul_at(node: Any) -> tuple[int | str, ...] | None:
    """Where in ``node`` the first string holding a NUL is."""
    if isinstance(node, str):
        return () if "\x00" in node else None
    if isinstance(node, dict | list):
        for step, value in node.items() if isinstance(node, dict) else enumerate(node):
            below = _nul_at(value)
            if below is not None:
                return (step, *below)
    return None


def _text(value: str | None) -> str | None:
    """``value`` as a text column holds it: PostgreSQL's holds no NUL, nor UTF-8 a lone
    surrogate (a reason may quote the value it could not read). A quarantine item's own text
    must always be storable, or the write of its whole batch fails."""
    if value is None:
        return None
    return cast(str, encodable(value)).replace("\x00", SHOWN_FOR_UNENCODABLE)


def _pointer_changes(good: Iterable[_Good], stored: dict[str, set[str]]) -> list[dict[str, Any]]:
    """What the records taken in name that they were not stored naming, and the reverse."""
    out: list[dict[str, Any]] = []
    for g in good:
        if g.invalid:
            continue
        key = g.record.ref.key
        now = set(g.record.fields.get("_pointed_records", ()))
        was = stored.get(key, set())
        out.extend({"from_key": key, "to_key": k, "gone": False} for k in sorted(now - was))
        out.extend({"from_key": key, "to_key": k, "gone": True} for k in sorted(was - now))
    return out


def _end_run(conn: Connection, run_id: str, status: str, summary: dict[str, Any]) -> None:
    """Record how a run ended; a run that did not complete leaves nothing staged or quarantined."""
    if status != "completed":
        store.discard_run(conn, run_id)
        conn.execute(Q.delete().where(Q.c.run_id == run_id, Q.c.status == "open"))
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(status=status, finished_at=_now(), summary=summary)
    )


def _abandon_stale_runs(conn: Connection) -> None:
    """A run still marked running when we hold the lock died mid-way: drop what it staged."""
    stale = conn.execute(select(RUNS.c.id).where(RUNS.c.status == "running")).scalars().all()
    for run_id in stale:
        _end_run(conn, run_id, "abandoned", {})


def _linked(engine: Engine, run_id: str, patients: Iterable[str]) -> dict[str, Any]:
    """Link a completed run's Patients into people, then say so on the run."""
    summary = relink(engine, sorted(patients)).as_dict()
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(linked_at=_now()))
    return summary


def _link_unlinked_runs(engine: Engine) -> list[str]:
    """Link the runs that completed but whose process died before linking (we hold the lock)."""
    with engine.connect() as conn:
        waiting = (
            conn.execute(
                select(RUNS.c.id).where(RUNS.c.status == "completed", RUNS.c.linked_at.is_(None))
            )
            .scalars()
            .all()
        )
    for run_id in waiting:
        _linked(engine, run_id, patients_of_run(engine, run_id))
    return [
        f"linked the Patients of run {run_id}, which stopped before linking" for run_id in waiting
    ]


#: Collector thresholds during a run: young objects every 20,000 allocations rather than 700.
_RUN_GC_THRESHOLD = (20_000, 20, 20)


@contextlib.contextmanager
def _collector_eased() -> Iterator[None]:
    """Keep the cyclic garbage collector from taking a large share of a run; restore it after.

    A run allocates millions of short-lived objects. With the defaults they set off thousands of
    collections, and the full ones walk everything in the process (model classes, schemas, code
    maps): about a fifth of an ingest's CPU. Objects older than the run are frozen out of the
    collections and young ones are collected less often; reference counting frees everything
    as usual. If something else froze objects first, the freeze is left in place.
    """
    threshold = gc.get_threshold()
    already = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(*_RUN_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not already:
            gc.unfreeze()


#: How long the mapping thread may keep the GIL once the writer's I/O has finished: 1 ms.
_RUN_SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def _quick_handoffs() -> Iterator[None]:
    """Let a thread whose database call has returned have the GIL back within 1 ms, not 5.

    A run is one thread mapping and validating (CPU) beside one writing (mostly waiting on the
    server). With the default interval, each time either returns from the server it waits up
    to 5 ms for the mapping thread to let go, several times a batch: 10-20 µs per resource of
    lookups and commits that could have overlapped. Restored when the run ends.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(_RUN_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def run_records(
    engine: Engine,
    settings: Settings,
    codes: CodeMaps,
    kind: str,
    location: str,
    records: Iterable[SourceRecord],
    map_fn: MapFn,
    *,
    resolution: str = "superseded",
    renamed: Mapping[str, str] | None = None,
    stamp: ExtractStamp | None = None,
    allow_older: bool = False,
    notes: list[str] | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run any stream of records through the pipeline (an extract, or quarantined records).

    ``renamed`` maps a corrected record's source key to the one its quarantine item was kept
    under, so the item is closed, or kept open under the new key, as the record fares. An
    extract with a ``stamp`` older than the newest taken in from its source is refused
    (:class:`engine.extracts.OlderExtract`) unless ``allow_older``."""
    summary = RunSummary(run_id=str(uuid.uuid4()), kind=kind, location=location, extract=stamp)
    with ingest_lock(engine), _collector_eased(), _quick_handoffs():
        recovered = _link_unlinked_runs(engine)
        with engine.begin() as conn:
            _abandon_stale_runs(conn)
            if stamp is not None:
                extracts.check(conn, stamp, allow_older)
            conn.execute(
                insert(RUNS).values(
                    id=summary.run_id,
                    kind=kind,
                    location=location,
                    started_at=_now(),
                    status="running",
                    summary={},
                )
            )
        run = _Run(engine, settings, codes, summary, resolution, renamed or {})
        joins: list[str] = []
        try:
            for record in kept.with_kept(engine, records, joins):
                try:
                    outcome = map_fn(record)
                except Exception as exc:  # a mapping bug must not lose the record
                    outcome = MapOutcome(issues=(Issue(None, f"mapping failed: {exc!r}"),))
                run.take(record, outcome)
                if progress is not None:
                    progress(summary.read)
            run.close()
            summary.status = "completed"
            summary.notes = [*recovered, *(notes or []), *joins]
            run.complete(_now())
        except BaseException:
            summary.status = "failed"
            with contextlib.suppress(Exception):  # the error being raised is the one to report
                run.abort()
            with engine.begin() as conn:
                _end_run(conn, summary.run_id, "failed", summary.as_dict())
            raise
        summary.linking = _linked(engine, summary.run_id, run.patients)
    return summary


def ingest(
    engine: Engine,
    settings: Settings,
    codes: CodeMaps,
    adapter: Adapter,
    location: str,
    progress: Progress | None = None,
    *,
    allow_older: bool = False,
) -> RunSummary:
    ctx = MapContext(codes=codes, canonical_base=settings.canonical_base)
    stamp = adapter.stamp(location)
    records = adapter.read(location)
    return run_records(
        engine,
        settings,
        codes,
        adapter.kind,
        location,
        records,
        lambda rec: adapter.map(rec, ctx),
        stamp=stamp,
        allow_older=allow_older,
        notes=adapter.notes,
        progress=progress,
    )
