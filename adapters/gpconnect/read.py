"""Reading GP Connect Access Record: Structured bundles (I/O only; mapping is in ``convert.py``).

``read(location)`` takes a bundle file or a folder of ``*.json`` bundles; ``read_pulled`` pulls
one bundle per NHS number with ``pull`` (``POST [base]/Patient/$gpc.getstructuredrecord``).
Both yield one :class:`SourceRecord` per bundle entry, the Patient first, keyed by the ODS code
of the practice that provided the record, with everything mapping needs in ``fields`` (the
resource, the patient's row and NHS number, the rows its references point to where those are
not the ids they name (a bundle ``fullUrl``, the Patient), the codes it takes its labels from
and the source keys of the records it takes them from (``links.py``), and repairs made while
reading) so that a quarantined record can be replayed without the file.

A bundle's decimals are read as written (``adapters.exactjson``): ``7.50`` stays ``7.50``.

The Patient's row is its NHS number (a record is fetched by it), not the supplier's id, which
one practice's system may have given two people; entries keep the supplier's ids.

A file or response that cannot be used as a whole (not JSON, not a Bundle, no Patient, no way
to tell the providing practice, an OperationOutcome instead of a record, or anything else that
fails while reading it) is not skipped: it becomes one record (table ``Bundle``, row id = file
name) whose ``read_issues`` say why, so it goes to quarantine. A resource repeated verbatim
(the practice's Organization in every patient's bundle) is yielded once per read.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from adapters import values
from adapters.base import ExtractError, Issue, SourceRecord, SourceRef
from adapters.exactjson import MAX_DEPTH, exact, extent, loads
from adapters.gpconnect.constants import NHS_NUMBER, ODS, RELATIVE_REFERENCE, SYSTEM, named
from adapters.gpconnect.links import CONTEXT, inherited_codes, labelling_references
from adapters.gpconnect.request import (
    ALL_AREAS,
    FHIR_JSON,
    INTERACTION,
    Consumer,
    GpConnectError,
    OperationOutcomeError,
    audit_jwt,
    describe,
    parameters,
)

UNKNOWN_ORG = "unknown"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0

# --- files -------------------------------------------------------------------------------


def read(location: str) -> Iterator[SourceRecord]:
    """Records from a bundle file, or from every ``.json`` file in a folder (sorted by name;
    ``.JSON`` too: a folder of such files was read as empty, silently). Each record names its
    file by its path, so an unusable bundle's quarantine item is its own (two folders' broken
    ``record.json`` were one item, the first's reason overwritten)."""
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json" and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise ExtractError(f"{location}: no such file or folder")
    latest = _latest_patients(files) if len(files) > 1 else {}
    seen: dict[str, str] = {}
    for file in files:
        records = _whole(str(file), records_from_bytes(file.read_bytes(), str(file)))
        yield from _once((latest.get(r.ref.key, r) for r in records), seen)


def _latest_patients(files: Sequence[Path]) -> dict[str, SourceRecord]:
    """The Patient to take, by its key, for each person (NHS number) at a practice that more
    than one saved record in the folder has, different: two pulls of one person, demographics
    changed between them. Taken both, the second would be a duplicate row, quarantined, and
    which won would depend on file names; so the latest is taken in place of every one, the
    latest by ``meta.lastUpdated`` when each has one, else the last file, with a warning naming
    the others. A first read of the folder, for its Patients only (each bundle's first record).
    """
    found: dict[str, list[tuple[datetime | None, int, SourceRecord]]] = {}
    for position, file in enumerate(files):
        try:
            first = next(records_from_bytes(file.read_bytes(), str(file)), None)
        except Exception:  # the second read quarantines the file (``_whole``)
            continue
        if first is not None and first.ref.table == "Patient" and not first.read_issues:
            stamp = _last_updated(first.fields["resource"])
            found.setdefault(first.ref.key, []).append((stamp, position, first))
    latest: dict[str, SourceRecord] = {}
    for key, candidates in found.items():
        if len({_digest(c[2]) for c in candidates}) < 2:
            continue
        winner = candidates[-1][2]
        stamps = [(stamp, position, record) for stamp, position, record in candidates if stamp]
        if len(stamps) == len(candidates):
            winner = max(stamps, key=lambda c: (c[0], c[1]))[2]
        others = ", ".join(c[2].file for c in candidates if c[2] is not winner)
        warning = [
            "Patient",
            f"this person's record at this practice is also saved in {others}, different: "
            "this Patient, the latest, is taken",
        ]
        fields = {
            **winner.fields,
            "_read_warnings": [*winner.fields.get("_read_warnings", ()), warning],
        }
        latest[key] = SourceRecord(winner.ref, winner.file, winner.line, fields)
    return latest


def _last_updated(resource: Mapping[str, Any]) -> datetime | None:
    """``meta.lastUpdated`` as an instant, if it is one."""
    meta = resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, dict) else None
    try:
        when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def records_from_bytes(raw: bytes, file: str) -> Iterator[SourceRecord]:
    try:
        doc = loads(raw.decode("utf-8-sig").encode(), checked=True)
    except UnicodeDecodeError as exc:
        yield unusable(file, f"not UTF-8 text: {exc}")
        return
    except orjson.JSONDecodeError as exc:
        yield unusable(file, f"not valid JSON: {exc}", line=exc.lineno)
        return
    if extent(doc)[0] > MAX_DEPTH:
        # Legal JSON still, but nothing of it could be written again (hashed, stored or put in
        # quarantine): one such entry stopped the whole run, every other bundle with it.
        yield unusable(file, f"nests deeper than {MAX_DEPTH} levels, far past any FHIR record")
        return
    yield from records_from_bundle(doc, file)


def _whole(file: str, records: Iterable[SourceRecord]) -> list[SourceRecord]:
    """A bundle's records (a generator, read here), or, if reading it fails in a way not
    foreseen, the one quarantine record naming its file: one odd bundle must not stop the
    others, nor be taken in by halves."""
    try:
        return list(records)
    except Exception as exc:
        return [unusable(file, f"could not be read: {type(exc).__name__}: {exc}")]


def unusable(
    file: str, reason: str, *, field: str | None = None, line: int = 0, org: str = UNKNOWN_ORG
) -> SourceRecord:
    """The one quarantine record for a file (or pulled response) that cannot be used at all."""
    return SourceRecord(
        SourceRef(SYSTEM, org, "Bundle", file), file, line, {}, (Issue(field, reason),)
    )


# --- one bundle --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    index: int
    resource: dict[str, Any] | None
    full_url: str | None
    warnings: tuple[tuple[str, str], ...] = ()


class _Index:
    """Bundle entries by ``Type/id`` and by ``fullUrl``, to follow references while reading."""

    def __init__(
        self, entries: Sequence[_Entry], row_ids: Mapping[int, str], patient: _Entry
    ) -> None:
        self.by_id: dict[tuple[str, str], dict[str, Any]] = {}
        self.by_url: dict[str, tuple[str, str, dict[str, Any]]] = {}
        #: The row each entry is read as, by its ``(type, id)`` as references name it.
        self.rows: dict[tuple[str, str], str] = {}
        for e in entries:
            if e.resource is None:
                continue
            rtype, rid = str(e.resource["resourceType"]), e.resource.get("id")
            if isinstance(rid, str):  # stripped, as its row id is (``_row_id``)
                self.by_id[(rtype, rid.strip())] = e.resource
                self.rows[(rtype, rid.strip())] = row_ids[e.index]
            if e.full_url:
                self.by_url[e.full_url] = (rtype, row_ids[e.index], e.resource)
        self.patient = patient.resource
        self.patient_row = row_ids[patient.index]

    def resolve(self, ref: Any) -> dict[str, Any] | None:
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            return None
        if target in self.by_url:
            return self.by_url[target][2]
        found = named(target)
        return self.by_id.get(found) if found else None

    def full_url_targets(self, node: Any) -> dict[str, list[str]]:
        """The references in a resource whose row is not the id they name (a ``fullUrl``, the
        Patient's id), with the ``[type, row id]`` they point to."""
        found: dict[str, list[str]] = {}
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                ref = item.get("reference")
                if isinstance(ref, str) and ref in self.by_url:
                    found[ref] = list(self.by_url[ref][:2])
                elif isinstance(ref, str) and self.resolve(item) is self.patient:
                    found[ref] = ["Patient", self.patient_row]
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return found

    def key(self, ref: Mapping[str, Any], ods: str) -> tuple[str, bool] | None:
        """The source key of the record a reference names, and whether it is in the bundle."""
        target = ref.get("reference")
        if not isinstance(target, str):
            return None
        if target in self.by_url:
            rtype, row, _ = self.by_url[target]
            return SourceRef(SYSTEM, ods, rtype, row).key, True
        m = RELATIVE_REFERENCE.fullmatch(target)
        if m is None:
            return None
        found = self.rows.get((m.group(1), m.group(2)))
        return SourceRef(SYSTEM, ods, m.group(1), found or m.group(2)).key, found is not None


def _entries(raw: list[Any]) -> list[_Entry]:
    out: list[_Entry] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            out.append(_Entry(index, None, None))
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        resource = entry.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            out.append(_Entry(index, resource, full_url))
        elif resource is None and isinstance(entry.get("resourceType"), str):
            bare = {k: v for k, v in entry.items() if k not in ("fullUrl", "search", "request")}
            warning = (
                f"Bundle.entry[{index}]",
                "resource not wrapped in entry.resource; read as is",
            )
            out.append(_Entry(index, bare, full_url, (warning,)))
        else:
            out.append(_Entry(index, None, full_url))
    return out


def _ods(identifiers: Any) -> str | None:
    """The ODS code among identifiers (a list, as on an Organization, or one, as on a Reference)."""
    for ident in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(ident, dict) and str(ident.get("system", "")).strip() == ODS:
            value = str(ident.get("value", "")).strip()
            if value:
                return value
    return None


def _providing_practice(
    patient: Mapping[str, Any], index: _Index, entries: Sequence[_Entry]
) -> tuple[str | None, tuple[str, str] | None]:
    """The ODS code of the practice whose record this is, and a warning if it was a guess."""
    gps = patient.get("generalPractitioner")
    for ref in [patient.get("managingOrganization"), *(gps if isinstance(gps, list) else [gps])]:
        if isinstance(ref, dict) and (code := _ods(ref.get("identifier"))):
            return code, None
        target = index.resolve(ref)
        if target is not None and target.get("resourceType") == "PractitionerRole":
            target = index.resolve(target.get("organization"))
        if target is not None and (code := _ods(target.get("identifier"))):
            return code, None
    codes = {
        code
        for e in entries
        if e.resource is not None
        and e.resource["resourceType"] == "Organization"
        and (code := _ods(e.resource.get("identifier")))
    }
    if len(codes) == 1:
        return codes.pop(), (
            "Patient.managingOrganization",
            "no reference to the practice; it is the bundle's only Organization with an ODS code",
        )
    return None, None


def _row_id(entry: _Entry, patient_key: str, taken: dict[str, int]) -> str:
    """The resource id; else the ``fullUrl``; else a key from what identifies a list section."""
    res = entry.resource or {}
    if isinstance(res.get("id"), str) and res["id"].strip():
        return str(res["id"]).strip()
    if entry.full_url:
        return entry.full_url
    natural = [patient_key, res.get("code"), res.get("encounter"), res.get("title")]
    try:
        identity = orjson.dumps(natural, default=exact, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits: orjson refuses it, the standard library does not
        identity = json.dumps(natural, sort_keys=True, default=str).encode()
    key = f"{res.get('resourceType')}-" + hashlib.sha256(identity).hexdigest()[:16]
    taken[key] = taken.get(key, 0) + 1
    return key if taken[key] == 1 else f"{key}-{taken[key]}"


def _nhs(patient: Mapping[str, Any]) -> str | None:
    identifiers = patient.get("identifier")
    for ident in identifiers if isinstance(identifiers, list) else []:
        if isinstance(ident, dict) and str(ident.get("system", "")).strip() == NHS_NUMBER:
            return str(ident.get("value", "")).strip() or None
    return None


def _patient_row(patient: _Entry, nhs: str | None, file: str) -> str:
    """The Patient's row: its NHS number, by which GP Connect fetches a record, so two people
    a practice's system gave one id (a migration, a reused number) stay two. A Patient without
    a valid one keeps the supplier's id: it goes to quarantine, and so does all it holds."""
    try:
        return values.nhs_number(nhs or "")
    except values.ValueProblem:
        return _row_id(patient, nhs or file, {})


def records_from_bundle(doc: Any, file: str) -> Iterator[SourceRecord]:
    """One record per entry of a GP Connect structured-record bundle, the Patient first."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        yield unusable(file, f"not a structured record: {describe(doc)}", field="resourceType")
        return
    raw = doc.get("entry", [])
    entries = _entries(raw if isinstance(raw, list) else [])
    patients = [e for e in entries if e.resource and e.resource["resourceType"] == "Patient"]
    if len(patients) != 1:
        many = "more than one Patient" if patients else "no Patient"
        yield unusable(
            file, f"a bundle with {many}; a structured record has exactly one", field="Bundle.entry"
        )
        return
    patient = patients[0]
    patient_res = patient.resource or {}
    taken: dict[str, int] = {}
    patient_id = _patient_row(patient, _nhs(patient_res), file)
    row_ids = {patient.index: patient_id}
    row_ids |= {
        e.index: _row_id(e, patient_id, taken) for e in entries if e is not patient and e.resource
    }
    index = _Index(entries, row_ids, patient)
    ods, guess = _providing_practice(patient_res, index, entries)
    if ods is None:
        yield unusable(
            file,
            "cannot tell the providing practice: no Organization with an ODS "
            "code is referenced by the Patient",
            field="Patient.managingOrganization",
        )
        return
    shared = {"_nhs_number": _nhs(patient_res), "_patient_id": patient_id}
    usable = {e.index: e.resource for e in entries if e.resource is not None}
    inherited = dict(
        zip(usable, inherited_codes(list(usable.values()), index.resolve), strict=True)
    )
    for entry in [patient, *(e for e in entries if e is not patient)]:
        if entry.resource is None:
            yield SourceRecord(
                SourceRef(SYSTEM, ods, "Bundle.entry", f"{file}#{entry.index}"),
                file,
                entry.index,
                {},
                (Issue(f"Bundle.entry[{entry.index}]", "an entry without a resource"),),
            )
            continue
        warnings = [*entry.warnings, *((guess,) if entry is patient and guess else ())]
        fields: dict[str, Any] = {
            "resource": entry.resource,
            **shared,
            "_full_urls": index.full_url_targets(entry.resource),
        }
        if inherited[entry.index]:
            fields["_pointed_codings"] = inherited[entry.index]
        if (drug := _drug(entry.resource, index)) is not None:
            fields["_medication"] = drug
        fields |= _pointed(entry.resource, index, ods)
        if warnings:
            fields["_read_warnings"] = [list(w) for w in warnings]
        ref = SourceRef(SYSTEM, ods, str(entry.resource["resourceType"]), row_ids[entry.index])
        yield SourceRecord(ref, file, entry.index, fields)


#: The types that name their drug by a reference to a Medication (GP Connect's way).
_NAMES_A_DRUG = frozenset({"MedicationStatement", "MedicationRequest"})


def _drug(resource: dict[str, Any], index: _Index) -> dict[str, Any] | None:
    """The Medication in this bundle a statement or request names, which the mapping carries
    inside it (``convert.contain_drug``): stored on its own it is no one's record, and no read
    of the person releases it, so the drug they take was named nowhere."""
    if resource.get("resourceType") not in _NAMES_A_DRUG:
        return None
    drug = index.resolve(resource.get("medicationReference"))
    return drug if drug is not None and drug.get("resourceType") == "Medication" else None


def _pointed(resource: dict[str, Any], index: _Index, ods: str) -> dict[str, list[str]]:
    """The source keys of what an entry takes its labels from (``links.py``), in this bundle or
    not (a pull of one clinical area names problems another brought), and those in it."""
    named: dict[str, bool] = {}
    for ref in labelling_references(resource):
        found = index.key(ref, ods)
        if found is not None and SourceRef.from_key(found[0]).table not in CONTEXT:
            named[found[0]] = named.get(found[0], False) or found[1]
    out: dict[str, list[str]] = {}
    if named:
        out["_pointed_records"] = sorted(named)
    if met := sorted(k for k, present in named.items() if present):
        out["_met_records"] = met
    return out


def _digest(record: SourceRecord) -> str:
    """What makes two records with one key the same record."""
    return hashlib.sha256(
        orjson.dumps(
            [
                record.fields["resource"],
                record.fields.get("_full_urls"),
                record.fields.get("_pointed_codings"),
            ],
            default=exact,
            option=orjson.OPT_SORT_KEYS,
        )
    ).hexdigest()


def _once(records: Iterable[SourceRecord], seen: dict[str, str]) -> Iterator[SourceRecord]:
    """Skip a record already yielded with the same key and the same content."""
    for record in records:
        if record.read_issues:
            yield record
            continue
        digest = _digest(record)
        if seen.get(record.ref.key) == digest:
            continue
        seen.setdefault(record.ref.key, digest)
        yield record


# --- pulling over HTTP -------------------------------------------------------------------


def _delay(attempt: int, retry_after: str | None, backoff: float) -> float:
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass
    return float(min(backoff * 2 ** (attempt - 1), MAX_RETRY_AFTER))


def _bundle(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        doc = loads(response.content, checked=True)
    except orjson.JSONDecodeError:
        raise GpConnectError(f"{url}: HTTP {response.status_code}, not a JSON body") from None
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        raise OperationOutcomeError(url, response.status_code, doc)
    if not response.is_success:
        raise GpConnectError(f"{url}: HTTP {response.status_code}")
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise GpConnectError(f"{url}: expected a Bundle, got {describe(doc)}")
    return doc


def pull(
    base_url: str,
    nhs_number: str,
    *,
    consumer: Consumer,
    provider_asid: str,
    client: httpx.Client | None = None,
    areas: Sequence[Mapping[str, Any]] = ALL_AREAS,
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """One patient's structured record (a STU3 Bundle) from a GP Connect provider.

    Retries a 429 or 5xx answer and network errors up to ``attempts`` times in all, waiting
    ``Retry-After`` (capped) or an exponential backoff; raises :class:`OperationOutcomeError`
    when the provider answers with an OperationOutcome and :class:`GpConnectError` otherwise.
    """
    url = base_url.rstrip("/") + "/Patient/$gpc.getstructuredrecord"
    body = orjson.dumps(parameters(nhs_number, areas))
    http = client or httpx.Client(timeout=60.0)
    try:
        attempt = 1
        while True:
            headers = {
                "Ssp-TraceID": str(uuid.uuid4()),
                "Ssp-From": consumer.asid,
                "Ssp-To": provider_asid,
                "Ssp-InteractionID": INTERACTION,
                "Accept": FHIR_JSON,
                "Content-Type": FHIR_JSON,
                "Authorization": f"Bearer {audit_jwt(consumer, base_url, clock())}",
            }
            retry_after: str | None = None
            try:
                response = http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= attempts:
                    raise GpConnectError(f"{url}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= attempts:
                    return _bundle(response, url)
                retry_after = response.headers.get("Retry-After")
            sleep(_delay(attempt, retry_after, backoff))
            attempt += 1
    finally:
        if client is None:
            http.close()


def read_pulled(
    base_url: str,
    nhs_numbers: Iterable[str],
    *,
    consumer: Consumer,
    provider_asid: str,
    client: httpx.Client | None = None,
    **options: Any,
) -> Iterator[SourceRecord]:
    """Records of each patient's pulled bundle, as ``read`` yields them from files.

    A number that is not a valid NHS number, or a provider that answers with an OperationOutcome
    (patient not found, dissent, ...), gives one quarantine record for that patient; any other
    failure (network, HTTP) stops the pull with :class:`GpConnectError`.
    """
    http = client or httpx.Client(timeout=60.0)
    seen: dict[str, str] = {}
    try:
        for raw in nhs_numbers:
            try:
                nhs = values.nhs_number(raw)
            except values.ValueProblem as exc:
                yield unusable(
                    f"gpconnect-pull-{raw.strip()}.json", str(exc), field="patientNHSNumber"
                )
                continue
            file = f"gpconnect-pull-{nhs}.json"
            try:
                bundle = pull(
                    base_url,
                    nhs,
                    client=http,
                    consumer=consumer,
                    provider_asid=provider_asid,
                    **options,
                )
            except OperationOutcomeError as exc:
                yield unusable(file, str(exc))
                continue
            yield from _once(_whole(file, records_from_bundle(bundle, file)), seen)
    finally:
        if client is None:
            http.close()
