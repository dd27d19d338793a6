"""``scr audit``: verify the trail, sign and check checkpoints, export, show the public key.

Commands open the store through ``engine.cli``'s helpers, imported when a command runs:
``engine.cli`` mounts this app, so importing it at module level would be circular.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rich.console import Console

from audit.checkpoint import CheckpointError, make, parse, verify_against
from audit.export import csv_rows, fhir_bundle
from audit.keys import KeyMissing, SigningKeyError, key_id, load_public, public_pem, signing_key
from audit.query import stream
from audit.verify import Report, verify
from engine.settings import Settings

audit_app = typer.Typer(
    help="The audit trail: verify it, sign checkpoints, export it", no_args_is_help=True
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
NewKeyOpt = Annotated[
    bool,
    typer.Option(
        "--new-key",
        help="Make a new signing key if its file is missing, though a checkpoint is kept here",
    ),
]
_err = Console(stderr=True, soft_wrap=True)  # a path or key id is never broken


def _signing_key(settings: Settings, new_key: bool) -> Ed25519PrivateKey:
    """The key in use. A missing key file is replaced only where no checkpoint is kept (first
    use) or when asked (``--new-key``): the IG office checks its checkpoints with the old key's
    public half, and a new key made silently would go on signing as if it were the same one,
    as the console's Verify refuses to."""
    from engine.ig.chain import latest_path

    try:
        return signing_key(settings, create=False)
    except KeyMissing as exc:
        kept = latest_path(settings)
        if kept.exists() and not new_key:
            raise KeyMissing(
                f"{exc}, and a checkpoint it signed is kept in {kept}. Restore the key file, "
                "or pass --new-key to sign from now on with a new key (and give the IG office "
                "its public key: scr audit public-key)"
            ) from None
    return signing_key(settings, made=_say_made)


def _say_made(path: Path, public: Ed25519PublicKey) -> None:
    _err.print(
        f"[yellow]made a new audit signing key[/yellow] {path} (key id {key_id(public)}): "
        "give the IG office its public key (scr audit public-key)"
    )


def _report(report: Report, as_json: bool) -> None:
    from engine.cli import _print_json

    problem = report.problem
    if as_json:
        _print_json(
            {
                "intact": problem is None,
                "entries": report.size,
                "head": report.head.hex(),
                "first_bad_seq": problem.seq if problem else None,
                "problem": problem.reason if problem else None,
            }
        )
    elif problem is None:
        typer.echo(f"intact: {report.size} entries, head {report.head.hex()}")
    else:
        typer.echo(f"NOT INTACT at entry {problem.label}: {problem.reason}", err=True)
    if problem is not None:
        raise typer.Exit(1)


@audit_app.command("verify")
def verify_cmd(
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint the trail must extend")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM public key to check the checkpoint with (default: this store's)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the trail: exit 0 with the count and head hash, or 1 naming the first bad entry."""
    from engine.cli import _progress, _settings, _store

    settings = _settings()
    try:
        with _store(settings, reading=True) as engine:
            if checkpoint is None:
                with _progress("verify") as progress:
                    report = verify(engine, progress=progress)
            else:
                cp = parse(checkpoint.read_bytes())
                public = (
                    load_public(public_key.read_bytes())
                    if public_key
                    else signing_key(settings, create=False).public_key()
                )
                report = verify_against(engine, cp, public)
    except (CheckpointError, SigningKeyError, OSError) as exc:
        _err.print(f"[red]cannot verify:[/red] {exc}")
        raise typer.Exit(2) from None
    _report(report, as_json)


@audit_app.command("checkpoint")
def checkpoint_cmd(new_key: NewKeyOpt = False) -> None:
    """Print a signed checkpoint (size, head hash, time, signature) for the IG office to keep."""
    from engine.cli import _print_json, _settings, _store

    settings = _settings()
    try:
        key = _signing_key(settings, new_key)
        with _store(settings, reading=True) as engine:
            cp = make(engine, key, datetime.now(UTC))
    except (CheckpointError, SigningKeyError, OSError) as exc:
        _err.print(f"[red]no checkpoint:[/red] {exc}")
        raise typer.Exit(1) from None
    _print_json(cp.as_dict())


@audit_app.command("public-key")
def public_key_cmd(new_key: NewKeyOpt = False) -> None:
    """Print the PEM public key that checks this store's checkpoints."""
    from engine.cli import _settings

    try:
        key = _signing_key(_settings(), new_key)
    except (SigningKeyError, OSError) as exc:
        _err.print(f"[red]no key:[/red] {exc}")
        raise typer.Exit(1) from None
    sys.stdout.write(public_pem(key.public_key()))


@audit_app.command("export")
def export_cmd(
    since: Annotated[
        datetime | None,
        typer.Option(help="Entries at or after this UTC time (YYYY-MM-DD[THH:MM:SS])"),
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="fhir or csv")] = "fhir",
) -> None:
    """Export entries as a FHIR Bundle of BALP AuditEvents, or as CSV, on stdout."""
    from engine.cli import _settings, _store

    if format_ not in ("fhir", "csv"):
        _err.print(f"--format must be fhir or csv, not {format_!r}")
        raise typer.Exit(2)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    from engine.identity import patient_lookup
    from engine.operator import operator_view

    settings = _settings()
    out = sys.stdout.buffer
    with _store(settings, reading=True) as engine:
        since_text = f" --since {since.isoformat()}" if since else ""
        # The trail names who read whose record: exporting it is a read too.
        operator_view(engine, f"audit export --format {format_}{since_text}")
        docs = stream(engine, since)
        if format_ == "fhir":
            for piece in fhir_bundle(docs, settings.canonical_base, patient_lookup(engine)):
                out.write(piece)
            out.write(b"\n")
        else:
            for text in csv_rows(docs):
                out.write(text.encode())
    out.flush()
