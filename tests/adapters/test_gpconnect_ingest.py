"""GP Connect bundles through the ingest pipeline: whose record each entry is, labels across
pulls, one bad bundle among good ones, and numbers as written."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from adapters.base import SourceRef
from adapters.codes import CodeMaps
from adapters.gpconnect import GpConnectAdapter
from engine import quarantine
from engine.ingest import RunSummary, ingest
from engine.models import Resource
from engine.settings import Settings
from tests.adapters.test_gpconnect import NHS, PRACTICE, bundle, organization, patient
from tests.factories import nhs_numbers

SCT = "http://snomed.info/sct"
OTHER_NHS = next(n for n in nhs_numbers() if n != NHS)


def _ingest(
    engine: Engine, settings: Settings, codes: CodeMaps, folder: Path, *docs: Any
) -> RunSummary:
    """Ingest a folder holding ``docs`` (dicts, or bytes as written) as ``1.json``, ``2.json``..."""
    folder.mkdir(parents=True)
    for i, doc in enumerate(docs, start=1):
        (folder / f"{i}.json").write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return ingest(engine, settings, codes, GpConnectAdapter(), str(folder))


def _rid(table: str, row: str) -> str:
    return SourceRef("gpconnect", PRACTICE, table, row).resource_id(table)


def _row(engine: Engine, rid: str) -> Any:
    R = Resource.__table__
    with engine.connect() as conn:
        return conn.execute(select(R).where(R.c.id == rid)).first()


def _observation(rid: str, subject: str = "Patient/p1", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": SCT, "code": "75367002"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2019-07-01T10:30:00+00:00",
        **extra,
    }


def _syphilis(rid: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": "active",
        "verificationStatus": "confirmed",
        "assertedDate": "2024-02-01",
        "code": {"coding": [{"system": SCT, "code": "76272004", "display": "Syphilis"}]},
        "subject": {"reference": "Patient/p1"},
    }


def _medicine_for(condition: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": SCT, "code": "39720311000001101"}]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2024-02-01"},
        "taken": "unk",
        "reasonReference": [{"reference": f"Condition/{condition}"}],
    }


def test_one_malformed_bundle_is_quarantined_and_the_others_are_taken_in(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """One odd bundle (a Patient ``identifier`` that is a number) must not stop the run and so
    every other patient's record in the folder."""
    bad = patient(OTHER_NHS)
    bad["identifier"] = 5
    summary = _ingest(
        engine,
        settings,
        codes,
        tmp_path / "gpc",
        bundle(patient(), organization(), _observation("o1")),
        bundle(bad, organization()),
    )
    assert summary.status == "completed"
    assert summary.reasons == {"Patient.Patient.identifier": 1}
    assert _row(engine, _rid("Observation", "o1")) is not None


def test_an_entry_about_another_patient_is_quarantined(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """An entry in A's bundle whose ``subject`` is B would be filed in A's record while saying
    it is about B."""
    other = patient(OTHER_NHS)
    other["id"] = "p2"
    _ingest(engine, settings, codes, tmp_path / "one", bundle(other, organization()))
    doc = bundle(patient(), organization(), _observation("o1", subject="Patient/p2"))
    summary = _ingest(engine, settings, codes, tmp_path / "two", doc)
    assert summary.reasons == {"Observation.Observation.subject": 1}
    assert _row(engine, _rid("Observation", "o1")) is None


def test_an_entry_whose_narrative_could_run_script_is_quarantined(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A narrative is stored as it came and served to clients that may render it: one with an
    event handler (R4's txt-1) is kept back, saying where, and the rest of the record is
    taken in, a narrative of basic formatting included."""
    xhtml = 'xmlns="http://www.w3.org/1999/xhtml"'
    handler = {"status": "generated", "div": f'<div {xhtml}><img src="x" onerror="go()"/></div>'}
    plain = {"status": "generated", "div": f"<div {xhtml}>Pulse <b>72</b></div>"}
    doc = bundle(
        patient(), organization(), _observation("o1", text=handler), _observation("o2", text=plain)
    )
    summary = _ingest(engine, settings, codes, tmp_path / "gpc", doc)
    assert summary.reasons == {"Observation.Observation.text.div": 1}
    (item,) = quarantine.list_items(engine)
    assert "event handler" in item.reason
    assert _row(engine, _rid("Observation", "o1")) is None
    assert _row(engine, _rid("Observation", "o2")) is not None


def test_two_people_given_one_patient_id_stay_two(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A supplier id a practice's system gave two people (a migration, a reused number) must
    not make the second person's bundle overwrite the first's Patient and take their record."""
    first = bundle(patient(NHS), organization(), _observation("o-first"))
    second = bundle(patient(OTHER_NHS), organization(), _observation("o-second"))
    _ingest(engine, settings, codes, tmp_path / "one", first)
    _ingest(engine, settings, codes, tmp_path / "two", second)
    for nhs, obs in ((NHS, "o-first"), (OTHER_NHS, "o-second")):
        person = _row(engine, _rid("Patient", nhs))
        identifiers = orjson.loads(person.body)["identifier"]
        assert [i["value"] for i in identifiers if i["system"].endswith("nhs-number")] == [nhs]
        assert _row(engine, _rid("Observation", obs)).patient_id == person.id


@pytest.mark.parametrize("stamped", [True, False])
def test_two_saved_records_of_one_person_take_the_latest_patient(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, stamped: bool
) -> None:
    """Two saved pulls of one person at one practice whose Patients differ (demographics
    changed between them) share one row: the second was quarantined as a duplicate, an item
    no one could clear, and which demographics won depended on the files' names. The latest
    (by ``meta.lastUpdated``, else the later file) is taken, and every entry of both."""
    stale, fresh = patient(), patient()
    fresh["id"] = "p9"
    fresh["telecom"] = [{"system": "phone", "value": "01234 567890"}]
    if stamped:  # the newer Patient is in the first file
        fresh["meta"]["lastUpdated"] = "2021-06-01T00:00:00+01:00"
    else:
        del stale["meta"]["lastUpdated"], fresh["meta"]["lastUpdated"]
    newer = bundle(fresh, organization(), _observation("o1", "Patient/p9"))
    older = bundle(stale, organization(), _observation("o2"))
    docs = (newer, older) if stamped else (older, newer)
    summary = _ingest(engine, settings, codes, tmp_path / "gpc", *docs)
    assert summary.quarantined == 0, summary.reasons
    stored = orjson.loads(_row(engine, _rid("Patient", NHS)).body)
    assert stored["telecom"][0]["value"] == "01234 567890"
    for obs in ("o1", "o2"):
        assert _row(engine, _rid("Observation", obs)) is not None


def test_an_item_pulled_after_the_sensitive_problem_it_names_is_labelled(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A medicine pulled with one clinical area, naming a syphilis problem another area's pull
    stored, would be released to everyone while the problem is withheld."""
    problems = bundle(patient(), organization(), _syphilis("c1"))
    _ingest(engine, settings, codes, tmp_path / "problems", problems)
    assert "sensitive-sti" in _row(engine, _rid("Condition", "c1")).labels
    medicines = bundle(patient(), organization(), _medicine_for("c1"))
    _ingest(engine, settings, codes, tmp_path / "medicines", medicines)
    assert "sensitive-sti" in _row(engine, _rid("MedicationStatement", "ms1")).labels


def test_an_item_stored_before_the_sensitive_problem_it_names_is_labelled(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A medicine stored before the pull that brings the syphilis problem it names would stay
    released while the problem is withheld."""
    medicines = bundle(patient(), organization(), _medicine_for("c1"))
    _ingest(engine, settings, codes, tmp_path / "medicines", medicines)
    assert _row(engine, _rid("MedicationStatement", "ms1")).labels == ""
    problems = bundle(patient(), organization(), _syphilis("c1"))
    summary = _ingest(engine, settings, codes, tmp_path / "problems", problems)
    assert summary.relabelled == 1
    assert "sensitive-sti" in _row(engine, _rid("MedicationStatement", "ms1")).labels


def test_decimals_are_stored_as_written(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A bundle read with binary floats would store ``7.50 mmol/L`` as ``7.5`` and round a
    20-digit value: clinical values silently altered."""
    quantity = {"unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    doc = bundle(
        patient(),
        organization(),
        _observation("o1", valueQuantity={**quantity, "value": "@1@"}),
        _observation("o2", valueQuantity={**quantity, "value": "@2@"}),
    )
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    raw = raw.replace(b'"@1@"', b"7.50").replace(b'"@2@"', b"12345678901234567890.5")
    summary = _ingest(engine, settings, codes, tmp_path / "gpc", raw)
    assert summary.quarantined == 0
    assert b'"value":7.50}' in _row(engine, _rid("Observation", "o1")).body
    assert b'"value":12345678901234567890.5}' in _row(engine, _rid("Observation", "o2")).body


def test_a_quarantined_entry_keeps_its_decimals_as_written(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """Quarantine must keep what was read: a decimal would stop the run (not JSON to the
    standard library), or come back from quarantine as a float."""
    value = {"unit": "mmol/L", "value": "@1@"}
    doc = bundle(patient(), organization(), _observation("o1", "Patient/p2", valueQuantity=value))
    raw = orjson.dumps(doc).replace(b'"@1@"', b"7.50")
    summary = _ingest(engine, settings, codes, tmp_path / "gpc", raw)
    assert summary.reasons == {"Observation.Observation.subject": 1}
    (item,) = quarantine.list_items(engine)
    assert item.record["fields"]["resource"]["valueQuantity"]["value"] == Decimal("7.50")
    again = quarantine.replay(engine, settings, codes, [item.id])
    assert again.reasons == {"Observation.Observation.subject": 1}
    (item,) = quarantine.list_items(engine)
    assert str(item.record["fields"]["resource"]["valueQuantity"]["value"]) == "7.50"


def _allergy(rid: str, verification: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance", "id": rid, "clinicalStatus": "active",
        "verificationStatus": verification, "assertedDate": "2020-01-01",
        "code": {"coding": [{"system": SCT, "code": "91936005"}]},
        "patient": {"reference": "Patient/p1"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("table", "first", "again"),
    [
        ("Observation", _observation("o1"), _observation("o1", status="entered-in-error")),
        ("AllergyIntolerance", _allergy("a1", "confirmed"), _allergy("a1", "entered-in-error")),
    ],
    ids=["status", "verification-status"],
)
def test_a_record_the_practice_sends_again_as_entered_in_error_leaves_the_record(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path,
    table: str, first: dict[str, Any], again: dict[str, Any],
) -> None:  # fmt: skip
    """GP Connect withdraws a record by sending it again marked entered-in-error: its row was
    stored active, and every read still served it, as the practice's record no longer does."""
    _ingest(engine, settings, codes, tmp_path / "a", bundle(patient(), organization(), first))
    assert _row(engine, _rid(table, first["id"])).status == "active"
    _ingest(engine, settings, codes, tmp_path / "b", bundle(patient(), organization(), again))
    assert _row(engine, _rid(table, first["id"])).status == "entered-in-error"


def test_a_bundle_nested_past_the_bound_is_quarantined_and_the_others_are_taken_in(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """An entry with extensions nested 130 deep is legal JSON (orjson reads 1,024 levels) but
    cannot be written again (it writes 255): hashing it stopped the whole run, and every
    other bundle in the folder with it."""
    deep: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for i in range(130):
        deep = {"url": f"http://example.org/e{i}", "extension": [deep]}
    summary = _ingest(
        engine, settings, codes, tmp_path / "gpc",
        json.dumps(bundle(patient(), organization(), _observation("deep", extension=[deep])))
        .encode(),
        bundle(patient(OTHER_NHS), organization(), _observation("o2")),
    )  # fmt: skip
    assert summary.status == "completed" and summary.quarantined == 1
    [item] = quarantine.list_items(engine)
    assert "nests deeper than 64 levels" in item.reason
    assert _row(engine, _rid("Observation", "o2")) is not None


def test_an_entry_about_a_full_url_the_bundle_does_not_hold_is_quarantined(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A subject naming a urn: no entry has is about someone the bundle does not hold: it was
    filed under the bundle's Patient, with a dangling subject and only a warning."""
    stray = "urn:uuid:11111111-2222-4333-8444-555555555555"
    doc = bundle(patient(), organization(), _observation("o1", subject=stray))
    summary = _ingest(engine, settings, codes, tmp_path / "gpc", doc)
    assert summary.quarantined == 1
    assert _row(engine, _rid("Observation", "o1")) is None
    [item] = quarantine.list_items(engine)
    assert item.field == "Observation.subject" and "names no entry" in item.reason
