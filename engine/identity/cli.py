"""``scr identity``: the review queue, manual link and unlink, history, and a full relink.

Commands open the store through ``engine.cli``'s helpers, imported when a command runs:
``engine.cli`` mounts this app, so importing it at module level would be circular.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from engine.identity.index import (
    IdentityError,
    history,
    link,
    queue,
    relink_all,
    unlink,
)
from engine.identity.members import members_of_patient
from engine.operator import operator_view

identity_app = typer.Typer(
    help="Who is who: the person index, its review queue and link history",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the link history)")]
WhoOpt = Annotated[str | None, typer.Option("--who", help="Who decided (default: the login name)")]
_err = Console(stderr=True, soft_wrap=True)  # a path or a command is never broken


def _who(who: str | None) -> str:
    return who or getpass.getuser()


@identity_app.command("queue")
def queue_cmd(as_json: JsonOpt = False) -> None:
    """Pairs the rules could neither link nor keep apart, highest score first."""
    from engine.cli import _print_json, _settings, _store

    with _store(_settings(), reading=True) as engine:
        items = queue(engine)
        operator_view(engine, "identity queue")
    if as_json:
        _print_json([i.brief() for i in items])
        return
    table = Table(title=f"review queue ({len(items)})")
    for col in ("id", "score", "rule", "patient a", "patient b", "why"):
        table.add_column(col)
    for i in items:
        table.add_row(str(i.id), f"{i.score:.1f}", i.rule, i.patient_a, i.patient_b, i.reasons[0])
    Console().print(table)


@identity_app.command("link")
def link_cmd(
    a: str, b: str, reason: ReasonOpt, who: WhoOpt = None, as_json: JsonOpt = False
) -> None:
    """Put two Patients in one person, and keep them together from now on."""
    from engine.cli import _print_json, _settings, _store

    try:
        with _store(_settings()) as engine:
            person = link(engine, a, b, who=_who(who), reason=reason)
    except IdentityError as exc:
        _err.print(f"[red]not linked:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        _print_json({"person": person, "patients": [a, b]})
    else:
        Console().print(f"{a} and {b} are person {person}")


@identity_app.command("unlink")
def unlink_cmd(
    a: str, b: str, reason: ReasonOpt, who: WhoOpt = None, as_json: JsonOpt = False
) -> None:
    """Separate two Patients, and keep them apart from now on."""
    from engine.cli import _print_json, _settings, _store

    try:
        with _store(_settings()) as engine:
            person_a, person_b = unlink(engine, a, b, who=_who(who), reason=reason)
    except IdentityError as exc:
        _err.print(f"[red]not unlinked:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        _print_json({"people": {a: person_a, b: person_b}})
    else:
        Console().print(f"{a} is person {person_a}; {b} is person {person_b}")


@identity_app.command("history")
def history_cmd(patient: str, as_json: JsonOpt = False) -> None:
    """Every link, unlink and review decision involving a Patient: who, when and why."""
    from engine.cli import _print_json, _settings, _store

    with _store(_settings(), reading=True) as engine:
        events = history(engine, patient)
        with engine.connect() as conn:
            person = members_of_patient(conn, patient)
        operator_view(
            engine, f"identity history {patient}", (f"Patient/{patient}",),
            patient_id=person.person_id if person else None,
            nhs_number=person.nhs_number if person else None,
        )  # fmt: skip
    if as_json:
        _print_json([e.brief() for e in events])
        return
    table = Table(title=f"link history of {patient}")
    for col in ("at", "action", "other", "person", "who", "manual", "why"):
        table.add_column(col)
    for e in events:
        table.add_row(
            e.at.isoformat(timespec="seconds"),
            e.action,
            e.other_patient_id or "",
            e.person_id or "",
            e.who,
            "yes" if e.manual else "",
            e.reason,
        )
    Console().print(table)


@identity_app.command("relink")
def relink_cmd(as_json: JsonOpt = False) -> None:
    """Re-evaluate every stored Patient (after the rules changed); manual decisions hold."""
    from engine.cli import _print_json, _settings, _store

    with _store(_settings()) as engine:
        summary = relink_all(engine)
    if as_json:
        _print_json(summary.as_dict())
    else:
        for key, value in summary.as_dict().items():
            Console().print(f"{key}: {value:,}")
