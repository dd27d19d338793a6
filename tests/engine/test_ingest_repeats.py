"""A run met again: a row's second copy, a re-run, a run that fails, a replay of what is closed.

Data safety: a rejected record stays in quarantine and can be replayed, an ingest is idempotent,
and a run that does not complete leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from adapters.base import MapContext, SourceRecord
from adapters.codes import CodeMaps
from adapters.systmone import SystmOneAdapter
from engine import ingest as pipeline
from engine import store
from engine.db import make_engine
from engine.lock import IngestBusy
from engine.models import QuarantineItem, Resource, ResourceVersion
from engine.settings import Settings
from tests.engine.test_cli import invoke
from tests.engine.test_ingest import run
from tests.factories import nhs_numbers, s1_code, s1_patient, write_systmone

NHS = nhs_numbers(999_410_000)


def _items(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                QuarantineItem.id,
                QuarantineItem.source_key,
                QuarantineItem.status,
                QuarantineItem.field,
                QuarantineItem.reason,
                QuarantineItem.line,
                QuarantineItem.record,
            ).order_by(QuarantineItem.id)
        )
        return [tuple(r) for r in rows]


def _store_state(engine: Engine) -> tuple[list[tuple[Any, ...]], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Resource.id, Resource.version_id, Resource.status).order_by(Resource.id)
        )
        versions = conn.execute(select(func.count()).select_from(ResourceVersion)).scalar_one()
        return [tuple(r) for r in rows], versions


def _first_copy_bad(tmp_path: Path) -> Path:
    """Row 10 twice: its first copy has a bad date, its second (another patient's) is sound."""
    patients = [s1_patient(str(i), next(NHS)) for i in range(1, 4)]
    codes = [
        s1_code("10", "1", DateEvent="31 Feb 2024"),
        s1_code("11", "1"),
        s1_code("12", "1"),
        s1_code("10", "2", NumericValue="160"),
    ]
    return write_systmone(tmp_path / "x", patients, codes)


@pytest.mark.parametrize("batch", [2, 50], ids=["later batch", "same batch"])
def test_a_copy_of_a_row_quarantined_earlier_in_the_run_is_a_duplicate(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path, batch: int
) -> None:
    settings = replace(settings, ingest_batch_size=batch)
    folder = _first_copy_bad(tmp_path)
    summary = run(engine, settings, codes, folder)
    key = "systmone|Y00001|SRCode|10"
    with engine.connect() as conn:
        stored = conn.execute(select(Resource.id).where(Resource.source_key == key)).all()
    assert stored == []  # neither copy is taken in: which one is the row cannot be told
    [item] = _items(engine)
    assert (item[1], item[2], item[5]) == (key, "open", 5)
    assert "duplicate row identifier '10'" in item[4]
    assert summary.quarantined == 2
    before = (_items(engine), _store_state(engine))
    again = run(engine, settings, codes, folder)
    run(engine, settings, codes, folder)
    assert (again.created, again.updated, again.quarantined) == (0, 0, 2)
    assert (_items(engine), _store_state(engine)) == before


def test_a_copy_of_a_row_taken_in_earlier_in_the_run_is_quarantined_naming_it(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """The second copy is held whatever else is wrong with it (here a bad date too)."""
    settings = replace(settings, ingest_batch_size=2)
    codes_rows = [
        s1_code("10", "1"),
        s1_code("11", "1"),
        s1_code("12", "1"),
        s1_code("10", "1", DateEvent="31 Feb 2024"),
    ]
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], codes_rows)
    run(engine, settings, codes, folder)
    [item] = _items(engine)
    assert item[2] == "open" and "duplicate row identifier '10'" in item[4]
    before = (_items(engine), _store_state(engine))
    run(engine, settings, codes, folder)
    assert (_items(engine), _store_state(engine)) == before


def test_a_row_deleted_by_its_key_alone_met_twice_is_a_duplicate(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """A row that maps to nothing has no resource id to clash; its key still does."""
    blank = {c: "" for c in s1_code("1", "1") if c not in ("RowIdentifier", "RemovedData")}
    removed = s1_code("10", "1", **blank, RemovedData="1")
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [removed, s1_code("11", "1"), removed]
    )
    summary = run(engine, settings, codes, folder)
    [item] = _items(engine)
    assert summary.quarantined == 1 and "duplicate row identifier '10'" in item[4]


def test_a_failed_run_leaves_the_quarantine_items_it_updated_as_they_were(
    engine: Engine,
    settings: Settings,
    codes: CodeMaps,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = replace(settings, ingest_batch_size=2)
    patients = [s1_patient(str(i), next(NHS)) for i in range(1, 4)]
    folder = write_systmone(
        tmp_path / "x", patients, [s1_code("10", "1", DateEvent="31 Feb 2024"), s1_code("11", "2")]
    )
    run(engine, settings, codes, folder)
    before = (_items(engine), _store_state(engine))
    # The next extract holds the row back for another bad value; the run dies before it commits.
    again = [
        s1_code("10", "1", DateEvent="32 Jan 2024", NumericValue="999"),
        s1_code("11", "2", NumericValue="130"),
        s1_code("12", "3"),
        s1_code("13", "3"),
    ]
    write_systmone(folder, patients, again)

    def dies(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the process dies before the run commits")

    monkeypatch.setattr(store, "apply_pointers", dies)
    with pytest.raises(RuntimeError, match="dies"):
        run(engine, settings, codes, folder)
    monkeypatch.undo()
    assert (_items(engine), _store_state(engine)) == before
    summary = run(engine, settings, codes, folder)  # and the next run takes it all in
    [item] = _items(engine)
    assert (summary.updated, summary.created, item[2]) == (1, 2, "open")
    assert "32 Jan 2024" in str(item[6])


def _records_with_a_nul_key(folder: Path) -> Iterator[SourceRecord]:
    """The extract's records, one of them given a row id with a NUL by a reader that lets it
    through (the CSV readers name such a row by its line)."""
    for record in SystmOneAdapter().read(str(folder)):
        if record.ref.key.endswith("SRCode|11"):
            record = replace(record, ref=replace(record.ref, row_id="1\x001"))
        yield record


def test_a_nul_in_a_row_id_holds_that_row_and_the_rest_loads(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    rows = [s1_code("10", "1"), s1_code("1\x001", "1"), s1_code("12", "1", CTV3Text="B\x00P")]
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], rows)
    summary = run(engine, settings, codes, folder)
    assert (summary.status, summary.created, summary.quarantined) == ("completed", 4, 1)
    [item] = _items(engine)
    assert (item[3], item[5]) == ("RowIdentifier", 3)
    assert "holds control character U+0000" in item[4]
    assert item[6]["fields"]["RowIdentifier"] == "1\x001"  # kept as read
    before = (_items(engine), _store_state(engine))
    run(engine, settings, codes, folder)
    assert (_items(engine), _store_state(engine)) == before


def test_a_nul_in_a_key_from_any_reader_is_held_and_its_item_stored(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    rows = [s1_code("10", "1"), s1_code("11", "1")]
    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(NHS))], rows)
    adapter = SystmOneAdapter()
    ctx = MapContext(codes=codes, canonical_base=settings.canonical_base)
    summary = pipeline.run_records(
        engine,
        settings,
        codes,
        "systmone",
        str(folder),
        _records_with_a_nul_key(folder),
        lambda rec: adapter.map(rec, ctx),
    )
    assert (summary.status, summary.created, summary.quarantined) == ("completed", 3, 1)
    [item] = _items(engine)
    assert item[1] == "systmone|Y00001|SRCode|1\ufffd1"
    assert "holds a NUL character" in item[4]


def test_a_nul_in_what_is_stored_beside_a_body_holds_that_record(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    """An organisation's ODS code is stored as text beside its body (its policy facts)."""
    orgs = [
        {"ID": "5001", "Name": "Riverside Surgery", "NationalId": "Y00001"},
        {"ID": "5002", "Name": "Hillside", "NationalId": "Y0\x00002"},
    ]
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", next(NHS))], [s1_code("10", "1")], organisations=orgs
    )
    summary = run(engine, settings, codes, folder)
    assert (summary.status, summary.created, summary.quarantined) == ("completed", 3, 1)
    [item] = _items(engine)
    assert (item[1], item[3]) == (
        "systmone|Y00001|SROrganisation|5002",
        "Organization.identifier[0].value",
    )


def test_a_quarantine_items_text_is_stored_whatever_it_quotes() -> None:
    assert (
        pipeline._text("bad date '01 Mar\x00 2024' \udcff") == "bad date '01 Mar\ufffd 2024' \ufffd"
    )
    assert pipeline._text(None) is None


def test_replaying_an_unknown_or_closed_item_says_so(db_url: str, tmp_path: Path) -> None:
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(NHS))],
        [s1_code("10", "1", DateEvent="31 Feb 2024")],
    )
    assert invoke(db_url, "ingest", "systmone", str(folder)).exit_code == 0
    unknown = invoke(db_url, "quarantine", "replay", "999")
    assert unknown.exit_code == 1 and "no quarantine item 999" in unknown.output
    engine = make_engine(db_url)
    with engine.begin() as conn:
        item = conn.execute(select(QuarantineItem.id)).scalar_one()
        conn.execute(update(QuarantineItem).values(status="replayed"))
    engine.dispose()
    closed = invoke(db_url, "quarantine", "replay", str(item))
    assert closed.exit_code == 1 and f"quarantine item {item} is replayed" in closed.output


def test_a_replay_while_an_ingest_runs_says_so(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(*_args: object, **_kwargs: object) -> None:
        raise IngestBusy("another ingest is running against this store")

    monkeypatch.setattr("engine.quarantine.run_records", busy)
    result = invoke(db_url, "quarantine", "replay")
    assert result.exit_code == 1
    assert "another ingest is running" in result.output and "Traceback" not in result.output
