"""The ``scr`` command line (typer). Long work shows a rich progress bar on a terminal."""

from __future__ import annotations

import ipaddress
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from adapters.base import CorrectionRefused, ExtractError
from adapters.codes import CodeMaps, load_all
from audit.cli import audit_app
from audit.storage import may_rewrite
from engine import codes_admin, directory, quarantine
from engine.canonical import exact
from engine.db import error_text, make_engine
from engine.facts import ingest_policy, restamp
from engine.identity.cli import identity_app
from engine.ingest import RunSummary, ingest
from engine.lock import IngestBusy
from engine.migrate import StoreNotReady, check_ready, upgrade
from engine.operator import operator_view
from engine.registry import adapter_for, kinds
from engine.settings import Settings, SettingsError
from engine.transfer.cli import transfer_app

#: How long a worker has to start, and to answer the supervisor's ping: uvicorn's 5 s killed
#: workers still starting on a loaded machine (importing the FHIR models, loading the policy)
#: and started new ones, for ever.
WORKER_HEALTHCHECK_S = 30

app = typer.Typer(help="scr: shared care record integration engine", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
q_app = typer.Typer(help="Records that could not be taken in", no_args_is_help=True)
codes_app = typer.Typer(help="Code maps and sensitive value sets", no_args_is_help=True)
dir_app = typer.Typer(help="Organisations and their kinds", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(q_app, name="quarantine")
app.add_typer(codes_app, name="codes")
app.add_typer(dir_app, name="directory")
app.add_typer(identity_app, name="identity")
app.add_typer(audit_app, name="audit")
app.add_typer(transfer_app, name="transfer")

err = Console(stderr=True, soft_wrap=True)  # a path or a command is never broken
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]


def _settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@contextmanager
def _store(settings: Settings, *, reading: bool = False) -> Iterator[Engine]:
    """The migrated store, closed when the command ends (no connection outlives it). A command
    ``reading`` only (verify, list, export) opens an existing store at this scr's revision and
    changes nothing, or refuses (exit 2): it made an empty store where there was none and
    reported its empty trail intact."""
    engine = make_engine(settings.database_url)
    try:
        try:
            if reading:
                check_ready(engine)
            else:
                upgrade(engine)
        except OperationalError as exc:  # unreachable, refused, no such folder: not a traceback
            where = engine.url.render_as_string(hide_password=True)
            reason = str(exc.orig or exc).strip().splitlines()[0]
            err.print(f"[red]cannot open the store[/red] {where} (SCR_DATABASE_URL): {reason}")
            raise typer.Exit(2) from None
        except StoreNotReady as exc:
            err.print(f"[red]store not ready:[/red] {exc}")
            raise typer.Exit(2) from None
        yield engine
    finally:
        engine.dispose()


def _codes(settings: Settings) -> CodeMaps:
    return load_all(extra=codes_admin.deployment_dir(settings))


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, default=exact, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A rich bar on a terminal; plain lines every 10,000 items otherwise."""
    if err.is_terminal:
        columns = (
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.completed:,}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.update(task, completed=n)
        return
    last = [0]

    def plain(n: int) -> None:
        if n - last[0] >= 10_000:
            last[0] = n
            err.print(f"{label}: {n:,}")

    yield plain


#: A run's counts, in the order the table shows them.
_OUTCOMES = (
    "read",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "relabelled",
    "quarantined",
    "warnings",
)


def _show_summary(summary: RunSummary, as_json: bool) -> None:
    doc = summary.as_dict()
    if as_json:
        _print_json(doc)
        return
    table = Table(title=f"{summary.kind} run {summary.run_id}")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key in _OUTCOMES:
        table.add_row(key, f"{doc[key]:,}")
    Console().print(table)
    for reason, n in doc["quarantine_reasons"].items():
        Console().print(f"  quarantined {reason}: {n}")
    for note in doc["notes"]:
        Console().print(f"  note: {note}")


@app.command("ingest")
def ingest_cmd(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(kinds())}")],
    location: Annotated[str, typer.Argument(help="Extract folder, file or URL")],
    org: Annotated[
        str | None, typer.Option(help="Council code, when the source names none (API pulls)")
    ] = None,
    allow_older: Annotated[
        bool,
        typer.Option(
            "--allow-older",
            help="Load an extract older than the newest taken in from its source (a restore)",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest one extract. Exit 0 when the run completed, even with quarantined records."""
    settings = _settings()
    try:
        adapter = adapter_for(kind, org)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    try:
        with _store(settings) as engine, _progress(f"ingest {kind}") as progress:
            summary = ingest(
                engine,
                settings,
                _codes(settings),
                adapter,
                location,
                progress,
                allow_older=allow_older,
            )
    except (ExtractError, IngestBusy, OSError) as exc:
        err.print(f"[red]ingest failed:[/red] {exc}")
        raise typer.Exit(1) from None
    _show_summary(summary, as_json)


@app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option(help="Folder to write systmone/, emis/, council/")],
    patients: Annotated[int, typer.Option(min=1)] = 200,
    seed: Annotated[int, typer.Option()] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Write synthetic sources for an overlapping population, and truth.json."""
    from adapters.synth import synthesise

    with _progress("synthesise people", total=patients) as progress:
        counts = synthesise(patients, seed, out, progress)
    if as_json:
        _print_json(counts)
    else:
        Console().print(f"wrote {patients:,} people to {out}")


@app.command("demo")
def demo_cmd(
    patients: Annotated[int, typer.Option(min=1)] = 200,
    seed: Annotated[int, typer.Option()] = 1,
    port: Annotated[int, typer.Option()] = 8000,
    serve: Annotated[bool, typer.Option(help="Serve the app once the data is in")] = True,
) -> None:
    """Synthesise people, ingest every source style into ./scr-demo.db, serve with personas.

    Always ./scr-demo.db, ./scr-demo-data and dev sign-in, whatever SCR_DATABASE_URL says.
    Re-running reuses the data: a source folder already ingested completely is not read again.
    """
    import os

    from adapters.synth import synthesise

    # Its own store, data and sign-in, whatever the shell or a container exports: the demo
    # replaces the organisation directory of the store it loads and adds synthetic people.
    os.environ.update(
        SCR_DATABASE_URL="sqlite:///./scr-demo.db", SCR_DATA_DIR="./scr-demo-data",
        SCR_AUTH_MODE="dev", SCR_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    out = Path("scr-demo-sources")
    if out.exists():
        Console().print(f"using the people already in {out} (make clean to synthesise anew)")
    else:
        # Written whole under another name, then renamed: a run stopped half-way (Ctrl-C) left
        # a partial extract and truth.json, taken in for good by every later run.
        partial = Path("scr-demo-sources.partial")
        shutil.rmtree(partial, ignore_errors=True)
        with _progress("synthesise people", total=patients) as progress:
            synthesise(patients, seed, partial, progress)
        partial.rename(out)
    codes = _codes(settings)
    try:
        with _store(settings) as engine:
            _load_directory(engine, out / "organisations.json")
            _demo_signing_keys(engine, settings)
            for kind in ("systmone", "emis", "council"):
                source = str(out / kind)
                if _ingested(engine, kind, source):
                    Console().print(f"{kind}: already ingested from {source}")
                    continue
                with _progress(f"ingest {kind}") as progress:
                    summary = ingest(engine, settings, codes, adapter_for(kind), source, progress)
                _show_summary(summary, as_json=False)
    except (ExtractError, IngestBusy, OSError) as exc:
        err.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from None
    if serve:
        import uvicorn

        from engine.api.app import create_app, serving

        Console().print(
            f"scr demo: open http://127.0.0.1:{port}/ and pick a persona (Ctrl-C stops)"
        )
        uvicorn.run(serving(create_app(settings)), host="127.0.0.1", port=port, log_level="warning")


def _demo_signing_keys(engine: Engine, settings: Settings) -> None:
    """The demo care home and hospital send red-bag messages from scr's pages, so scr holds
    and registers their keys."""
    from adapters.synth import catalogue as cat
    from engine.transfer.keys import org_key

    for org in (cat.CARE_HOMES[0].ods, cat.HOSPITAL.ods):
        org_key(engine, settings.data_dir, org, "scr demo")


def _ingested(engine: Engine, kind: str, location: str) -> bool:
    from sqlalchemy import select

    from engine.models import IngestRun

    with engine.connect() as conn:
        done = conn.execute(
            select(IngestRun.id).where(
                IngestRun.kind == kind,
                IngestRun.location == location,
                IngestRun.status == "completed",
            )
        ).first()
    return done is not None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (Alembic) to SCR_DATABASE_URL."""
    with _store(_settings()):
        Console().print("database is at the latest revision")


@db_app.command("restamp")
def db_restamp(as_json: JsonOpt = False) -> None:
    """Derive every row's policy facts again under the policy files now in force.

    Run after a change to mappings/policy/sections.json or to the list of sensitive categories
    (categories.json): until then rows stored under the old rules are judged on their bodies
    (correct, but slower). It reads the labels rows were stored with and labels nothing anew:
    a code added to a sensitive value set labels a stored row when its source is ingested again.
    """
    policy = ingest_policy()
    with _store(_settings()) as engine, engine.begin() as conn:
        derived = restamp(conn, policy)
    if as_json:
        _print_json({"restamped": derived, "facts_version": policy.facts_version})
    else:
        Console().print(f"{derived} rows restamped (facts version {policy.facts_version})")


@q_app.command("list")
def q_list(
    status: Annotated[str, typer.Option(help="open, replayed, superseded or all")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """List quarantined records with file, line, field and reason."""
    if status not in ("open", "replayed", "superseded", "all"):
        err.print(f"--status: open, replayed, superseded or all, not {status!r}")
        raise typer.Exit(2)
    with _store(_settings(), reading=True) as engine:
        items = quarantine.list_items(engine, None if status == "all" else status)
        operator_view(engine, f"quarantine list --status {status}")
    if as_json:
        _print_json([i.brief() for i in items])
        return
    table = Table(title=f"quarantine ({status})")
    for col in ("id", "file", "line", "field", "reason"):
        table.add_column(col)
    for i in items:
        table.add_row(str(i.id), i.file, str(i.line), i.field or "", i.reason)
    Console().print(table)


@q_app.command("show")
def q_show(item_id: int) -> None:
    """Show one quarantined record whole, as it was read."""
    with _store(_settings(), reading=True) as engine:
        item = quarantine.get_item(engine, item_id)
        if item is not None:
            person = quarantine.person_of(engine, item)
            operator_view(
                engine, f"quarantine show {item_id}",
                patient_id=person.person_id if person else None,
                nhs_number=person.nhs_number if person else None,
            )  # fmt: skip
    if item is None:
        err.print(f"no quarantine item {item_id}")
        raise typer.Exit(1)
    _print_json({**item.brief(), "record": item.record})


@q_app.command("replay")
def q_replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Item ids; all open items if none")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE correction (repeatable; one item id only)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Map quarantined records again with today's maps (and any corrections)."""
    corrections: dict[str, str] = {}
    for pair in set_ or []:
        name, sep, value = pair.partition("=")
        if not sep:
            err.print(f"--set expects FIELD=VALUE, got {pair!r}")
            raise typer.Exit(2)
        corrections[name] = value
    settings = _settings()
    with _store(settings) as engine:
        unknown = _not_open(engine, ids or [])
        if unknown:
            err.print("\n".join(unknown))
            raise typer.Exit(1)
        try:
            summary = quarantine.replay(engine, settings, _codes(settings), ids or [], corrections)
        except CorrectionRefused as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
        except IngestBusy as exc:
            err.print(f"[red]replay failed:[/red] {exc}; nothing was replayed, try again later")
            raise typer.Exit(1) from None
    _show_summary(summary, as_json)


def _not_open(engine: Engine, ids: list[int]) -> list[str]:
    """Why each of ``ids`` cannot be replayed (no such item, or closed): replay passes over
    them, so a mistyped id would otherwise look like a replay that worked."""
    found = {i: quarantine.get_item(engine, i) for i in dict.fromkeys(ids)}
    return [
        f"no quarantine item {i}" if item is None else f"quarantine item {i} is {item.status}"
        for i, item in found.items()
        if item is None or item.status != "open"
    ]


@codes_app.command("load-trud")
def codes_load_trud(
    path: Path,
    source: Annotated[str, typer.Option(help="ctv3 or readv2")],
) -> None:
    """Convert a TRUD crossmap (ctv3sctmap2 / rcsctmap2) into this deployment's code maps."""
    try:
        n, dest = codes_admin.import_trud(_settings(), path, source)
    except (OSError, ValueError) as exc:  # a map file missing, unreadable or malformed
        err.print(f"[red]cannot load {path}:[/red] {exc}")
        raise typer.Exit(1) from None
    Console().print(f"loaded {n:,} codes into {dest}")


@codes_app.command("load-valueset")
def codes_load_valueset(path: Path) -> None:
    """Add a sensitive-category ValueSet (its name must be listed in categories.json)."""
    try:
        n, dest = codes_admin.import_valueset(_settings(), path)
    except (OSError, ValueError) as exc:  # a map file missing, unreadable or malformed
        err.print(f"[red]cannot load {path}:[/red] {exc}")
        raise typer.Exit(1) from None
    Console().print(f"loaded {n:,} concepts into {dest}")
    Console().print(
        "[yellow]Rows already stored are labelled with these only when their source rows are"
        " ingested again: a delta brings only changed rows, so ingest a full extract (pull"
        " GP Connect records again) now, or they are released without the label.[/yellow]"
    )


def _load_directory(engine: Engine, path: Path) -> int:
    from consent import load as load_policy

    try:
        version, entries = directory.read_directory(path, load_policy().org_kinds)
    except directory.DirectoryError as exc:
        err.print(f"[red]directory not loaded:[/red] {exc}")
        raise typer.Exit(1) from None
    with engine.begin() as conn:
        return directory.replace_directory(conn, version, entries, datetime.now(UTC))


@dir_app.command("load")
def directory_load(path: Path) -> None:
    """Replace the organisation directory with FILE (JSON, checked against its schema)."""
    with _store(_settings()) as engine:
        n = _load_directory(engine, path)
    Console().print(f"directory holds {n:,} organisations")


@dir_app.command("list")
def directory_list(as_json: JsonOpt = False) -> None:
    """List the organisations the directory knows, with their kinds."""
    with _store(_settings(), reading=True) as engine, engine.connect() as conn:
        entries = list(directory.organisations(conn).values())
    if as_json:
        _print_json([{"code": e.code, "name": e.name, "kind": e.kind} for e in entries])
        return
    table = Table(title="organisation directory")
    for col in ("code", "kind", "name"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.code, e.kind, e.name)
    Console().print(table)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, envvar="WEB_CONCURRENCY", help="Worker processes")
    ] = 1,
) -> None:
    """Serve the API (uvicorn); the settings are checked and migrations applied first.
    WEB_CONCURRENCY sets the worker count, as for other Python servers, so a container image
    can choose it.

    No access log: the audit trail records every access, with who, why and what left, under
    its own protections. A line per request would copy the NHS numbers in ``/record/`` paths
    and Patient searches into a plain log, which is kept and read with none of them.
    """
    import uvicorn

    from engine.api.auth import verifier_for

    settings = _settings()
    if settings.auth_mode == "dev" and not _loopback(host):
        err.print(
            f"[red]configuration error:[/red] SCR_AUTH_MODE=dev signs anyone in without a "
            f"credential: serve it on 127.0.0.1 or localhost only, not {host} "
            "(use SCR_AUTH_MODE=jwt for a host other machines reach)"
        )
        raise typer.Exit(2)
    try:  # here, once: a worker that cannot start is restarted by uvicorn, for ever
        verifier_for(settings)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    with _store(settings) as engine, engine.connect() as conn:
        err.print("database is at the latest revision")
        if may_rewrite(conn):
            err.print(
                "[yellow]warning:[/yellow] scr serve is connected as the owner of the audit "
                "trail or a superuser, which may alter or drop its append-only guards: connect "
                "as the application's role (SCR_DB_APP_ROLE, docker/compose.yaml's scr_app)"
            )
    uvicorn.run(
        "engine.api.server:app", host=host, port=port, workers=workers, factory=False,
        proxy_headers=True, log_level="info", access_log=False,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )  # fmt: skip


def _loopback(host: str) -> bool:
    """Only this machine reaches ``host``: localhost, or a loopback address (127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return False


@app.command("token")
def token_cmd(
    user: Annotated[str, typer.Option(help="User id (sub)")],
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[str, typer.Option(help="CIS2 role code Sxxxx:Gxxxx:Rxxxx")],
    org: Annotated[str, typer.Option(help="ODS code of the role's organisation")],
    purpose: Annotated[str, typer.Option(help="Purpose of use")] = "TREAT",
    minutes: Annotated[int, typer.Option(min=1, max=24 * 60)] = 60,
    trained: Annotated[str | None, typer.Option(help="IG training date (YYYY-MM-DD)")] = None,
) -> None:
    """Dev mode only: mint a bearer token for a synthetic user."""
    from datetime import date

    from engine.api.auth import mint

    settings = _settings()
    try:
        training = date.fromisoformat(trained) if trained else None
        token = mint(
            settings, user_id=user, name=name, role_code=role, org=org, purpose=purpose,
            minutes=minutes, ig_training=training,
        )  # fmt: skip
    except (SettingsError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(token + "\n")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, as a traceback shows."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        yield found
        found = found.__cause__ or found.__context__


def main() -> None:
    """``scr``: a command that fails on a database error ends as a traceback would, each error
    of the chain with its frames, but each said as :func:`engine.db.error_text` says it, not as
    it reads: PostgreSQL's detail can quote the row it failed on (an NHS number, a record's
    content), also inside another error's words, and a command's output is kept in job logs
    that are read with none of the record's protections (the API logs one the same way)."""
    try:
        app()
    except Exception as exc:
        chain = list(_chain(exc))
        database = [e for e in chain if isinstance(e, DBAPIError | psycopg.Error)]
        if not database:
            raise
        said = []
        for e in reversed(chain):
            text = error_text(e)
            for d in database:  # a wrapper that quotes a database error quotes it as said
                text = text.replace(str(d), error_text(d).split(": ", 1)[-1])
            frames = "".join(traceback.format_tb(e.__traceback__))
            said.append(f"Traceback (most recent call last):\n{frames}{text}\n")
        sys.stderr.write("\n".join(said))
        raise SystemExit(1) from None
