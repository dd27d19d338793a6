"""The command line contract: --json keys, exit codes, and errors that name what is wrong."""

from __future__ import annotations

import sys

import orjson
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from audit import AuditUnavailable
from audit.query import stream
from audit.search import Filters, search
from engine.cli import WORKER_HEALTHCHECK_S, app, main
from engine.db import make_engine
from engine.models import Resource
from engine.settings import Settings, SettingsError
from tests.factories import invalid_nhs_number, nhs_numbers, s1_code, s1_patient, write_systmone

runner = CliRunner()


def invoke(db_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"SCR_DATABASE_URL": db_url, "COLUMNS": "200"})


def test_ingest_json_summary_and_quarantine_commands(db_url, tmp_path):
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", next(nhs_numbers())), s1_patient("2", invalid_nhs_number())],
        [s1_code("10", "1")],
    )
    result = invoke(db_url, "ingest", "systmone", str(folder), "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    for key in ("read", "created", "updated", "unchanged", "quarantined"):
        assert isinstance(summary[key], int)
    assert summary["run_id"] and summary["quarantined"] == 1

    listed = orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)
    assert [i["field"] for i in listed] == ["NHSNumber"]
    shown = orjson.loads(invoke(db_url, "quarantine", "show", str(listed[0]["id"])).stdout)
    assert shown["record"]["fields"]["RowIdentifier"] == "2"

    fixed = invoke(
        db_url,
        "quarantine",
        "replay",
        str(listed[0]["id"]),
        "--set",
        f"NHSNumber={next(nhs_numbers(999_100_000))}",
        "--json",
    )
    # The Patient went in without the number; the correction adds it as a new version.
    assert fixed.exit_code == 0 and orjson.loads(fixed.stdout)["updated"] == 1
    assert orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout) == []


def test_what_an_operator_reads_is_audited_first_and_not_shown_without_it(
    db_url, tmp_path, monkeypatch
):
    """Quarantined records and the identity queue hold patients' details: reading them at the
    command line is an access the IG officer sees in the trail, and a trail that cannot be
    written shows nothing."""
    folder = write_systmone(tmp_path / "x", [s1_patient("2", invalid_nhs_number())])
    invoke(db_url, "ingest", "systmone", str(folder), "--json")
    [item] = orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)
    invoke(db_url, "quarantine", "show", str(item["id"]))
    invoke(db_url, "identity", "queue", "--json")
    invoke(db_url, "identity", "history", "p-1", "--json")
    trail = make_engine(db_url)
    entries = [e for e in stream(trail) if e["action"] == "operator-view"]
    trail.dispose()
    assert [e["query"] for e in entries] == [
        "quarantine list --status open",
        f"quarantine show {item['id']}",
        "identity queue",
        "identity history p-1",
    ]
    assert entries[1]["user_id"] and not entries[1]["refs"]

    def down(*_: object) -> None:
        raise AuditUnavailable("the trail cannot be written")

    monkeypatch.setattr("engine.operator.append", down)
    refused = invoke(db_url, "quarantine", "show", str(item["id"]))
    assert refused.exit_code != 0 and "RowIdentifier" not in refused.stdout


def test_an_operator_reading_a_patients_link_history_is_found_under_the_person(db_url, tmp_path):
    """The person's access report and an IG search by patient find the operator's read."""
    nhs = next(nhs_numbers())
    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)])
    invoke(db_url, "ingest", "systmone", str(folder), "--json")
    trail = make_engine(db_url)
    with trail.connect() as conn:
        pid = conn.execute(select(Resource.id).where(Resource.resource_type == "Patient")).scalar()
    assert invoke(db_url, "identity", "history", str(pid), "--json").exit_code == 0
    found = search(trail, Filters(nhs_number=nhs)).entries
    trail.dispose()
    [entry] = [e for e in found if e["action"] == "operator-view"]
    assert entry["refs"] == [f"Patient/{pid}"] and entry["patient_id"]


def test_an_operator_shown_a_known_persons_quarantined_row_is_found_under_the_person(
    db_url, tmp_path
):
    """The row is theirs (their clinical item, as read): their access report must say an
    operator looked, as for their link history; a row of no stored patient names no one."""
    nhs = next(nhs_numbers())
    folder = write_systmone(
        tmp_path / "x", [s1_patient("1", nhs)],
        [s1_code("10", "1", DateEvent="not a date"), s1_code("11", "9", DateEvent="nor this")],
    )  # fmt: skip
    invoke(db_url, "ingest", "systmone", str(folder), "--json")
    listed = orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)
    items = {i["source_key"].rsplit("|", 1)[1]: i["id"] for i in listed}
    for row in ("10", "11"):
        assert invoke(db_url, "quarantine", "show", str(items[row])).exit_code == 0
    trail = make_engine(db_url)
    shown = [e for e in stream(trail) if e["action"] == "operator-view" and "show" in e["query"]]
    trail.dispose()
    assert [(e["nhs_number"], bool(e["patient_id"])) for e in shown] == [(nhs, True), (None, False)]


def test_a_correction_is_for_one_record_only(db_url, tmp_path):
    """Two people with failing numbers, one correction for all: linking would merge them."""
    folder = write_systmone(
        tmp_path / "x",
        [s1_patient("1", invalid_nhs_number()), s1_patient("2", invalid_nhs_number(),
                                                             FirstName="Other")],
        [],
    )  # fmt: skip
    invoke(db_url, "ingest", "systmone", str(folder))
    listed = orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)
    fix = f"NHSNumber={next(nhs_numbers(999_100_000))}"
    ids = [str(i["id"]) for i in listed]
    for args in ([], ids):
        refused = invoke(db_url, "quarantine", "replay", *args, "--set", fix)
        assert refused.exit_code == 2 and "exactly one item id" in refused.output
    assert len(orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)) == 2


def test_a_correction_replay_cannot_take_is_refused_with_its_reason(db_url, tmp_path):
    """A joined field is the reader's, not the source's: refused (exit 2), the item open."""
    folder = write_systmone(tmp_path / "x", [s1_patient("2", invalid_nhs_number())])
    invoke(db_url, "ingest", "systmone", str(folder))
    [item] = orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)
    refused = invoke(db_url, "quarantine", "replay", str(item["id"]), "--set", "_PostCode=X")
    assert refused.exit_code == 2
    assert f"item {item['id']} (systmone|Y00001|SRPatient|2): _PostCode: joined" in refused.output
    assert len(orjson.loads(invoke(db_url, "quarantine", "list", "--json").stdout)) == 1


def test_ingest_of_an_unreadable_extract_exits_non_zero(db_url, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke(db_url, "ingest", "systmone", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "SROrganisation.csv is missing" in result.output


def test_unknown_kind_is_refused(db_url, tmp_path):
    result = invoke(db_url, "ingest", "fax", str(tmp_path))
    assert result.exit_code == 2 and "unknown source kind 'fax'" in result.output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SCR_INGEST_BATCH_SIZE": "lots"}, "SCR_INGEST_BATCH_SIZE"),
        ({"SCR_BREAK_GLASS_MINUTES": "0"}, "SCR_BREAK_GLASS_MINUTES"),
        ({"SCR_DATABASE_URL": "mysql://x"}, "SCR_DATABASE_URL"),
        ({"SCR_CANONICAL_BASE": "fhir.example"}, "SCR_CANONICAL_BASE"),
        ({"SCR_CONFIG": "/nonexistent.toml"}, "SCR_CONFIG"),
    ],
)
def test_a_malformed_setting_is_named(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.load(env)


def test_settings_from_toml_then_environment(tmp_path):
    config = tmp_path / "scr.toml"
    config.write_text('database_url = "sqlite:///a.db"\ningest_batch_size = 10\n')
    settings = Settings.load({"SCR_CONFIG": str(config), "SCR_INGEST_BATCH_SIZE": "20"})
    assert settings.database_url == "sqlite:///a.db" and settings.ingest_batch_size == 20


@pytest.mark.parametrize(
    ("toml", "said"),
    [("jwt_public_key = 7\n", "SCR_JWT_PUBLIC_KEY: must be text"),
     ('SCR_DATABASE_URL = "sqlite:///a.db"\n', "SCR_DATABASE_URL (write database_url)")],
)  # fmt: skip
def test_a_config_file_setting_of_the_wrong_kind_or_name_is_named(tmp_path, toml, said):
    """A number for a key's text raised AttributeError ('int' object has no attribute
    'lstrip') with a traceback; a variable's name for a setting's said only 'unknown'."""
    config = tmp_path / "scr.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError) as refused:
        Settings.load({"SCR_CONFIG": str(config)})
    assert said in str(refused.value)


def test_directory_load_and_list(db_url, tmp_path):
    from adapters.synth.directory import write_directory

    write_directory(tmp_path / "organisations.json")
    loaded = invoke(db_url, "directory", "load", str(tmp_path / "organisations.json"))
    assert loaded.exit_code == 0, loaded.output
    listed = orjson.loads(invoke(db_url, "directory", "list", "--json").stdout)
    assert {
        "code": "R9Z",
        "name": "Borchester General Hospital NHS Trust",
        "kind": "hospital",
    } in listed
    (tmp_path / "bad.json").write_text('{"version": "x", "organisations": [{"code": "R9Z"}]}')
    refused = invoke(db_url, "directory", "load", str(tmp_path / "bad.json"))
    assert refused.exit_code == 1 and "organisations/0" in refused.output


def test_db_restamp_derives_the_facts_of_rows_stored_under_other_rules(db_url, tmp_path):
    """After a change to the section rules, ``scr db restamp`` derives every stale row's facts
    again, so reads judge them on their columns once more; a second run has nothing to do."""
    from sqlalchemy import select, update

    from engine.db import make_engine
    from engine.facts import ingest_policy
    from engine.models import Resource

    folder = write_systmone(tmp_path / "x", [s1_patient("1", next(nhs_numbers()))],
                            [s1_code("10", "1")])  # fmt: skip
    assert invoke(db_url, "ingest", "systmone", str(folder)).exit_code == 0
    engine = make_engine(db_url)
    columns = (Resource.id, Resource.section, Resource.relation, Resource.facts_version)
    with engine.begin() as conn:
        written = conn.execute(select(*columns).order_by(Resource.id)).all()
        conn.execute(update(Resource).values(section="unclassified", facts_version="old-rules"))
    result = invoke(db_url, "db", "restamp", "--json")
    assert result.exit_code == 0, result.output
    version = ingest_policy().facts_version
    assert orjson.loads(result.stdout) == {"restamped": len(written), "facts_version": version}
    with engine.connect() as conn:
        assert conn.execute(select(*columns).order_by(Resource.id)).all() == written
    again = invoke(db_url, "db", "restamp", "--json")
    assert orjson.loads(again.stdout)["restamped"] == 0
    engine.dispose()


def test_the_demo_never_loads_into_the_store_the_environment_names(
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo replaces the organisation directory of the store it loads and adds synthetic
    people: an exported SCR_DATABASE_URL (a production store's) must not be that store."""
    from adapters.synth.directory import write_directory

    write_directory(tmp_path / "organisations.json")
    assert invoke(db_url, "directory", "load", str(tmp_path / "organisations.json")).exit_code == 0
    before = invoke(db_url, "directory", "list", "--json").stdout
    monkeypatch.chdir(tmp_path)
    for name in ("SCR_DATABASE_URL", "SCR_DATA_DIR", "SCR_AUTH_MODE"):  # the demo sets them
        monkeypatch.delenv(name, raising=False)
    demo = invoke(db_url, "demo", "--patients", "2", "--no-serve")
    assert demo.exit_code == 0, demo.output
    assert (tmp_path / "scr-demo.db").exists()
    assert invoke(db_url, "directory", "list", "--json").stdout == before
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Resource)).scalar_one() == 0
    engine.dispose()


def test_a_demo_stopped_while_synthesising_is_synthesised_again(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the people were written left a partial extract and a cut truth.json,
    which every later run took in for good: the sources are written under another name and
    renamed whole, and what a stopped run left is written again."""
    monkeypatch.chdir(tmp_path)
    for name in ("SCR_DATABASE_URL", "SCR_DATA_DIR", "SCR_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "scr-demo-sources.partial" / "systmone").mkdir(parents=True)
    (tmp_path / "scr-demo-sources.partial" / "truth.json").write_text('{"people": [')
    demo = runner.invoke(app, ["demo", "--patients", "2", "--no-serve"])
    assert demo.exit_code == 0, demo.output
    assert not (tmp_path / "scr-demo-sources.partial").exists()
    orjson.loads((tmp_path / "scr-demo-sources" / "truth.json").read_bytes())
    again = runner.invoke(app, ["demo", "--patients", "5", "--no-serve"])
    assert again.exit_code == 0 and "using the people already in" in again.output


def test_serve_with_jwt_settings_missing_stops_with_the_setting_named(db_url, tmp_path):
    """Not a loop of crashing workers: with two, uvicorn restarted each one for ever."""
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "SCR_AUTH_MODE": "jwt",
           "SCR_JWT_ISSUER": "https://idp.example", "COLUMNS": "200"}  # fmt: skip
    result = runner.invoke(app, ["serve", "--workers", "2"], env=env)
    assert result.exit_code == 2
    assert "SCR_JWT_PUBLIC_KEY or SCR_JWKS_URL: one is required" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "scr.example"])
def test_serve_refuses_dev_sign_in_on_a_host_other_machines_reach(
    db_url, tmp_path, monkeypatch, host
):
    """Dev mode signs anyone in without a credential (the persona picker, `scr token`)."""
    import uvicorn

    served: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(k))
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "SCR_AUTH_MODE": "dev",
           "COLUMNS": "200"}  # fmt: skip
    result = runner.invoke(app, ["serve", "--host", host], env=env)
    assert result.exit_code == 2 and not served
    assert "SCR_AUTH_MODE=dev" in result.output and host in result.output
    for local in ("127.0.0.1", "localhost", "::1"):
        assert runner.invoke(app, ["serve", "--host", local], env=env).exit_code == 0
    assert [k["host"] for k in served] == ["127.0.0.1", "localhost", "::1"]
    # uvicorn's 5 s to start killed workers still importing on a loaded machine, for ever
    assert {k["timeout_worker_healthcheck"] for k in served} == {WORKER_HEALTHCHECK_S}


def test_a_missing_code_map_file_is_one_line_not_a_traceback(db_url, tmp_path):
    missing = str(tmp_path / "ctv3sctmap2_uk_20200401.txt")
    env = {"SCR_DATABASE_URL": db_url, "SCR_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = runner.invoke(app, ["codes", "load-trud", missing, "--source", "ctv3"], env=env)
    assert result.exit_code == 1 and "cannot load" in result.output
    assert "Traceback" not in result.output


def test_a_command_that_only_reads_refuses_a_store_that_is_not_there(tmp_path):
    """In the wrong folder, or with SCR_DATABASE_URL mistyped, scr audit verify made an empty
    store and said 'intact: 0 entries' (exit 0): an IG officer was told a trail held that was
    never read. A command that only reads makes nothing and migrates nothing."""
    missing = tmp_path / "nowhere.db"
    url = f"sqlite:///{missing}"
    for args in (("audit", "verify"), ("quarantine", "list"), ("directory", "list"),
                 ("identity", "queue")):  # fmt: skip
        result = runner.invoke(
            app, list(args), env={"SCR_DATABASE_URL": url, "SCR_DATA_DIR": str(tmp_path)}
        )
        assert result.exit_code == 2 and "no store at" in result.output, (args, result.output)
        assert not missing.exists(), args
    assert invoke(url, "db", "upgrade").exit_code == 0
    assert invoke(url, "audit", "verify").exit_code == 0


def test_a_command_that_only_reads_refuses_a_store_behind_this_scr(db_url):
    """It migrated the store it was asked to read: as the application's role that failed with
    a traceback, and as the owner it changed the schema of the store it was checking."""
    assert invoke(db_url, "db", "upgrade").exit_code == 0
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0016'"))
    engine.dispose()
    result = invoke(db_url, "audit", "verify")
    assert result.exit_code == 2 and "run scr db upgrade" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_store_that_cannot_be_opened_is_named_without_a_traceback(tmp_path):
    """An unreachable database, or a SQLite file in a folder that is not there, printed some
    400 lines of traceback; the operator gets the store, without its password, and why."""
    for url in (f"sqlite:///{tmp_path}/no/such/folder/scr.db",
                "postgresql+psycopg://scr:hunter2@127.0.0.1:1/x"):  # fmt: skip
        result = invoke(url, "db", "upgrade")
        assert result.exit_code == 2 and "cannot open the store" in result.output, result.output
        assert "Traceback" not in result.output and "hunter2" not in result.output


def test_quarantine_list_refuses_a_status_it_does_not_know(db_url):
    result = invoke(db_url, "quarantine", "list", "--status", "bogus")
    assert result.exit_code == 2 and "open, replayed, superseded or all" in result.output


def test_a_store_named_by_a_file_uri_is_found_where_it_is(tmp_path):
    """check_ready looked for a file literally named 'file:...' and refused a store that was
    there; it now reads the path from the URI, as the store is made (engine.migrate)."""
    url = f"sqlite:///file:{tmp_path / 'store.db'}?uri=true"
    assert invoke(url, "db", "upgrade").exit_code == 0
    result = invoke(url, "audit", "verify")
    assert result.exit_code == 0, result.output
    missing = f"sqlite:///file:{tmp_path / 'nowhere.db'}?uri=true"
    refused = invoke(missing, "audit", "verify")
    assert refused.exit_code == 2 and "no store at" in refused.output, refused.output


@pytest.mark.parametrize("wrapped", [False, True], ids=["as-raised", "raised-from"])
def test_a_command_failing_on_a_database_error_shows_it_without_the_row_it_quotes(
    db_url, tmp_path, monkeypatch, capsys, wrapped
):
    """A database error's own text can quote the row it failed on (PostgreSQL: 'Failing row
    contains (..., <the NHS number>)'), and a command's output lands in job logs: ``scr`` ends
    with each error's frames and primary message, also when another error was raised from it
    quoting it."""
    nhs = next(nhs_numbers())
    engine = make_engine(db_url)

    def broken(*_, **__):  # type: ignore[no-untyped-def]
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE probe (n int NOT NULL, nhs text)"))
                conn.execute(text("INSERT INTO probe VALUES (NULL, :nhs)"), {"nhs": nhs})
        except Exception as exc:
            if wrapped:  # quoting it, as a wrapper may
                raise RuntimeError(f"the run could not be recorded: {exc}") from exc
            raise

    folder = write_systmone(tmp_path / "x", [s1_patient("1", nhs)], [])
    monkeypatch.setattr("engine.cli.ingest", broken)
    monkeypatch.setattr(sys, "argv", ["scr", "ingest", "systmone", str(folder)])
    monkeypatch.setenv("SCR_DATABASE_URL", db_url)
    with pytest.raises(SystemExit) as ended:
        main()
    engine.dispose()
    said = capsys.readouterr().err
    assert ended.value.code == 1
    assert "in broken" in said  # each error's frames, then its kind and primary message
    errors = [line for line in said.splitlines() if line and not line.startswith((" ", "Trace"))]
    assert all("null" in line.lower() for line in errors)
    assert errors[-1].startswith("RuntimeError: the run could not be recorded: ") == wrapped
    assert nhs not in said
