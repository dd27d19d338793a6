"""The person index in the store: relink, manual pins, history and the review queue."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, event, insert, select, text, update
from typer.testing import CliRunner

from adapters.codes import CodeMaps
from audit import verify
from engine import canonical
from engine.gate import _facts_query
from engine.identity import index, match_all, members_of
from engine.identity.cli import identity_app
from engine.identity.features import demographics
from engine.identity.index import (
    HistoryEntry,
    IdentityError,
    Span,
    history,
    link,
    queue,
    relink,
    relink_all,
    relink_run,
    spans,
    unlink,
)
from engine.identity.tables import IdentityLock, PersonLink, ReviewItem
from engine.identity.workset import PEOPLE
from engine.ingest import ingest
from engine.models import IngestRun, Resource
from engine.registry import adapter_for
from engine.settings import Settings
from engine.transfer import store as transfer_store
from engine.transfer.message import Header
from engine.transfer.store import stays_of
from engine.transfer.tables import STATUS, TRANSFERS
from tests.factories import nhs_numbers, s1_patient, write_systmone
from tests.identity.people import NHS_A, NHS_B, NHS_C, NHS_D, RULES, patient


def person_of(engine: Engine, patient_id: str) -> str | None:
    with engine.connect() as conn:
        return index.person_of(conn, patient_id)


def patients_of(engine: Engine, person_id: str) -> list[str]:
    with engine.connect() as conn:
        return index.patients_of(conn, person_id)


R = cast(Table, Resource.__table__)
LINKS = cast(Table, PersonLink.__table__)
REVIEW = cast(Table, ReviewItem.__table__)
DOCTOR = "dr.archer"


def store(engine: Engine, *patients: dict[str, Any], status: str = "active") -> None:
    """Write Patients as one run (replacing any stored version), as an ingest would."""
    now = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(cast(Table, IngestRun.__table__)).values(
                id=run_id,
                kind="test",
                location="test",
                started_at=now,
                finished_at=now,
                status="completed",
                summary={},
            )
        )
        for p in patients:
            conn.execute(R.delete().where(R.c.id == p["id"]))
            conn.execute(
                insert(R).values(
                    id=p["id"],
                    resource_type="Patient",
                    version_id=1,
                    last_updated=now,
                    content_hash=canonical.content_hash(p),
                    body=canonical.dumps(p),
                    status=status,
                    source_key=f"test|X|Patient|{p['id']}",
                    source_system="test",
                    source_org="X",
                    patient_id=p["id"],
                    labels="",
                    run_id=run_id,
                )
            )


def links(engine: Engine) -> dict[str, tuple[str, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(select(LINKS.c.patient_id, LINKS.c.person_id, LINKS.c.linked_at))
        return {r.patient_id: (r.person_id, r.linked_at) for r in rows}


@pytest.fixture
def archer(engine: Engine) -> Engine:
    """One person held by a GP (verified NHS number) and the council (no number), and another."""
    store(
        engine,
        patient(pid="gp", nhs=NHS_A),
        patient(pid="council", council_style=True),
        patient(pid="other", nhs=NHS_B, family="Grundy", born="1970-05-05", postcode="BO3 3CC"),
    )
    relink(engine, ["gp", "council", "other"])
    return engine


def test_relink_links_one_person_across_sources(archer: Engine) -> None:
    person = person_of(archer, "gp")
    assert person is not None and person_of(archer, "council") == person
    assert person_of(archer, "other") not in (None, person)
    assert patients_of(archer, person) == ["council", "gp"]


def test_relink_summary_counts_what_it_did(engine: Engine) -> None:
    store(engine, patient(pid="gp", nhs=NHS_A), patient(pid="council", council_style=True))
    summary = relink(engine, ["gp", "council"])
    assert summary.patients == 2 and summary.linked == 1 and summary.people_created == 2
    again = relink(engine, ["gp", "council"])
    assert (again.linked, again.unlinked, again.people_created) == (0, 0, 0)


def test_manual_unlink_is_never_undone_by_relink(archer: Engine) -> None:
    person_a, person_b = unlink(archer, "gp", "council", who=DOCTOR, reason="different people")
    assert person_a != person_b
    store(archer, patient(pid="council", council_style=True, given=("Philip", "Arthur")))
    relink(archer, ["gp", "council", "other"])
    assert person_of(archer, "gp") != person_of(archer, "council")
    assert queue(archer) == []


def test_manual_link_pins_together_what_rules_keep_apart(archer: Engine) -> None:
    person = link(archer, "gp", "other", who=DOCTOR, reason="same person, number corrected")
    assert person_of(archer, "other") == person == person_of(archer, "gp")
    store(archer, patient(pid="other", nhs=NHS_B, family="Grundy", born="1970-05-06"))
    relink(archer, ["gp", "council", "other"])
    assert person_of(archer, "other") == person_of(archer, "gp")


def test_manual_link_does_not_drag_in_records_the_rules_keep_apart(archer: Engine) -> None:
    """The council record links to the GP record, but the rules keep it apart from "other"."""
    link(archer, "gp", "other", who=DOCTOR, reason="same person, number corrected")
    assert person_of(archer, "council") != person_of(archer, "gp")
    [item] = queue(archer)
    assert (item.patient_a, item.patient_b) == ("council", "gp")
    assert item.reasons[0].startswith("scored a link, but the merge would join")


def test_link_history_records_who_when_and_why(archer: Engine) -> None:
    before = datetime.now(UTC)
    unlink(archer, "gp", "council", who=DOCTOR, reason="twins, checked with the practice")
    events = history(archer, "council")
    assert [e.action for e in events] == ["new", "link", "unlink"]
    new, auto, manual = events
    assert (new.who, new.manual, new.patient_id) == ("scr-identity", False, "council")
    assert {auto.patient_id, auto.other_patient_id} == {"gp", "council"}
    assert (auto.who, auto.manual) == ("scr-identity", False)
    assert auto.score is not None and "score" in auto.reason
    assert (manual.who, manual.manual, manual.reason) == (
        DOCTOR,
        True,
        "twins, checked with the practice",
    )
    assert manual.at.replace(tzinfo=manual.at.tzinfo or UTC) >= before
    assert manual.from_person_id == auto.person_id != manual.person_id


def test_relink_touches_only_the_given_patients_blocks(archer: Engine) -> None:
    store(
        archer,
        patient(pid="grundy-2", family="Grundy", born="1982-07-07", postcode="BO4 4DD"),
        patient(pid="grundy-3", family="Grundy", born="1982-07-07", postcode="BO4 4DD"),
    )
    before = links(archer)
    relink(archer, ["grundy-2"])
    after = links(archer)
    assert {p: after[p] for p in before} == before
    assert set(after) == set(before) | {"grundy-2"}  # grundy-3 is stored but not yet relinked
    relink(archer, ["grundy-3"])
    assert person_of(archer, "grundy-3") == person_of(archer, "grundy-2")
    assert {p: links(archer)[p] for p in before} == before


def test_changed_record_is_moved_out_when_it_no_longer_matches(archer: Engine) -> None:
    store(archer, patient(pid="council", given=("Tom",), born="1990-01-01", council_style=True))
    summary = relink(archer, ["council"])
    assert summary.unlinked == 1
    assert person_of(archer, "council") != person_of(archer, "gp")
    assert history(archer, "council")[-1].action == "unlink"


def test_deleted_patient_leaves_its_person(archer: Engine) -> None:
    person = person_of(archer, "gp")
    store(archer, patient(pid="council", council_style=True), status="entered-in-error")
    relink(archer, ["council"])
    assert person is not None and patients_of(archer, person) == ["gp"]


def test_review_queue_lists_uncertain_pairs_and_a_manual_link_resolves_them(engine: Engine) -> None:
    store(
        engine,
        patient(pid="sean", nhs=NHS_C, given=("Sean",)),
        patient(pid="shaun", given=("Shaun",)),
    )
    summary = relink(engine, ["sean", "shaun"])
    assert summary.review_opened == 1
    [item] = queue(engine)
    assert (item.patient_a, item.patient_b, item.rule) == ("sean", "shaun", "household")
    assert item.person_a != item.person_b and item.reasons[0].startswith("same family name")
    relink(engine, ["sean", "shaun"])
    assert len(queue(engine)) == 1  # relinking again does not duplicate the item
    link(engine, "sean", "shaun", who=DOCTOR, reason="one man, name respelt by the council")
    assert queue(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(REVIEW.c.status, REVIEW.c.resolved_by)).one() == (
            "linked",
            DOCTOR,
        )


def test_review_item_superseded_when_new_data_settles_it(engine: Engine) -> None:
    store(
        engine,
        patient(pid="sean", nhs=NHS_C, given=("Sean",)),
        patient(pid="shaun", given=("Shaun",)),
    )
    relink(engine, ["sean", "shaun"])
    store(engine, patient(pid="shaun", nhs=NHS_C, status="02", given=("Shaun",)))
    summary = relink(engine, ["shaun"])
    assert summary.review_closed == 1 and queue(engine) == []
    assert person_of(engine, "shaun") == person_of(engine, "sean")


def test_manual_link_refused_when_it_would_join_records_kept_apart(archer: Engine) -> None:
    unlink(archer, "gp", "council", who=DOCTOR, reason="different people")
    store(archer, patient(pid="gp-2", nhs=NHS_A))
    relink(archer, ["gp-2"])
    assert person_of(archer, "gp-2") == person_of(archer, "gp")
    with pytest.raises(IdentityError, match="kept apart by a person"):
        link(archer, "council", "gp-2", who=DOCTOR, reason="mistake")
    assert person_of(archer, "council") != person_of(archer, "gp")


def test_manual_decisions_need_who_why_and_known_patients(archer: Engine) -> None:
    with pytest.raises(IdentityError, match="who made it and why"):
        link(archer, "gp", "other", who=DOCTOR, reason=" ")
    with pytest.raises(IdentityError, match="not a stored, active Patient"):
        link(archer, "gp", "nobody", who=DOCTOR, reason="x")
    with pytest.raises(IdentityError, match="itself"):
        unlink(archer, "gp", "gp", who=DOCTOR, reason="x")


def test_a_merged_away_person_id_follows_to_the_survivor(engine: Engine) -> None:
    store(engine, patient(pid="a", nhs=NHS_D), patient(pid="b", nhs=NHS_B, born="1999-09-09"))
    relink(engine, ["a", "b"])
    gone = person_of(engine, "b")
    assert gone is not None and gone != person_of(engine, "a")
    link(engine, "a", "b", who=DOCTOR, reason="one person")
    assert patients_of(engine, gone) == ["a", "b"]


def holders(engine: Engine, nhs: str) -> tuple[tuple[str, ...], list[str]]:
    found = index.HOLDERS
    with engine.connect() as conn:
        rows = conn.execute(
            select(found).order_by(found.c.person_id, found.c.patient_id), {"nhs_number": nhs}
        ).all()
        return index.holders(conn, rows)


def test_a_number_its_source_doubts_finds_no_one(engine: Engine) -> None:
    """Jill's council record holds Philip's number with trace status 05 (number and details
    conflict): matching ignores it, and so does a search by it. It made Philip's number name
    two people (so his record page showed neither), and, with Philip's records not yet
    stored, a search for his number answered with Jill."""
    jill = patient(pid="jill", nhs=NHS_A, status="05", family="Grundy", given=("Jill",),
                   sex="female", born="1970-05-05", line="1 Mill Rd", postcode="BO3 3CC",
                   council_style=True)  # fmt: skip
    store(engine, jill)
    relink(engine, ["jill"])
    with engine.connect() as conn:
        assert index.people_with_nhs_number(conn, NHS_A) == []
    store(engine, patient(pid="philip", nhs=NHS_A))
    relink(engine, ["philip"])
    assert person_of(engine, "philip") != person_of(engine, "jill")
    with engine.connect() as conn:
        assert index.people_with_nhs_number(conn, NHS_A) == [person_of(engine, "philip")]


def test_a_stay_recorded_while_twins_were_one_person_follows_its_nhs_number_at_the_split(
    engine: Engine,
) -> None:
    """Mary Ann (council, no number) and her twin Mary Jane (GP, NHS_A) linked by hand in
    error; a red-bag transfer for NHS_A is recorded under their one person, then they are
    separated. The stay went with whichever twin kept the id: the hospital kept a relationship
    with Mary Ann and lost Mary Jane's."""
    store(engine, patient(pid="ann", given=("Mary", "Ann"), sex="female", born="2010-08-08",
                          council_style=True))  # fmt: skip
    store(engine, patient(pid="jane", nhs=NHS_A, given=("Mary", "Jane"), sex="female",
                          born="2010-08-08"))  # fmt: skip
    relink(engine, ["ann", "jane"])
    assert person_of(engine, "ann") != person_of(engine, "jane")
    link(engine, "ann", "jane", who=DOCTOR, reason="the same child, I thought")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        (holder,) = index.people_with_nhs_number(conn, NHS_A)
        conn.execute(insert(TRANSFERS).values(
            id="t1", care_home="HOME1", hospital="HOSP1", person_id=holder, nhs_number=NHS_A,
            status="received", updated_at=now))  # fmt: skip
        conn.execute(insert(STATUS).values(transfer_id="t1", status="received", org="HOSP1",
                                           user_id="scr", at=now))  # fmt: skip
    unlink(engine, "jane", "ann", who=DOCTOR, reason="twins")
    with engine.connect() as conn:
        jane = [s.id for s in stays_of(conn, str(person_of(engine, "jane")))]
        ann = [s.id for s in stays_of(conn, str(person_of(engine, "ann")))]
    assert (jane, ann) == (["t1"], [])


@pytest.mark.parametrize("analysed", [False, True], ids=["no-statistics", "analysed"])
def test_a_persons_facts_are_found_by_index_among_thousands_without_statistics(
    engine: Engine, analysed: bool
) -> None:
    """The facts statement runs on every read of a record and every red-bag message. Asked
    by ``= ANY`` of the person's Patients, or of the people merged into them, PostgreSQL's
    plan rested on the tables' statistics: with none (a store just loaded, or one autovacuum
    has not reached) it read every stay and every person in the store, and ANDed in a bitmap
    of every Patient and Encounter, so each stay or record taken in made every read dearer.
    Each id is now looked up by index, whatever the statistics say: none, or what ``ANALYZE``
    gathers."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite looks IN (...) up by index")
    now = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(cast(Table, IngestRun.__table__)).values(
            id=run_id, kind="test", location="test", started_at=now, status="completed",
            summary={}))  # fmt: skip
        conn.execute(insert(R), [
            {"id": f"r{n}", "resource_type": ("Patient", "Encounter", "Observation")[n % 3],
             "version_id": 1, "last_updated": now, "content_hash": "h", "body": b"{}",
             "status": "active", "source_key": f"k{n}", "source_system": "test",
             "source_org": "X", "patient_id": f"pat{n % 1000}", "labels": "", "run_id": run_id}
            for n in range(6000)
        ])  # fmt: skip
        conn.execute(insert(PEOPLE), [
            {"id": f"p{n}", "created_at": now, "merged_into": "p7" if n == 907 else None}
            for n in range(3000)
        ])  # fmt: skip
        conn.execute(insert(TRANSFERS), [
            {"id": f"t{n}", "care_home": "HOME1", "hospital": "HOSP1", "person_id": f"p{n % 1000}",
             "nhs_number": NHS_A, "status": "received", "updated_at": now}
            for n in range(3000)
        ])  # fmt: skip
        if analysed:
            conn.execute(text("ANALYZE resource, transfer, transfer_status, person"))
        statistics = conn.execute(text(
            "SELECT count(*) FROM pg_stats WHERE tablename IN ('resource', 'transfer', 'person')"
        )).scalar_one()  # fmt: skip
        raw: Any = conn.connection.driver_connection
        sql = _facts_query("postgresql").compile(dialect=engine.dialect)
        asked = {"person_id": "p7", "patients": ["pat7", "pat907"], "version": "v"}
        plan = "\n".join(r[0] for r in raw.execute(f"EXPLAIN {sql}", sql.params | asked))
        found = conn.execute(_facts_query("postgresql"), asked).all()
    assert (statistics > 0) == analysed
    for index_name in (
        "ix_resource_patient_type",
        "ix_transfer_person_id",
        "ix_person_merged_into",
    ):
        assert index_name in plan, plan
    # Analysed, the test's empty transfer_status is rightly read whole; without statistics
    # nothing is.
    for table in ("resource", "transfer", "person", *(() if analysed else ("transfer_status",))):
        assert f"Seq Scan on {table} " not in plan, plan
    assert "BitmapAnd" not in plan, plan
    if not analysed:  # analysed, an Organization may be found by its type, where there are few
        assert "ix_resource_type_updated" not in plan, plan
    kinds = Counter(row.kind for row in found)
    # pat7's and pat907's Patients and Encounters (two of each), not their Observations; the
    # stays of p7 and of p907, merged into p7
    assert kinds == {"row": 8, "stay": 6}, kinds


#: A worker's first requests, at once: each thread builds the facts statement (its parts are
#: built on first use and kept) and compiles it.
_FIRST_REQUESTS = """
import sys
import threading
from sqlalchemy.dialects import postgresql, sqlite
from engine import gate
sys.setswitchinterval(1e-6)  # threads taking turns as often as they can
start = threading.Barrier(8)
failed = []
def build():
    start.wait()
    try:
        for dialect in (postgresql.dialect(), sqlite.dialect()):
            gate._facts_query(dialect.name).compile(dialect=dialect)
    except Exception as exc:
        failed.append(repr(exc))
threads = [threading.Thread(target=build) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(failed)
"""


def test_a_workers_first_requests_at_once_build_one_facts_statement() -> None:
    """The facts statement reads the people merged into the person in several parts, which must
    share one query of them. Built on first use, two threads of a worker starting at once each
    built their own, and the statement holding both did not compile: every message that worker
    took was answered 500."""
    for _ in range(3):  # the race, when it could happen, did in most fresh processes
        ran = subprocess.run(
            [sys.executable, "-c", _FIRST_REQUESTS], capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == "[]", ran.stdout


def test_a_persons_stays_and_their_steps_are_found_by_index_without_statistics(
    engine: Engine,
) -> None:
    """The record page lists the person's stays with every step: joined with no statistics,
    PostgreSQL read every step in the store to find theirs."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite looks IN (...) and the join up by index")
    with engine.begin() as conn:  # as many as PostgreSQL needs to think hashing them cheaper
        conn.execute(text(
            "INSERT INTO person (id, created_at) SELECT 'p' || n, now() "
            "FROM generate_series(0, 19999) n"
        ))  # fmt: skip
        conn.execute(text(
            "INSERT INTO transfer (id, care_home, hospital, person_id, nhs_number, status, "
            "updated_at) SELECT 't' || n, 'HOME1', 'HOSP1', 'p' || (n % 10000), :nhs, "
            "'received', now() FROM generate_series(0, 19999) n"
        ), {"nhs": NHS_A})  # fmt: skip
        conn.execute(text(
            "INSERT INTO transfer_status (transfer_id, status, org, user_id, at) "
            "SELECT 't' || n, s, 'HOME1', 'u', now() "
            "FROM generate_series(0, 19999) n, unnest(ARRAY['sent', 'received']) s"
        ))  # fmt: skip
    statements: list[tuple[str, Any]] = []

    def kept(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", kept)
    try:
        with engine.connect() as conn:
            found = stays_of(conn, "p7")
            sql, params = statements[-1]
            raw: Any = conn.connection.driver_connection
            plan = "\n".join(r[0] for r in raw.execute(f"EXPLAIN {sql}", params))
    finally:
        event.remove(engine, "before_cursor_execute", kept)
    assert "ix_transfer_status_transfer_id" in plan and "ix_transfer_person_id" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert sorted(s.id for s in found) == ["t10007", "t7"]
    assert all([step for step, _, _ in s.steps] == ["sent", "received"] for s in found)


def test_holders_say_what_people_with_nhs_number_and_patients_of_say(archer: Engine) -> None:
    person = person_of(archer, "gp")
    store(archer, patient(pid="gp-2", nhs=NHS_A))
    relink(archer, ["gp-2"])
    assert holders(archer, NHS_A) == ((person,), ["council", "gp", "gp-2"])
    assert holders(archer, NHS_C) == ((), [])
    other = person_of(archer, "other")
    with archer.begin() as conn:  # a holder merged away follows to the survivor
        conn.execute(update(PEOPLE).where(PEOPLE.c.id == person).values(merged_into=other))
    assert holders(archer, NHS_A) == ((person,), ["other"])
    with archer.begin() as conn:
        conn.execute(update(PEOPLE).where(PEOPLE.c.id == person).values(merged_into=None))
    unlink(archer, "gp", "gp-2", who=DOCTOR, reason="twins")
    with archer.connect() as conn:
        both = tuple(index.people_with_nhs_number(conn, NHS_A))
    assert len(both) == 2 and holders(archer, NHS_A) == (both, [])


def test_a_messages_parties_hold_what_the_patients_say_merged_or_not(archer: Engine) -> None:
    """The demographics a transfer's Patient is checked against come from the holder's
    Patients in the parties' one statement, or, for a holder merged away, from the
    survivor's, read apart."""
    header = Header(str(uuid.uuid4()), "care-home-transfer", "HOME1", "HOSP1", "urn:uuid:x")
    store(archer, patient(pid="gp-2", nhs=NHS_A, born="1951-03", family="Archer-Smith"))
    relink(archer, ["gp-2"])
    person = person_of(archer, "gp")
    with archer.connect() as conn:
        found = transfer_store.parties(conn, header, NHS_A)
    assert (found.people, found.patients) == ((person,), ("gp", "gp-2"))
    assert (found.born, found.families) == (
        {"1951-03-04", "1951-03"}, {"Archer", "Archer-Smith"}
    )  # fmt: skip
    other = person_of(archer, "other")
    with archer.begin() as conn:
        conn.execute(update(PEOPLE).where(PEOPLE.c.id == person).values(merged_into=other))
    with archer.connect() as conn:
        merged = transfer_store.parties(conn, header, NHS_A)
    assert (merged.people, merged.patients) == ((person,), ("other",))
    assert (merged.born, merged.families) == ({"1970-05-05"}, {"Grundy"})
    with archer.connect() as conn:
        assert transfer_store.parties(conn, header, NHS_C).born == frozenset()


def test_every_ingest_links_its_patients_and_relinking_changes_nothing(
    engine: Engine, settings: Settings, codes: CodeMaps, tmp_path: Path
) -> None:
    numbers = nhs_numbers(999_300_000)
    folder = write_systmone(
        tmp_path / "s1",
        [s1_patient("1", next(numbers)), s1_patient("2", next(numbers), FirstName="Ruth")],
    )
    run = ingest(engine, settings, codes, adapter_for("systmone"), str(folder))
    assert run.linking["patients"] == 2 and run.linking["people_created"] == 2
    again = relink_run(engine, run.run_id)
    assert again.patients == 2 and (again.people_created, again.linked, again.unlinked) == (0, 0, 0)
    with engine.connect() as conn:
        stored = conn.execute(select(R.c.id).where(R.c.resource_type == "Patient")).scalars()
        assert {person_of(engine, pid) for pid in stored} - {None} and len(links(engine)) == 2


def test_cli_queue_link_unlink_and_history(archer: Engine, db_url: str) -> None:
    runner = CliRunner()
    env = {"SCR_DATABASE_URL": db_url, "COLUMNS": "200"}

    def run(*args: str) -> Any:
        result = runner.invoke(identity_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    assert run("queue", "--json").stdout.strip() == "[]"
    unlinked = run("unlink", "gp", "council", "--reason", "twins", "--who", DOCTOR, "--json")
    assert '"people"' in unlinked.stdout
    run("link", "gp", "council", "--reason", "one person after all", "--json")
    assert person_of(archer, "gp") == person_of(archer, "council")
    shown = run("history", "council", "--json").stdout
    assert '"twins"' in shown and '"one person after all"' in shown
    refused = runner.invoke(identity_app, ["link", "gp", "nobody", "--reason", "x"], env=env)
    assert refused.exit_code == 1
    assert '"patients": 3' in run("relink", "--json").stdout


def test_each_identity_transaction_takes_its_turn_on_the_lock_row(engine: Engine) -> None:
    lock = cast(Table, IdentityLock.__table__)
    store(engine, patient(pid="x"))
    relink(engine, ["x"])
    with engine.connect() as conn:
        assert conn.execute(select(lock.c.writes)).scalar_one() == 1


def test_a_relink_of_many_chunks_keeps_planner_statistics_fresh(engine: Engine) -> None:
    """Over 500 Patients: several chunks, with the statistics refreshed between them."""
    many = [
        patient(pid=f"p{i:04d}", born=date(1900 + i // 12, 1 + i % 12, 20).isoformat())
        for i in range(1001)
    ]
    store(engine, *many)
    summary = relink(engine, [p["id"] for p in many])
    assert (summary.patients, summary.people_created, summary.linked) == (1001, 1001, 0)


def test_every_manual_decision_and_refusal_is_in_the_audit_trail(archer: Engine) -> None:
    unlink(archer, "gp", "council", who=DOCTOR, reason="different people")
    with pytest.raises(IdentityError):
        link(archer, "gp", "gp", who=DOCTOR, reason="itself")
    link(archer, "gp", "council", who=DOCTOR, reason="same person after all")
    with archer.connect() as conn:
        rows = conn.execute(
            text("SELECT action, outcome, user_id FROM audit_entry ORDER BY seq")
        ).all()
    assert [(r.action, r.outcome) for r in rows] == [
        ("identity-unlink", "permit"),
        ("identity-link", "deny"),
        ("identity-link", "permit"),
    ]
    assert {r.user_id for r in rows} == {DOCTOR}
    report = verify(archer)
    assert report.intact and report.size == 3


def test_a_person_id_merged_away_and_split_again_never_leads_to_someone_else(
    engine: Engine,
) -> None:
    """b's person is merged into a's by a manual link, then the link is undone: anything
    holding b's old person id (a transfer, an IG grant) must read b's records, never a's."""
    store(engine, patient(pid="a", nhs=NHS_D), patient(pid="b", nhs=NHS_B, born="1999-09-09"))
    relink(engine, ["a", "b"])
    b_person = person_of(engine, "b")
    assert b_person is not None
    link(engine, "a", "b", who=DOCTOR, reason="one person")
    unlink(engine, "a", "b", who=DOCTOR, reason="no, two people after all")
    assert person_of(engine, "a") != person_of(engine, "b")
    assert patients_of(engine, b_person) == ["b"]
    with engine.connect() as conn:
        assert members_of(conn, b_person).nhs_number == NHS_B


def test_a_placeholder_nhs_number_from_a_source_joins_no_one(
    engine: Engine, tmp_path: Path, codes: CodeMaps
) -> None:
    """Renée Smith and Renée Jones, born the same day, both NHSNumber 0000000000 at SystmOne
    (not Spine-matched): two people, and the placeholder is nobody's number."""
    folder = write_systmone(
        tmp_path / "s1",
        [
            s1_patient("1", "0000000000", SpineMatched="N"),
            s1_patient("2", "0000000000", SpineMatched="N", Surname="Jones"),
        ],
    )
    ingest(engine, Settings(data_dir=tmp_path), codes, adapter_for("systmone"), str(folder))
    assert len({person for person, _ in links(engine).values()}) == len(links(engine)) == 2
    with engine.connect() as conn:
        assert index.people_with_nhs_number(conn, "0000000000") == []


def test_a_record_matching_two_known_different_people_equally_joins_neither(engine: Engine) -> None:
    store(
        engine,
        patient(pid="gp1", nhs=NHS_A, line="1 Brook St", postcode="BO1 1AA"),
        patient(pid="gp2", nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
        patient(pid="council", line="5 Elm Way", postcode="BO5 5EE", council_style=True),
    )
    relink(engine, ["gp1", "gp2", "council"])
    assert person_of(engine, "council") not in (person_of(engine, "gp1"), person_of(engine, "gp2"))
    assert sorted((e.patient_a, e.patient_b) for e in queue(engine)) == [
        ("council", "gp1"),
        ("council", "gp2"),
    ]


def test_a_replaced_nhs_number_splits_a_person_onto_the_review_queue(engine: Engine) -> None:
    """The GP's number is replaced on the Spine (NHS_A by NHS_C); the council, untraced, still
    holds NHS_A, and the man has moved since it last heard: apart, but never silently."""
    store(
        engine,
        patient(pid="gp", nhs=NHS_A, line="9 Hill Rd", postcode="BO2 2BB"),
        patient(pid="council", nhs=NHS_A, status="02", council_style=True),
    )
    relink(engine, ["gp", "council"])
    assert person_of(engine, "gp") == person_of(engine, "council")
    store(engine, patient(pid="gp", nhs=NHS_C, line="9 Hill Rd", postcode="BO2 2BB"))
    relink(engine, ["gp"])
    assert person_of(engine, "gp") != person_of(engine, "council")
    assert [(e.patient_a, e.patient_b, e.rule) for e in queue(engine)] == [
        ("council", "gp", "nhs-conflict")
    ]


_ARRIVALS = {
    "x": patient(pid="x", nhs=NHS_A),
    "y": patient(pid="y", nhs=NHS_A, sex="female", line="7 Oak Row", postcode="BO7 7GG"),
    "w": patient(pid="w", nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
    "z": patient(pid="z", council_style=True),
}


def _arrive(engine: Engine, order: list[list[str]]) -> list[list[str]]:
    """Store and relink ``order``'s batches in turn; the people the store then holds."""
    for batch in order:
        store(engine, *(_ARRIVALS[p] for p in batch))
        relink(engine, batch)
    people: dict[str | None, list[str]] = {}
    for p in sorted(_ARRIVALS):
        people.setdefault(person_of(engine, p), []).append(p)
    return sorted(people.values())


@pytest.mark.parametrize("order", [[["x", "z", "w"], ["y"]], [["x", "y", "w"], ["z"]]])
def test_people_do_not_depend_on_the_order_records_arrive_in(
    engine: Engine, order: list[list[str]]
) -> None:
    """z (council) is x's, but y (x's, wrong sex) forbids it; w is a namesake elsewhere. Either
    order, and a relink of everything afterwards, gives the same people: z joins no one."""
    assert _arrive(engine, order) == [["w"], ["x", "y"], ["z"]]
    relink_all(engine)
    assert _arrive(engine, []) == [["w"], ["x", "y"], ["z"]]


def test_a_record_split_off_by_anothers_change_is_matched_against_its_other_candidates(
    engine: Engine,
) -> None:
    """m (council) joins n, its strongest match, over k (another number, elsewhere). n's birth
    date is then corrected, which splits m off: m must meet k now, as a relink of everything
    would, not stay alone until its own record changes."""
    store(
        engine,
        patient(pid="n", nhs=NHS_A),
        patient(pid="m", council_style=True),
        patient(pid="k", nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
    )
    relink(engine, ["n", "m", "k"])
    assert person_of(engine, "m") == person_of(engine, "n") != person_of(engine, "k")
    store(engine, patient(pid="n", nhs=NHS_A, born="1952-07-19"))
    relink(engine, ["n"])
    after_change = [person_of(engine, p) for p in ("n", "m", "k")]
    relink_all(engine)
    assert [person_of(engine, p) for p in ("n", "m", "k")] == after_change
    assert after_change[1] == after_change[2] != after_change[0]


def test_a_person_id_counts_for_a_patient_only_while_the_patient_was_in_it() -> None:
    """a joined b's person P2 at t1 and left it at t2 (the merge undone, P2 back with b): what
    was recorded under P2 after t2 is b's, not a's."""
    t0, t1, t2 = (datetime(2026, 12, 1, h, tzinfo=UTC) for h in (9, 10, 11))

    def moved(at: datetime, to: str, came_from: str | None) -> HistoryEntry:
        return HistoryEntry(at, "link", "a", "b", to, came_from, False, "auto", "", None)

    reviewed = HistoryEntry(t1, "review", "a", "b", None, None, False, "auto", "", None)
    events = [moved(t1, "P2", "P1"), reviewed, moved(t2, "P3", "P2")]
    assert spans(events, "a", "P3") == [
        Span("P1", None, t1),
        Span("P2", t1, t2),
        Span("P3", t2, None),
    ]
    assert spans([], "a", "P1") == [Span("P1", None, None)]
    assert spans([moved(t0, "P9", None)], "b", "P1") == [Span("P1", None, None)]


def test_a_review_leaves_the_patients_current_span_open(engine: Engine) -> None:
    store(engine, patient(pid="a"), patient(pid="b", sex="female", council_style=True))
    relink(engine, ["a", "b"])
    assert [(e.patient_a, e.patient_b) for e in queue(engine)] == [("a", "b")]
    current = person_of(engine, "a")
    found = spans(history(engine, "a"), "a", current)
    assert found[-1].person_id == current and found[-1].end is None, found


def test_a_torn_record_stays_torn_when_one_of_its_people_is_resent(engine: Engine) -> None:
    """The council record matches gp1 and gp2 equally; re-sending gp1 unchanged must not let it
    join gp1 (gp2's person is what makes the choice a coin toss), and both items stay open."""
    gp1 = patient(pid="gp1", nhs=NHS_A, line="1 Brook St", postcode="BO1 1AA")
    store(
        engine,
        gp1,
        patient(pid="gp2", nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
        patient(pid="council", line="5 Elm Way", postcode="BO5 5EE", council_style=True),
    )
    relink(engine, ["gp1", "gp2", "council"])
    store(engine, gp1)
    relink(engine, ["gp1"])
    assert person_of(engine, "council") not in (person_of(engine, "gp1"), person_of(engine, "gp2"))
    assert sorted((e.patient_a, e.patient_b) for e in queue(engine)) == [
        ("council", "gp1"),
        ("council", "gp2"),
    ]


_HELD = {
    "g1": patient(pid="g1", nhs=NHS_A),
    "h1": patient(pid="h1", nhs=NHS_A, sex="female"),
    "c": patient(pid="c", council_style=True),
    "g2": patient(pid="g2", nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
}


def _held_people(engine: Engine) -> list[list[str]]:
    found: dict[str | None, list[str]] = {}
    for p in sorted(_HELD):
        found.setdefault(person_of(engine, p), []).append(p)
    return sorted(found.values())


@pytest.mark.parametrize(
    "order",
    [
        [["g1", "h1", "c", "g2"]],
        [["g1", "h1"], ["c"], ["g2"]],
        [["g1", "h1", "c"], ["g2"]],
        [["g2"], ["c"], ["g1", "h1"]],
    ],
)
def test_a_record_held_from_its_own_person_never_joins_a_namesake_in_the_store(
    engine: Engine, order: list[list[str]]
) -> None:
    """c (council, no number) lives with g1; h1 (g1's hospital record, sex keyed wrong) forbids
    c, so c is held; g2 is another Philip Archer elsewhere. The store agrees with match_all in
    every arrival order, and after g2 is re-sent."""
    pure = match_all({p: demographics(x) for p, x in _HELD.items()}, RULES).people
    assert sorted(map(sorted, pure)) == [["c"], ["g1", "h1"], ["g2"]]
    for batch in order:
        store(engine, *(_HELD[p] for p in batch))
        relink(engine, batch)
    assert _held_people(engine) == [["c"], ["g1", "h1"], ["g2"]]
    store(engine, _HELD["g2"])
    relink(engine, ["g2"])
    assert _held_people(engine) == [["c"], ["g1", "h1"], ["g2"]]


@pytest.mark.parametrize("descending", [False, True])
def test_the_older_person_survives_a_merge_whatever_the_uuids(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, descending: bool
) -> None:
    """gp arrives; the council record (no birth date yet) stays alone, then is corrected and
    joins gp. Audit entries and transfers are keyed by person id: gp's (older) person survives
    whichever way the uuids sort."""
    from engine.identity import workset

    n = iter(range(1000))
    made = (lambda: uuid.UUID(int=10**6 - next(n))) if descending else (
        lambda: uuid.UUID(int=next(n) + 1)
    )  # fmt: skip
    monkeypatch.setattr(workset.uuid, "uuid4", made)
    store(engine, patient(pid="gp", nhs=NHS_A))
    relink(engine, ["gp"])
    store(engine, patient(pid="council", council_style=True, born="1960-01-01", given=("X",)))
    relink(engine, ["council"])
    gp_person = person_of(engine, "gp")
    assert gp_person != person_of(engine, "council")
    store(engine, patient(pid="council", council_style=True))
    relink(engine, ["council"])
    assert person_of(engine, "council") == person_of(engine, "gp") == gp_person


def test_the_survivors_id_stays_with_its_own_records_when_a_larger_merged_in_group_leaves(
    engine: Engine,
) -> None:
    """z1, z2 (verified NHS_A) are person Z; three council records join it one by one. The GP
    then corrects the birth date, so the council records leave (household rule): Z stays with
    z1 and z2, under whom their entries and transfers were recorded."""
    store(engine, patient(pid="z1", nhs=NHS_A), patient(pid="z2", nhs=NHS_A))
    relink(engine, ["z1", "z2"])
    z = person_of(engine, "z1")
    for pid in ("c1", "c2", "c3"):
        store(engine, patient(pid=pid, council_style=True))
        relink(engine, [pid])
    assert {person_of(engine, p) for p in ("z1", "z2", "c1", "c2", "c3")} == {z}
    store(
        engine,
        patient(pid="z1", nhs=NHS_A, born="1955-08-20"),
        patient(pid="z2", nhs=NHS_A, born="1955-08-20"),
    )
    relink(engine, ["z1", "z2"])
    assert person_of(engine, "c1") != person_of(engine, "z1")
    assert person_of(engine, "z1") == z


def test_a_relink_in_a_common_names_block_judges_the_record_not_the_block(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 John Smiths, each born on another day at another home: re-sending one judges it
    against the block (199), not every pair of the block (19,900)."""
    from engine.identity import workset

    smiths = [
        patient(pid=f"s{i:03d}", family="Smith", given=("John",),
                born=(date(1951, 1, 1) + timedelta(days=i)).isoformat(),
                line=f"{i} Long Rd", postcode=f"BO{i % 9 + 1} {i % 10}{chr(65 + i % 26)}A")
        for i in range(200)
    ]  # fmt: skip
    store(engine, *smiths)
    relink(engine, [s["id"] for s in smiths])
    judged = 0
    real = workset.decide

    def counting(a: Any, b: Any, rules: Any) -> Any:
        nonlocal judged
        judged += 1
        return real(a, b, rules)

    monkeypatch.setattr(workset, "decide", counting)
    store(engine, smiths[0])
    relink(engine, ["s000"])
    assert judged < 1000, judged
