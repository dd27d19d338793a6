"""The red-bag pages: a care home starts a transfer from a resident's record, a hospital works
its inbox (view, acknowledge, discharge), and both see the status history and print the form.

The form is prefilled from what the read path releases to the user (``record_of``: decided and
audited like any view), and a submitted form becomes the same signed message a care-home system
would send, taken in by the same ``receive``. JSON stays at ``/transfers`` (the API); these
pages live at ``/inbox`` and ``/record/{nhs}/transfer``.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, cast
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from consent import Request as Asked
from consent import Who
from engine.api.deps import context, services
from engine.api.errors import FhirError
from engine.api.records import people_for, record_of
from engine.api.transfer import acknowledge, detail, inbox, listed, visible
from engine.directory import organisations
from engine.transfer import news2, signature
from engine.transfer.form import (
    DischargeForm,
    Medicine,
    Person,
    TransferForm,
    discharge_message,
    transfer_message,
)  # fmt: skip
from engine.transfer.keys import OwnKey, org_key
from engine.transfer.parties import acknowledgement, may_take_part
from engine.transfer.receive import receive
from engine.transfer.rules import Refused
from engine.web import session
from engine.web.pages import _page, _signed_in, _to, notice_first, templates
from engine.web.summary import compose

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
Optional = Annotated[str, Form()]
_INBOX = "/inbox"
_TAGS = re.compile(r"<[^>]+>")
templates.env.globals["spo2_scales"] = news2.SCALES


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _prefill(request: Request, who: Who, nhs_number: str) -> dict[str, Any] | None:
    """What the user may see of the person, shaped for the form; ``None`` if nothing."""
    svc = services(request)
    people = people_for(svc.reader, nhs_number)
    if len(people) != 1:
        return None
    released = record_of(svc.reader, who, context(request), people[0], Asked("everything"))
    if not released.items:
        return None
    view = compose(released.resources, svc.policy, {})
    by_key = {s.key: s for s in (*view.summary, *view.details)}

    def labels(key: str) -> list[str]:
        found = [i.label for i in by_key[key].items] if key in by_key else []
        return list(dict.fromkeys(found))

    person = view.person
    return {
        "given": person.given if person else "", "family": person.family if person else "",
        "born": person.born if person else "",
        "medicines": "\n".join(labels("medications-current")),
        "allergies": "\n".join(labels("allergies")),
        "contacts": "; ".join(labels("contacts")),
        "advance": "; ".join(labels("advance-decisions")),
        "legal": "; ".join(labels("legal")),
    }  # fmt: skip


def _kind_of(request: Request, kind: str) -> list[tuple[str, str]]:
    with services(request).engine.connect() as conn:
        return [(e.code, e.name) for e in organisations(conn).values() if e.kind == kind]


def _send(request: Request, who: Who, doc: dict[str, Any]) -> str | list[str]:
    """Sign ``doc`` as the user's organisation and take it in; the transfer id, or problems."""
    svc = services(request)
    try:
        key = org_key(svc.engine, svc.settings.data_dir, who.org, who.user_id)
    except OwnKey as exc:
        return [str(exc)]
    signed = signature.sign(doc, key, who.org, datetime.now(UTC))
    try:
        receive(inbox(svc), who, context(request), orjson.dumps(signed))
    except Refused as exc:
        return [f"{p.diagnostics} ({p.expression})" for p in exc.problems]
    return str(doc["entry"][0]["resource"]["id"])


@router.get("/record/{nhs_number}/transfer", response_class=HTMLResponse)
def start(request: Request, nhs_number: str) -> Response:
    who = _signed_in(request)
    if who is None:
        return _to("/")
    notice = notice_first(request, who, f"/record/{quote(nhs_number)}/transfer")
    if notice is not None:
        return notice
    if who.org_kind != "care-home" or not may_take_part(who):
        why = "Only care-home staff start a transfer"
        return _page(request, "transfer_form.html", 403, who=who, nhs_number=nhs_number,
                     error=why, prefill=None, hospitals=[])  # fmt: skip
    prefill = _prefill(request, who, nhs_number)
    status = 200 if prefill else 404
    none = "You have no record you may see for this person"
    return _page(request, "transfer_form.html", status, who=who, nhs_number=nhs_number,
                 prefill=prefill, hospitals=_kind_of(request, "hospital"),
                 error=None if prefill else none)  # fmt: skip


def _int(value: str, name: str, problems: list[str]) -> int:
    try:
        return int(value)
    except ValueError:
        problems.append(f"{name}: enter a whole number")
        return 0


@router.post("/record/{nhs_number}/transfer")
def send_transfer(
    request: Request, nhs_number: str, csrf_token: Field, hospital: Field, reason: Field,
    given: Field, family: Field, born: Field, respiration_rate: Field, spo2: Field,
    systolic_bp: Field, pulse: Field, consciousness: Field, temperature: Field,
    on_oxygen: Optional = "", spo2_scale: Optional = "1", medicines: Optional = "",
    allergies: Optional = "", for_cpr: Optional = "", advance: Optional = "",
    legal: Optional = "", about_me: Optional = "", contacts: Optional = "",
    infection: Optional = "", belongings: Optional = "", step: Optional = "review",
) -> Response:  # fmt: skip
    """``step`` is ``review`` (check what was entered, NEWS2 computed), ``edit`` (back to the
    form with what was entered) or ``send``; nothing is sent before a review."""
    session.check_csrf(request, csrf_token)
    entered = {
        "hospital": hospital, "reason": reason, "given": given, "family": family, "born": born,
        "respiration_rate": respiration_rate, "spo2": spo2, "systolic_bp": systolic_bp,
        "pulse": pulse, "consciousness": consciousness, "temperature": temperature,
        "on_oxygen": on_oxygen, "spo2_scale": spo2_scale, "medicines": medicines,
        "allergies": allergies, "for_cpr": for_cpr, "advance": advance, "legal": legal,
        "about_me": about_me, "contacts": contacts, "infection": infection,
        "belongings": belongings,
    }  # fmt: skip
    who = _signed_in(request)
    if who is None:
        return _to("/")
    problems: list[str] = []
    acvpu = cast(
        news2.Consciousness, consciousness if consciousness in ("A", "C", "V", "P", "U") else "A"
    )
    try:
        temp = float(temperature)
    except ValueError:
        problems.append("temperature: enter a number such as 37.2")
        temp = 0.0
    vitals = news2.Vitals(
        _int(respiration_rate, "respiration rate", problems), _int(spo2, "SpO2", problems),
        on_oxygen == "yes", _int(systolic_bp, "systolic blood pressure", problems),
        _int(pulse, "pulse", problems), acvpu, temp, 2 if spo2_scale == "2" else 1,
    )  # fmt: skip
    meds = [Medicine(*(part.strip() for part in [*line.split("|", 1), ""][:2]))
            for line in _lines(medicines)]  # fmt: skip
    form = TransferForm(
        person=Person(nhs_number, family, given, born), reason=reason, vitals=vitals,
        completed_by=who.name, medicines=meds, allergies=_lines(allergies),
        for_cpr={"yes": True, "no": False}.get(for_cpr), advance_decisions=advance, legal=legal,
        about_me=about_me, contacts=contacts, infection_status=infection,
        belongings=_lines(belongings),
    )  # fmt: skip
    hospitals = _kind_of(request, "hospital")
    if not problems and step == "review":
        return _page(request, "transfer_form.html", 200, who=who, nhs_number=nhs_number,
                     prefill=entered, hospitals=hospitals, review=True,
                     news2_total=news2.total(vitals), news2_risk=news2.risk(vitals),
                     news2_scale=news2.SCALES[vitals.spo2_scale],
                     hospital_name=dict(hospitals).get(hospital, hospital))  # fmt: skip
    if not problems and step == "send":
        base = services(request).settings.canonical_base
        doc = transfer_message(form, sender=who.org, destination=hospital,
                               now=datetime.now(UTC), base=base)  # fmt: skip
        sent = _send(request, who, doc)
        if isinstance(sent, str):
            return _to(f"{_INBOX}/{quote(sent)}")
        problems = sent
    status, error = (422, "The transfer was not sent") if problems else (200, None)
    return _page(request, "transfer_form.html", status, who=who, nhs_number=nhs_number,
                 prefill=entered, hospitals=hospitals, problems=problems,
                 error=error)  # fmt: skip


@router.get(_INBOX, response_class=HTMLResponse)
def inbox_page(request: Request) -> Response:
    who = _signed_in(request)
    if who is None:
        return _to("/")
    notice = notice_first(request, who, _INBOX)
    if notice is not None:
        return notice
    rows = listed(services(request), who, context(request))
    return _page(request, "inbox.html", who=who, rows=rows)


def _sections(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    composition: dict[str, Any] = next(
        (e["resource"] for e in bundle.get("entry", [])
         if e.get("resource", {}).get("resourceType") == "Composition"), {},
    )  # fmt: skip
    return [
        (s.get("title", ""), _TAGS.sub("", s.get("text", {}).get("div", "")))
        for s in composition.get("section", [])
    ]


@router.get(_INBOX + "/{transfer_id}", response_class=HTMLResponse)
def transfer_page(request: Request, transfer_id: str) -> Response:
    who = _signed_in(request)
    if who is None:
        return _to("/")
    notice = notice_first(request, who, f"{_INBOX}/{quote(transfer_id)}")
    if notice is not None:
        return notice
    svc = services(request)
    try:
        row = visible(svc, who, context(request), transfer_id)
    except FhirError:
        return _page(request, "transfer.html", 404, who=who, shown=None)
    shown = detail(svc, row)
    messages = [(m["event"], _sections(m["bundle"])) for m in shown["messages"]]
    can_discharge = who.org == row.hospital and row.status == "acknowledged"
    can_ack = acknowledgement(who, row) is not None
    return _page(request, "transfer.html", who=who, shown=shown, messages=messages,
                 can_ack=can_ack, can_discharge=can_discharge)  # fmt: skip


@router.post(_INBOX + "/{transfer_id}/acknowledge")
def acknowledge_page(request: Request, transfer_id: str, csrf_token: Field) -> Response:
    session.check_csrf(request, csrf_token)
    who = _signed_in(request)
    if who is None:
        return _to("/")
    with contextlib.suppress(FhirError):
        acknowledge(services(request), who, context(request), transfer_id)
    return _to(f"{_INBOX}/{quote(transfer_id)}")


@router.post(_INBOX + "/{transfer_id}/discharge")
def discharge(
    request: Request, transfer_id: str, csrf_token: Field, diagnoses: Field,
    started: Optional = "", stopped: Optional = "", changed: Optional = "",
    follow_up: Optional = "", returned: Optional = "",
) -> Response:  # fmt: skip
    session.check_csrf(request, csrf_token)
    who = _signed_in(request)
    if who is None:
        return _to("/")
    notice = notice_first(request, who, f"{_INBOX}/{quote(transfer_id)}")
    if notice is not None:
        return notice
    svc = services(request)
    try:
        row = visible(svc, who, context(request), transfer_id)
    except FhirError:
        return _page(request, "transfer.html", 404, who=who, shown=None)
    form = DischargeForm(
        Person(row.nhs_number, "", "", ""), _lines(diagnoses), _lines(started), _lines(stopped),
        _lines(changed), follow_up, _lines(returned), who.name,
    )  # fmt: skip
    doc = discharge_message(form, sender=who.org, destination=row.care_home,
                            transfer_id=row.id, now=datetime.now(UTC),
                            base=svc.settings.canonical_base)  # fmt: skip
    sent = _send(request, who, doc)
    if isinstance(sent, list):
        shown = detail(svc, row)
        return _page(request, "transfer.html", 422, who=who, shown=shown,
                     messages=[(m["event"], _sections(m["bundle"])) for m in shown["messages"]],
                     can_ack=False, can_discharge=True, problems=sent)  # fmt: skip
    return _to(f"{_INBOX}/{quote(row.id)}")
