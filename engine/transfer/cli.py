"""``scr transfer``: a care-home system's client (sign and send a message) and the registration
of the keys senders sign with.

Store helpers come from ``engine.cli`` when a command runs (it mounts this app, so a module
import would be circular).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console

from engine.transfer import signature
from engine.transfer.keys import write_key
from engine.transfer.message import header_of

transfer_app = typer.Typer(
    help="Red-bag transfers: send messages, register signing keys", no_args_is_help=True
)
_err = Console(stderr=True, soft_wrap=True)  # a path or a command is never broken


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


@transfer_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Argument(help="Where to write the new private key (PEM)")],
) -> None:
    """Make an Ed25519 signing key; print its public half to register with scr."""
    key = signature.new_key()
    try:
        write_key(out, key)
    except FileExistsError:
        raise _fail(f"{out} exists already: a key is never overwritten") from None
    sys.stdout.write(signature.public_pem(key))


@transfer_app.command("register-key")
def register_key(
    org: Annotated[str, typer.Argument(help="The sender's ODS code")],
    public_key: Annotated[Path, typer.Argument(help="The sender's public key (PEM)")],
    by: Annotated[str, typer.Option(help="Who vouched for the key")] = "cli",
) -> None:
    """Register (or replace) the key an organisation's messages must be signed with."""
    from engine.cli import _settings, _store
    from engine.directory import org_kind
    from engine.transfer.store import register_key as register

    try:
        pem = public_key.read_text(encoding="ascii")
        signature.load_public(pem)
    except (OSError, ValueError) as exc:
        raise _fail(f"{public_key}: {exc}") from None
    with _store(_settings()) as engine, engine.begin() as conn:
        if org_kind(conn, org) not in ("care-home", "hospital"):
            raise _fail(f"{org} is not a care home or hospital in the directory")
        register(conn, org, pem, by, datetime.now(UTC))
    Console().print(f"registered the signing key of {org}")


@transfer_app.command("example")
def example(
    nhs_number: Annotated[str, typer.Option("--nhs", help="The resident's NHS number")],
    family: Annotated[str, typer.Option(help="Family name, as the record holds it")],
    given: Annotated[str, typer.Option(help="Given name")],
    born: Annotated[str, typer.Option(help="Date of birth, YYYY-MM-DD, as the record holds it")],
    sender: Annotated[str, typer.Option("--from", help="The care home's ODS code")],
    destination: Annotated[str, typer.Option("--to", help="The hospital's ODS code")],
    base: Annotated[str, typer.Option(help="The deployment's canonical base")] = (
        "https://fhir.scr.example/"
    ),
) -> None:
    """Print an unsigned care-home transfer for a resident, to see the shape a care-home system
    sends (or to try ``scr transfer send``): the readings and the rest are examples."""
    from engine.transfer.form import (
        Baseline,
        Contact,
        Medicine,
        Person,
        TransferForm,
        transfer_message,
    )
    from engine.transfer.news2 import Vitals

    now = datetime.now(UTC)
    usual = Baseline((now - timedelta(days=30)).date(), 16, 96, 130, 76, 36.6, "A")
    form = TransferForm(
        person=Person(nhs_number, family, given, born),
        reason="Example: fall this morning, hip pain, more confused than usual",
        vitals=Vitals(22, 94, False, 105, 98, "C", 37.9), completed_by="Example nurse",
        observed_at=now - timedelta(minutes=10), baseline=usual,
        medicines=[Medicine("Paracetamol 500mg tablets", now)],
        allergies=["Penicillin"], for_cpr=None, belongings=["Glasses"],
        contacts=[Contact("Example daughter", "Daughter, next of kin", "07700 900123")],
    )  # fmt: skip
    doc = transfer_message(form, sender=sender, destination=destination, now=now, base=base)
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


@transfer_app.command("send")
def send(
    bundle: Annotated[Path, typer.Argument(help="The message Bundle (JSON), unsigned")],
    to: Annotated[str, typer.Option("--to", help="scr's base URL")],
    key: Annotated[Path, typer.Option("--key", help="The sender's private key (PEM)")],
    token: Annotated[str, typer.Option(envvar="SCR_TOKEN", help="Bearer token")] = "",
) -> None:
    """Sign a red-bag message as its sender and send it; print scr's response."""
    try:
        doc: Any = orjson.loads(bundle.read_bytes())
        private = signature.load_private(key.read_bytes())
        sender = header_of(doc).sender
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        raise _fail(f"cannot read the message or key: {exc}") from None
    except (KeyError, IndexError, TypeError):
        raise _fail(f"{bundle}: not a message Bundle with a MessageHeader first") from None
    signed = signature.sign(doc, private, sender, datetime.now(UTC))
    headers = {"Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = httpx.post(
            to.rstrip("/") + "/fhir/$process-message", content=orjson.dumps(signed),
            headers=headers, timeout=30.0,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {to}: {exc}", 1) from None
    sys.stdout.write(answer.text + "\n")
    if answer.status_code != 200:
        raise typer.Exit(1)
