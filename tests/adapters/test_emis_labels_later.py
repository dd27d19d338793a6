"""Labels a problem or a course gains in a later EMIS extract reach the stored records naming
it (``engine.relabel``), though that extract does not bring them again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from adapters.codes import CodeMaps
from engine import ingest as ingest_module
from engine.models import Pointer, ResourceVersion, StagedPointer
from engine.quarantine import replay
from engine.settings import Settings
from tests.adapters.test_emis import (
    ASTHMA,
    CONSULT,
    DRUG,
    FALSE,
    ISSUE,
    O_ASTHMA,
    O_BP,
    P_OK,
    SALBUTAMOL,
    SMOKER,
    TRUE,
    default_tables,
    guid,
    observation,
    quarantine,
    run,
    stored,
    write_extract,
)

UNDER = guid(44)
SYPHILIS = {"CodeId": "1200005", "Term": "Syphilis", "ReadTermId": "A94..00",
            "SnomedCTConceptId": "76272004"}  # fmt: skip
NAMING = {
    "course": f"MedicationStatement:{DRUG}",
    "issue": f"MedicationRequest:{ISSUE}",
    "result under it": f"Observation:{UNDER}",
}


def _first() -> dict[str, list[dict[str, str]]]:
    """A course for the asthma problem, its issue and a result recorded under the problem,
    none of them confidential."""
    tables = default_tables()
    tables["Coding_ClinicalCode"].append(SYPHILIS)
    course = tables["Prescribing_DrugRecord"][0]
    tables["Prescribing_DrugRecord"] = [
        course | {"IsConfidential": FALSE, "ProblemObservationGuid": O_ASTHMA}
    ]
    tables["CareRecord_Observation"].append(observation(UNDER, P_OK, SMOKER, ProblemGuid=O_ASTHMA))
    return tables


def _delta(first: dict[str, list[dict[str, str]]], **rows: list[dict[str, str]]) -> dict:
    """A delta extract: the reference tables and ``rows``, nothing else."""
    keep = ("Admin_Organisation", "Admin_Patient", "Coding_ClinicalCode", "Coding_DrugCode")
    return {table: first[table] for table in keep} | rows


def _problem(**over: str) -> dict[str, list[dict[str, str]]]:
    return {
        "CareRecord_Observation": [
            observation(O_ASTHMA, P_OK, ASTHMA, EffectiveDate="2010-06-15", **over)
        ],
        "CareRecord_Problem": [
            {"ObservationGuid": O_ASTHMA, "EndDate": "",
             "ProblemStatusDescription": "Active Problem",
             "SignificanceDescription": "Significant Problem"}
        ],
    }  # fmt: skip


def _labels(engine: Engine) -> dict[str, set[str]]:
    rows = stored(engine)
    return {
        name: set(rows[key].labels.split())
        for name, key in {
            **NAMING,
            "problem": f"Condition:{O_ASTHMA}",
            "other": f"Observation:{O_BP}",
        }.items()
    }


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ResourceVersion)).scalar_one()


@pytest.mark.parametrize(
    ("change", "label"),
    [({"IsConfidential": TRUE}, "source-confidential"), ({"CodeId": "1200005"}, "sensitive-sti")],
    ids=["made confidential", "recoded as sensitive"],
)
def test_a_problem_labelled_later_passes_it_to_what_names_it(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, change, label
) -> None:
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    assert not any(label in found for found in _labels(engine).values())

    delta = write_extract(tmp_path / "delta", _delta(first, **_problem(**change)))
    summary = run(engine, settings, codes, delta)
    found = _labels(engine)
    assert {name for name, labels in found.items() if label in labels} == {*NAMING, "problem"}
    assert found["other"] == set()
    assert summary.relabelled == len(NAMING)
    rows = stored(engine)
    assert {rows[key].version_id for key in NAMING.values()} == {2}
    assert all(label in rows[key].policy_labels.split() for key in NAMING.values())  # the read's

    versions = _versions(engine)
    again = run(engine, settings, codes, delta)
    assert again.relabelled == 0
    assert _versions(engine) == versions


def test_a_course_made_confidential_later_passes_it_to_its_issues(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    course = first["Prescribing_DrugRecord"][0] | {"IsConfidential": TRUE}
    delta = _delta(first, Prescribing_DrugRecord=[course])
    run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    found = _labels(engine)
    confidential = {name for name, labels in found.items() if "source-confidential" in labels}
    assert confidential == {"course", "issue"}


def test_a_consultation_made_confidential_later_passes_it_to_its_entries(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A delta bringing only the consultation, now confidential, must not leave what was
    written in it shared."""
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    visit = first["CareRecord_Consultation"][0] | {"IsConfidential": TRUE}
    delta = _delta(first, CareRecord_Consultation=[visit])
    run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    found = _labels(engine)
    confidential = {name for name, labels in found.items() if "source-confidential" in labels}
    # the problem was recorded in the consultation, and its course and issue take its labels
    assert confidential == {*NAMING, "problem", "other"}
    assert "source-confidential" in stored(engine)[f"Encounter:{CONSULT}"].labels.split()


def test_what_a_record_names_follows_its_latest_row(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A course moved to another problem no longer takes the first problem's labels."""
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    other = guid(38)
    second = _first()
    second["CareRecord_Observation"].append(observation(other, P_OK, SMOKER))
    second["Prescribing_DrugRecord"][0]["ProblemObservationGuid"] = other
    run(engine, settings, codes, write_extract(tmp_path / "second", second))
    with engine.connect() as conn:
        named = {
            to.split("|")[3]
            for (to,) in conn.execute(
                select(Pointer.to_key).where(Pointer.from_key.like(f"%|{DRUG}"))
            )
        }
    assert named == {other}

    delta = _delta(first, **_problem(IsConfidential=TRUE))
    run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    confidential = {
        name for name, labels in _labels(engine).items() if "source-confidential" in labels
    }
    assert confidential == {"result under it", "problem"}


def test_a_run_that_fails_changes_no_pointer(
    engine: Engine,
    settings: Settings,
    codes: CodeMaps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    with engine.connect() as conn:
        before = {tuple(r) for r in conn.execute(select(Pointer.from_key, Pointer.to_key))}
    assert before

    def fail(*_: object) -> int:
        raise RuntimeError("the disk filled")

    monkeypatch.setattr(ingest_module, "pass_back", fail)
    second = _first()
    second["Prescribing_DrugRecord"][0]["ProblemObservationGuid"] = ""
    with pytest.raises(RuntimeError):
        run(engine, settings, codes, write_extract(tmp_path / "second", second))
    with engine.connect() as conn:
        after = {tuple(r) for r in conn.execute(select(Pointer.from_key, Pointer.to_key))}
        staged = conn.execute(select(func.count()).select_from(StagedPointer)).scalar_one()
    assert after == before
    assert staged == 0


def _issue_of_the_course() -> dict[str, str]:
    """The course's issue as a delta gives it: with its own patient and drug."""
    return {"IssueRecordGuid": ISSUE, "DrugRecordGuid": DRUG, "PatientGuid": P_OK,
            "CodeId": SALBUTAMOL, "EffectiveDate": "2024-03-02", "Quantity": "2"}  # fmt: skip


def test_an_issue_read_beside_its_problem_takes_what_its_stored_course_gains(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """The issue took its course's stored labels when read; the course is labelled at the end
    of the same run (from the problem): the issue must be too, and a re-run changes nothing."""
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    delta = _delta(
        first, **_problem(IsConfidential=TRUE), Prescribing_IssueRecord=[_issue_of_the_course()]
    )
    folder = write_extract(tmp_path / "delta", delta)
    run(engine, settings, codes, folder)
    found = _labels(engine)
    confidential = {name for name, labels in found.items() if "source-confidential" in labels}
    assert confidential == {*NAMING, "problem"}

    versions = _versions(engine)
    again = run(engine, settings, codes, folder)
    assert (again.created, again.updated, again.relabelled) == (0, 0, 0)
    assert _versions(engine) == versions


def test_a_replayed_record_takes_what_it_names_gained_while_it_was_quarantined(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    tables = _first()
    tables["Prescribing_DrugRecord"][0]["Dosage"] = "BAD"
    folder = write_extract(tmp_path / "first", tables)
    path = folder / "Prescribing_DrugRecord.csv"
    path.write_bytes(path.read_bytes().replace(b"BAD", b"One \xff daily"))
    run(engine, settings, codes, folder)
    item = quarantine(engine)[DRUG]
    run(
        engine,
        settings,
        codes,
        write_extract(tmp_path / "delta", _delta(tables, **_problem(IsConfidential=TRUE))),
    )

    fixed = replay(engine, settings, codes, ids=[item.id], corrections={"Dosage": "One daily"})
    assert fixed.created == 1
    assert "source-confidential" in _labels(engine)["course"]


def test_a_full_extract_after_a_relabel_rewrites_nothing(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """Labels are kept in one order, so a record labelled later and the same record read with
    the label are the same body."""
    change = {"CodeId": "1200005", "IsConfidential": TRUE}
    first = _first()
    run(engine, settings, codes, write_extract(tmp_path / "first", first))
    delta = _delta(first, **_problem(**change))
    run(engine, settings, codes, write_extract(tmp_path / "delta", delta))
    rows = stored(engine)
    before = {key: rows[key].version_id for key in NAMING.values()}

    full = _first()
    full["CareRecord_Observation"][1] |= change
    assert full["CareRecord_Observation"][1]["ObservationGuid"] == O_ASTHMA
    summary = run(engine, settings, codes, write_extract(tmp_path / "full", full))
    rows = stored(engine)
    assert {key: rows[key].version_id for key in NAMING.values()} == before, summary.as_dict()
