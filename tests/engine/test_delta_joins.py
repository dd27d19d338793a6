"""A SystmOne delta bringing one side of a problem join: the coded event, or its problem row.

A coded event is a Condition when an SRProblem row names it, else an Observation. A delta sends
only what changed, so the other side is taken as last taken in (``engine.kept``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from adapters.codes import CodeMaps
from adapters.systmone import SystmOneAdapter
from engine.ingest import RunSummary, ingest
from engine.models import KeptRow, Resource, StagedKeptRow
from engine.quarantine import list_items, replay
from engine.settings import Settings
from tests.adapters import test_emis as emis
from tests.engine.test_ingest import s1_problem, statuses
from tests.factories import nhs_numbers, s1_code, s1_patient, write_csv, write_systmone

NHS = nhs_numbers()
KEY = "systmone|Y00001|SRCode|10"


def run(engine: Engine, settings: Settings, codes: CodeMaps, folder: Path) -> RunSummary:
    return ingest(engine, settings, codes, SystmOneAdapter(), str(folder))


def as_delta(folder: Path) -> Path:
    row = {"FileName": "SRProblem.csv", "IsDelta": "Y", "DateExtractFrom": "01 Jan 2005",
           "DateExtractTo": "01 Dec 2026"}  # fmt: skip
    write_csv(folder / "SRManifest.csv", list(row), [row], "cp1252")
    return folder


def delta(
    root: Path, name: str, nhs: str, codes: list[dict[str, str]], problems: list[dict[str, str]]
) -> Path:
    return as_delta(write_systmone(root / name, [s1_patient("1", nhs)], codes, problems))


def body(engine: Engine, rtype: str) -> dict[str, Any]:
    with engine.connect() as conn:
        raw = conn.execute(
            select(Resource.body).where(Resource.source_key == KEY, Resource.resource_type == rtype)
        ).scalar_one()
    return dict(orjson.loads(raw))


def stored_event(engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path) -> str:
    """Patient 1 with coded event 10 (an Observation), from a full extract; their number."""
    nhs = next(NHS)
    full = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    run(engine, settings, codes, full)
    return nhs


def test_an_event_sent_without_its_problem_row_stays_a_problem(engine, settings, codes, tmp_path):
    """The event's change is taken in as the problem it is: no Observation beside it."""
    nhs = next(NHS)
    full = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")])
    write_systmone(full, [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")])
    run(engine, settings, codes, full)
    moved = s1_code("10", "1", DateEvent="02 Mar 2024 09:00:00")
    summary = run(engine, settings, codes, delta(tmp_path, "d", nhs, [moved], []))
    assert summary.quarantined == 0
    assert statuses(engine, KEY) == {"Condition": "active"}
    condition = body(engine, "Condition")
    assert condition["onsetDateTime"].startswith("2024-03-02")
    assert condition["severity"]["text"] == "Major"  # from the problem row, as last taken in


def test_a_problem_removed_without_its_event_leaves_an_observation(
    engine, settings, codes, tmp_path
):
    """The practice takes the code off the problem list; the event is unchanged, so not sent."""
    nhs = next(NHS)
    full = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, full)
    removal = delta(tmp_path, "d", nhs, [], [s1_problem("10", RemovedData="1")])
    summary = run(engine, settings, codes, removal)
    assert summary.quarantined == 0
    assert statuses(engine, KEY) == {"Condition": "entered-in-error", "Observation": "active"}
    assert body(engine, "Observation")["valueQuantity"]["value"] == 120  # the event's own value
    again = run(engine, settings, codes, removal)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_a_problem_added_or_ended_without_its_event(engine, settings, codes, tmp_path):
    nhs = stored_event(engine, settings, codes, tmp_path)
    run(engine, settings, codes, delta(tmp_path, "d1", nhs, [], [s1_problem("10")]))
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}
    ended = s1_problem("10", DateEnd="01 Jun 2024")
    run(engine, settings, codes, delta(tmp_path, "d2", nhs, [], [ended]))
    condition = body(engine, "Condition")
    assert condition["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}


def test_a_problem_made_private_without_its_event_is_labelled(engine, settings, codes, tmp_path):
    """Visibility set on the problem row alone labels the Condition confidential."""
    nhs = next(NHS)
    full = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    run(engine, settings, codes, full)
    private = s1_problem("10", IDOrganisationVisibleTo="5001")
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [], [private]))
    labels = {c["code"] for c in body(engine, "Condition")["meta"]["security"]}
    assert "source-confidential" in labels


def test_a_deleted_event_is_not_brought_back_by_its_problem_row(engine, settings, codes, tmp_path):
    nhs = stored_event(engine, settings, codes, tmp_path)
    gone = s1_code("10", "1", RemovedData="1")
    run(engine, settings, codes, delta(tmp_path, "d1", nhs, [gone], []))
    summary = run(engine, settings, codes, delta(tmp_path, "d2", nhs, [], [s1_problem("10")]))
    assert statuses(engine, KEY) == {"Observation": "entered-in-error"}
    assert summary.quarantined == 0
    assert any("SRProblem.csv" in note and "nothing to map again" in note for note in summary.notes)


def test_a_problem_row_for_an_event_never_stored_changes_nothing(engine, settings, codes, tmp_path):
    nhs = next(NHS)
    run(engine, settings, codes, write_systmone(tmp_path / "x", [s1_patient("1", nhs)]))
    summary = run(engine, settings, codes, delta(tmp_path, "d", nhs, [], [s1_problem("99")]))
    assert (summary.created, summary.quarantined) == (0, 0)
    assert statuses(engine, "systmone|Y00001|SRCode|99") == {}


def test_a_problem_row_read_with_a_problem_holds_its_event(engine, settings, codes, tmp_path):
    """The event is held naming the bad problem row until the source sends it corrected."""
    nhs = stored_event(engine, settings, codes, tmp_path)
    folder = delta(tmp_path, "d", nhs, [], [s1_problem("10")])
    header, row = (folder / "SRProblem.csv").read_text("cp1252").splitlines()
    (folder / "SRProblem.csv").write_text(f"{header}\n{row},surplus\n", "cp1252")
    summary = run(engine, settings, codes, folder)
    assert summary.quarantined == 1
    [item] = list_items(engine)
    assert item.source_key == KEY and item.file == "SRCode.csv"  # the event, where it was read
    assert "SRProblem.csv, line 2" in item.reason
    assert statuses(engine, KEY) == {"Observation": "active"}  # as it was
    assert replay(engine, settings, codes, [item.id]).quarantined == 1  # still the bad row
    run(engine, settings, codes, delta(tmp_path, "d2", nhs, [], [s1_problem("10")]))
    assert list_items(engine, status="open") == []
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}


def test_kept_rows_follow_the_run(engine, settings, codes, tmp_path):
    """Kept once the run completes, nothing left staged, without the reader's marks or empty
    columns but with every join (an empty visibility is not an unknown one); a deleted event
    is kept no more."""
    nhs = next(NHS)
    run(engine, settings, codes, delta(tmp_path, "d0", nhs, [s1_code("10", "1")], []))
    run(engine, settings, codes, delta(tmp_path, "d1", nhs, [], [s1_problem("10")]))
    with engine.connect() as conn:
        [(key, record)] = conn.execute(select(KeptRow.source_key, KeptRow.record)).all()
        assert conn.execute(select(func.count()).select_from(StagedKeptRow)).scalar_one() == 0
    assert key == KEY
    assert "_TakeStoredJoins" not in record["fields"] and "_TakeStoredRow" not in record["fields"]
    assert "NumericComparator" not in record["fields"]  # empty
    assert record["fields"]["_ProblemVisibleTo"] == ""
    gone = s1_code("10", "1", RemovedData="1")
    run(engine, settings, codes, delta(tmp_path, "d2", nhs, [gone], []))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(KeptRow)).scalar_one() == 0


def emis_delta(root: Path, tables: dict[str, list[dict[str, str]]], keep: tuple[str, ...]) -> Path:
    """An EMIS delta holding only the required tables and ``keep``."""
    required = ("Admin_Organisation", "Admin_Patient", "Coding_ClinicalCode")
    return emis.write_extract(root, {t: tables[t] for t in (*required, *keep)})


def emis_stored(engine: Engine, guid: str) -> dict[str, str]:
    return {
        key.split(":")[0]: row.status
        for key, row in emis.stored(engine).items()
        if key.endswith(f":{guid}")
    }


def test_an_emis_problem_deleted_without_its_observation(engine, settings, codes, tmp_path):
    """As for SystmOne: the delta deletes the CareRecord_Problem row alone."""
    extract = emis.write_extract(tmp_path / "emis", emis.default_tables())
    emis.run(engine, settings, codes, extract)
    tables = emis.default_tables()
    tables["CareRecord_Problem"][0]["Deleted"] = emis.TRUE
    folder = emis_delta(extract.parent / "d1", tables, ("CareRecord_Problem",))
    emis.run(engine, settings, codes, folder)
    assert emis.O_ASTHMA not in emis.quarantine(engine)
    assert emis_stored(engine, emis.O_ASTHMA) == {
        "Condition": "entered-in-error",
        "Observation": "active",
    }


def test_an_emis_observation_sent_without_its_problem_row(engine, settings, codes, tmp_path):
    extract = emis.write_extract(tmp_path / "emis", emis.default_tables())
    emis.run(engine, settings, codes, extract)
    tables = emis.default_tables()
    asthma = next(
        o for o in tables["CareRecord_Observation"] if o["ObservationGuid"] == emis.O_ASTHMA
    )
    tables["CareRecord_Observation"] = [{**asthma, "EffectiveDate": "2011-06-15"}]
    folder = emis_delta(extract.parent / "d1", tables, ("CareRecord_Observation",))
    emis.run(engine, settings, codes, folder)
    assert emis_stored(engine, emis.O_ASTHMA) == {"Condition": "active"}
    onset = emis.body(emis.stored(engine)[f"Condition:{emis.O_ASTHMA}"])["onsetDateTime"]
    assert onset.startswith("2011-06-15")


def held_event(engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path) -> str:
    """A stored event (value 120) whose change (value 200, a bad date) is held."""
    nhs = stored_event(engine, settings, codes, tmp_path)
    bad = s1_code("10", "1", NumericValue="200", DateEvent="31 Feb 2024 09:00:00")
    assert run(engine, settings, codes, delta(tmp_path, "d1", nhs, [bad], [])).quarantined == 1
    return nhs


def test_a_problem_row_for_a_held_event_joins_the_held_row(engine, settings, codes, tmp_path):
    """The held row is newer than the one taken in: the problem joins it, in quarantine (its
    own problem stands), and the corrected replay is the problem with the newer value."""
    nhs = held_event(engine, settings, codes, tmp_path)
    run(engine, settings, codes, delta(tmp_path, "d2", nhs, [], [s1_problem("10")]))
    [item] = list_items(engine)
    assert item.source_key == KEY and item.file == "SRCode.csv"
    assert item.record["fields"]["NumericValue"] == "200"
    assert statuses(engine, KEY) == {"Observation": "active"}  # as taken in, value 120
    replay(engine, settings, codes, [item.id], corrections={"DateEvent": "28 Feb 2024 09:00:00"})
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}
    assert body(engine, "Condition")["onsetDateTime"].startswith("2024-02-28")


def test_a_bad_problem_row_for_a_held_event_keeps_the_newer_row(engine, settings, codes, tmp_path):
    nhs = held_event(engine, settings, codes, tmp_path)
    folder = delta(tmp_path, "d2", nhs, [], [s1_problem("10")])
    header, row = (folder / "SRProblem.csv").read_text("cp1252").splitlines()
    (folder / "SRProblem.csv").write_text(f"{header}\n{row},surplus\n", "cp1252")
    run(engine, settings, codes, folder)
    [item] = list_items(engine)
    assert item.record["fields"]["NumericValue"] == "200"


def test_a_problem_row_naming_another_patient_holds_the_event(engine, settings, codes, tmp_path):
    """Patient 2's problem row names patient 1's code row: neither as a delta's rejoin nor
    joined in one extract is patient 1's event made a problem with patient 2's details."""
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    run(engine, settings, codes, write_systmone(tmp_path / "x", patients, [s1_code("10", "1")]))
    theirs = s1_problem("10", IDPatient="2")
    run(engine, settings, codes, delta(tmp_path, "d1", nhs2, [], [theirs]))
    assert statuses(engine, KEY) == {"Observation": "active"}
    [item] = list_items(engine)
    assert "names patient 2, not this row's IDPatient 1" in item.reason
    both = write_systmone(tmp_path / "y", patients, [s1_code("10", "1")], [theirs])
    assert run(engine, settings, codes, both).quarantined == 1
    assert statuses(engine, KEY) == {"Observation": "active"}
    [item] = list_items(engine)
    assert "names patient 2, not 1" in item.reason


def confidential_consultation(
    engine: Engine, settings: Settings, codes: CodeMaps, root: Path
) -> None:
    """An EMIS extract, then a delta making the asthma entry's consultation confidential (the
    stored entry takes the label through its pointer)."""
    emis.run(engine, settings, codes, emis.write_extract(root / "emis", emis.default_tables()))
    tables = emis.default_tables()
    tables["CareRecord_Consultation"][0]["IsConfidential"] = emis.TRUE
    emis.run(engine, settings, codes, emis_delta(root / "d1", tables, ("CareRecord_Consultation",)))
    labels = emis.stored(engine)[f"Condition:{emis.O_ASTHMA}"].labels.split()
    assert "source-confidential" in labels


@pytest.mark.parametrize(
    ("change", "kind"),
    [({"Deleted": "true"}, "Observation"), ({"EndDate": "2024-06-01"}, "Condition")],
    ids=["problem-deleted", "problem-ended"],
)
def test_an_entry_mapped_again_keeps_what_it_took_since(
    engine, settings, codes, tmp_path, change, kind
):
    """The kept entry met its consultation when first read (not confidential then): mapped
    again for its problem row alone it takes the consultation's stored labels, as a replay
    does, rather than losing the one it took since."""
    confidential_consultation(engine, settings, codes, tmp_path)
    tables = emis.default_tables()
    tables["CareRecord_Problem"][0].update(change)
    emis.run(engine, settings, codes, emis_delta(tmp_path / "d2", tables, ("CareRecord_Problem",)))
    row = emis.stored(engine)[f"{kind}:{emis.O_ASTHMA}"]
    assert row.status == "active"
    assert "source-confidential" in row.labels.split()


def test_an_event_held_for_its_problem_row_stays_held_when_sent_alone(
    engine, settings, codes, tmp_path
):
    """A full extract holds the event for its problem row (another patient's, or one read
    with a problem); a delta sending the event alone takes the held row's joins with what
    held them, not another patient's details (nor the bad row's) into the record."""
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    run(engine, settings, codes, write_systmone(tmp_path / "x", patients, [s1_code("10", "1")]))
    theirs = s1_problem("10", IDPatient="2", Severity="Minor")
    both = write_systmone(tmp_path / "y", patients, [s1_code("10", "1")], [theirs])
    assert run(engine, settings, codes, both).quarantined == 1
    changed = s1_code("10", "1", NumericValue="130")
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [changed], []))
    assert statuses(engine, KEY) == {"Observation": "active"}
    [item] = list_items(engine)
    assert item.record["fields"]["NumericValue"] == "130" and "patient 2" in item.reason


def test_removing_another_patients_problem_row_releases_the_event(
    engine, settings, codes, tmp_path
):
    """The practice mends the wrong problem row by removing it: the removal still names the
    other patient, as the row did, but joins nothing, so the event goes in."""
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    theirs = s1_problem("10", IDPatient="2")
    both = write_systmone(tmp_path / "y", patients, [s1_code("10", "1")], [theirs])
    assert run(engine, settings, codes, both).quarantined == 1
    removal = s1_problem("10", IDPatient="2", RemovedData="1")
    run(engine, settings, codes, delta(tmp_path, "d", nhs2, [], [removal]))
    assert list_items(engine) == []
    assert statuses(engine, KEY) == {"Observation": "active"}


def test_an_event_held_for_a_bad_problem_row_stays_held_when_sent_alone(
    engine, settings, codes, tmp_path
):
    nhs = next(NHS)
    full = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)], [s1_code("10", "1")], [s1_problem("10")]
    )
    header, row = (full / "SRProblem.csv").read_text("cp1252").splitlines()
    (full / "SRProblem.csv").write_text(f"{header}\n{row},surplus\n", "cp1252")
    assert run(engine, settings, codes, full).quarantined == 1
    changed = s1_code("10", "1", NumericValue="130")
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [changed], []))
    [item] = list_items(engine)
    assert item.record["fields"]["NumericValue"] == "130" and "SRProblem.csv, line 2" in item.reason
    assert statuses(engine, KEY) == {}


def held_for_problem_row(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, how: str
) -> str:
    """A stored event whose change a full extract holds for its problem row: another
    patient's, or one read with a problem."""
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    run(engine, settings, codes, write_systmone(tmp_path / "x", patients, [s1_code("10", "1")]))
    problem = s1_problem("10", IDPatient="2") if how == "another patient's" else s1_problem("10")
    changed = [s1_code("10", "1", NumericValue="130")]
    full = write_systmone(tmp_path / "y", patients, changed, [problem])
    if how == "unreadable":
        header, row = (full / "SRProblem.csv").read_text("cp1252").splitlines()
        (full / "SRProblem.csv").write_text(f"{header}\n{row},surplus\n", "cp1252")
    assert run(engine, settings, codes, full).quarantined == 1
    return nhs


@pytest.mark.parametrize("how", ["another patient's", "unreadable"])
def test_an_event_held_for_its_problem_row_is_deleted_when_the_practice_deletes_it(
    engine, settings, codes, tmp_path, how
):
    """A deletion joins nothing: neither the held row's problem nor the problem row beside it
    in one extract holds it, and the stored event is withdrawn."""
    nhs = held_for_problem_row(engine, settings, codes, tmp_path, how)
    gone = s1_code("10", "1", RemovedData="1")
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [gone], []))
    assert "active" not in statuses(engine, KEY).values()
    assert list_items(engine) == []


def test_an_event_deleted_beside_another_patients_problem_row_is_deleted(
    engine, settings, codes, tmp_path
):
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    run(engine, settings, codes, write_systmone(tmp_path / "x", patients, [s1_code("10", "1")]))
    gone, theirs = s1_code("10", "1", RemovedData="1"), s1_problem("10", IDPatient="2")
    run(engine, settings, codes, write_systmone(tmp_path / "y", patients, [gone], [theirs]))
    assert "active" not in statuses(engine, KEY).values()
    assert list_items(engine) == []


def test_a_problem_row_alone_joins_the_copy_taken_in_not_a_duplicate(
    engine, settings, codes, tmp_path
):
    """One extract sent the row twice: the second copy, held as a duplicate, is no newer
    version of the row. A problem row alone joins the copy taken in (and, as any later change
    of the row does, supersedes the duplicate's item)."""
    nhs = next(NHS)
    twice = [s1_code("10", "1"), s1_code("10", "1", NumericValue="130")]
    full = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], twice)
    assert run(engine, settings, codes, full).quarantined == 1
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [], [s1_problem("10")]))
    with engine.connect() as conn:
        kept = conn.execute(select(KeptRow.record).where(KeptRow.source_key == KEY)).scalar_one()
    assert kept["fields"]["NumericValue"] == "120"
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}


def test_an_emis_problem_row_alone_takes_in_no_copy_held_as_a_duplicate(
    engine, settings, codes, tmp_path
):
    """As for SystmOne: the entry sent twice, its first copy bad, so neither was taken in. Its
    problem row alone is held in the copy's item, and a replay of the item takes it in."""
    tables = emis.default_tables()
    rows = tables["CareRecord_Observation"]
    at = next(i for i, o in enumerate(rows) if o["ObservationGuid"] == emis.O_ASTHMA)
    rows.insert(at, {**rows[at], "EffectiveDate": "not a date"})
    emis.run(engine, settings, codes, emis.write_extract(tmp_path / "e", tables))
    held = emis.quarantine(engine)[emis.O_ASTHMA]
    assert held.status == "open" and held.reason.startswith("duplicate row identifier")
    tables = emis.default_tables()
    tables["CareRecord_Problem"][0]["SignificanceDescription"] = "Minor Problem"
    for again in ("d1", "d2"):
        emis.run(
            engine, settings, codes, emis_delta(tmp_path / again, tables, ("CareRecord_Problem",))
        )
        item = emis.quarantine(engine)[emis.O_ASTHMA]
        assert (item.id, item.status, item.reason) == (held.id, "open", held.reason)
        assert emis_stored(engine, emis.O_ASTHMA) == {}
    replay(engine, settings, codes, [item.id])
    assert emis_stored(engine, emis.O_ASTHMA) == {"Condition": "active"}


def test_a_problem_row_alone_joins_the_copy_taken_in_beside_an_older_item(
    engine, settings, codes, tmp_path
):
    """The row was held by an earlier run (a bad value); then one extract sent it twice, its
    first copy taken in and the second held as a duplicate in that item. The item is the
    later run's now, so a problem row alone joins the copy taken in, as above, not the one
    held beside it."""
    nhs = next(NHS)
    patients = [s1_patient("1", nhs)]
    bad = write_systmone(tmp_path / "a", patients, [s1_code("10", "1", NumericValue="abc")])
    assert run(engine, settings, codes, bad).quarantined == 1
    twice = [s1_code("10", "1"), s1_code("10", "1", NumericValue="130")]
    assert run(engine, settings, codes, write_systmone(tmp_path / "x", patients, twice)).quarantined
    assert (
        run(engine, settings, codes, delta(tmp_path, "d", nhs, [], [s1_problem("10")])).quarantined
        == 0
    )
    assert list_items(engine) == []
    assert statuses(engine, KEY) == {"Condition": "active", "Observation": "entered-in-error"}


def test_an_emis_entry_held_for_another_patients_problem_is_deleted(
    engine, settings, codes, tmp_path
):
    emis.run(engine, settings, codes, emis.write_extract(tmp_path / "e0", emis.default_tables()))
    tables = emis.default_tables()
    tables["CareRecord_Problem"][0]["PatientGuid"] = emis.P_CONF
    emis.run(engine, settings, codes, emis.write_extract(tmp_path / "e1", tables))
    assert emis.O_ASTHMA in emis.quarantine(engine)
    tables = emis.default_tables()
    [asthma] = [
        o for o in tables["CareRecord_Observation"] if o["ObservationGuid"] == emis.O_ASTHMA
    ]
    tables["CareRecord_Observation"] = [{**asthma, "Deleted": emis.TRUE}]
    emis.run(
        engine, settings, codes, emis_delta(tmp_path / "d", tables, ("CareRecord_Observation",))
    )
    assert "active" not in emis_stored(engine, emis.O_ASTHMA).values()


def bad_ctv3(folder: Path) -> None:
    """An SRCtv3ToSnomed row for the code row's CTV3 code, read with a problem (a surplus field)."""
    (folder / "SRCtv3ToSnomed.csv").write_text(
        "CTV3Code,SNOMEDCode\nXaJQs,75367002,surplus\n", "cp1252"
    )


def test_another_patients_problem_row_holds_beside_a_bad_ctv3_row(
    engine, settings, codes, tmp_path
):
    """Each joined row's problem is kept: a bad CTV3 row does not hide another patient's
    problem row, so the event re-sent alone with its CTV3 row mended still takes that hold
    with the other patient's problem fields."""
    nhs, nhs2 = next(NHS), next(NHS)
    patients = [s1_patient("1", nhs), s1_patient("2", nhs2)]
    run(engine, settings, codes, write_systmone(tmp_path / "x", patients, [s1_code("10", "1")]))
    full = write_systmone(
        tmp_path / "y", patients, [s1_code("10", "1", NumericValue="130")],
        [s1_problem("10", IDPatient="2")],
    )  # fmt: skip
    bad_ctv3(full)
    assert run(engine, settings, codes, full).quarantined == 1
    [item] = list_items(engine)
    assert "names patient" in item.reason and "SRCtv3ToSnomed.csv" in item.reason
    again = s1_code("10", "1", NumericValue="140")
    run(engine, settings, codes, delta(tmp_path, "d", nhs, [again], []))
    assert "Condition" not in statuses(engine, KEY)
    assert len(list_items(engine)) == 1


def test_a_deleted_row_is_not_held_by_a_bad_ctv3_row(engine, settings, codes, tmp_path):
    """A deletion joins nothing that could hold it: no lookup row, bad or not."""
    nhs = stored_event(engine, settings, codes, tmp_path)
    gone = delta(tmp_path, "d", nhs, [s1_code("10", "1", RemovedData="1")], [])
    bad_ctv3(gone)
    run(engine, settings, codes, gone)
    assert "active" not in statuses(engine, KEY).values()


def test_a_row_sent_twice_with_its_first_copy_held_is_held_whole(engine, settings, codes, tmp_path):
    """One extract sends the row twice, the first copy held (a bad value): the second is held
    as its duplicate, not taken in (it closed the item its own run had opened)."""
    nhs = next(NHS)
    twice = [
        s1_code("10", "1", NumericValue="abc", DateEvent="02 Feb 2020 09:00:00"),
        s1_code("10", "1", NumericValue="130"),
    ]
    full = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], twice)
    assert run(engine, settings, codes, full).quarantined == 2
    assert statuses(engine, KEY) == {}
    [item] = list_items(engine)
    assert "duplicate row identifier '10' (first at SRCode.csv line 2)" in item.reason


@pytest.mark.parametrize("stored", [False, True])
def test_a_problem_row_alone_takes_in_no_copy_held_as_a_duplicate(
    engine, settings, codes, tmp_path, stored
):
    """One extract sent the row twice, its first copy held (a bad value), so neither was taken
    in: which copy is the row is for a person to decide. A problem row alone joins the copy
    held, in its item (the row stored before stays as it was), and a replay of the item takes
    that copy in as the problem."""
    nhs = stored_event(engine, settings, codes, tmp_path / "s") if stored else next(NHS)
    twice = [
        s1_code("10", "1", NumericValue="abc", DateEvent="02 Feb 2020 09:00:00"),
        s1_code("10", "1", NumericValue="130"),
    ]
    full = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], twice)
    assert run(engine, settings, codes, full).quarantined == 2
    [held] = list_items(engine)
    before = statuses(engine, KEY)
    problem = delta(tmp_path, "d", nhs, [], [s1_problem("10")])
    for _ in range(2):
        assert run(engine, settings, codes, problem).quarantined == 1
        [item] = list_items(engine)
        assert (item.id, item.reason) == (held.id, held.reason)
        assert item.record["fields"]["_ProblemSeverity"] == "Major"
        assert statuses(engine, KEY) == before
    replay(engine, settings, codes, [item.id])
    assert list_items(engine) == []
    assert statuses(engine, KEY)["Condition"] == "active"
    with engine.connect() as conn:
        kept = conn.execute(select(KeptRow.record).where(KeptRow.source_key == KEY)).scalar_one()
    assert kept["fields"]["NumericValue"] == "130"


def test_an_emis_entry_deleted_beside_a_bad_clinical_code_row_is_deleted(
    engine, settings, codes, tmp_path
):
    """EMIS, as for the CTV3 row: a bad code lookup row does not hold a deletion."""
    emis.run(engine, settings, codes, emis.write_extract(tmp_path / "e0", emis.default_tables()))
    assert "active" in emis_stored(engine, emis.O_BP).values()
    tables = emis.default_tables()
    [bp] = [o for o in tables["CareRecord_Observation"] if o["ObservationGuid"] == emis.O_BP]
    tables["CareRecord_Observation"] = [{**bp, "Deleted": emis.TRUE}]
    folder = emis_delta(tmp_path / "d", tables, ("CareRecord_Observation",))
    path = folder / "Coding_ClinicalCode.csv"
    lines = path.read_bytes().decode("utf-8-sig").splitlines()
    lines = [f"{line},surplus" if line.startswith(emis.SYSTOLIC) else line for line in lines]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    emis.run(engine, settings, codes, folder)
    assert "active" not in emis_stored(engine, emis.O_BP).values()
