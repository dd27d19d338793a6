"""The red-bag pages: a care home starts a transfer from a resident's record, a hospital works
its inbox (view, acknowledge, discharge), and both see the status history and print the form.

The form is prefilled from what the read path releases to the user (``record_of``: decided and
audited like any view), and a submitted form becomes the same signed message a care-home system
would send, taken in by the same ``receive``. JSON stays at ``/transfers`` (the API); these
pages live at ``/inbox`` and ``/record/{nhs}/transfer``.
"""

from __future__ import annotations

import contextlib
import html
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
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
    NEWS2_TOTAL,
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
from engine.transfer.store import opening_messages
from engine.web import session
from engine.web.pages import _page, _signed_in, _to, notice_first
from engine.web.summary import compose
from engine.web.templating import templates

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
Optional = Annotated[str, Form()]
_INBOX = "/inbox"
_TAGS = re.compile(r"<[^>]+>")
templates.env.globals["spo2_scales"] = news2.SCALES
templates.env.globals["acvpu"] = news2.ACVPU


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


def _names(request: Request) -> dict[str, str]:
    """ODS code → organisation name: people triage by names, not codes."""
    with services(request).engine.connect() as conn:
        return {code: e.name for code, e in organisations(conn).items()}


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


#: A problem with what was entered: the field it is about (``None``: the message as a whole)
#: and what to do, in the words of the error summary that links to the field.
Problem = tuple[str | None, str]
#: The observations' names in the error messages.
_READINGS = {
    "respiration_rate": "respiration rate",
    "spo2": "SpO2",
    "systolic_bp": "systolic blood pressure",
    "pulse": "pulse",
    "temperature": "temperature",
}


def _reading(entered: dict[str, str], name: str, problems: list[Problem]) -> float:
    """A reading as typed, or 0 with the problem: not a number, or not one a person can have."""
    text, what = entered[name].strip(), _READINGS[name]
    low, high = news2.PLAUSIBLE[name]
    whole = name != "temperature"
    try:
        value = float(int(text)) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number such as 37.2"
        problems.append((name, f"Enter the {what} as {kind}"))
        return 0.0
    if not low <= value <= high:
        problems.append((name, f"Enter the {what} between {low:g} and {high:g}: check the reading"))
    return value


def _birth_date(text: str, problems: list[Problem]) -> None:
    try:
        born = date.fromisoformat(text.strip())
    except ValueError:
        problems.append(("born", "Enter the date of birth as YYYY-MM-DD, such as 1932-04-01"))
        return
    if born > date.today():
        problems.append(("born", "The date of birth must be in the past"))


def _entered(entered: dict[str, str], hospitals: list[tuple[str, str]]) -> list[Problem]:
    """What is missing or wrong in a transfer form, in the order the form asks for it."""
    problems: list[Problem] = []
    for name, what in (("given", "given name"), ("family", "family name")):
        if not entered[name].strip():
            problems.append((name, f"Enter the {what}"))
    _birth_date(entered["born"], problems)
    if entered["hospital"] not in dict(hospitals):
        problems.append(("hospital", "Choose the hospital"))
    if not entered["reason"].strip():
        problems.append(("reason", "Enter the reason and current concern"))
    return problems


@router.post("/record/{nhs_number}/transfer")
def send_transfer(
    request: Request, nhs_number: str, csrf_token: Field, hospital: Optional = "",
    reason: Optional = "", given: Optional = "", family: Optional = "", born: Optional = "",
    respiration_rate: Optional = "", spo2: Optional = "", systolic_bp: Optional = "",
    pulse: Optional = "", consciousness: Optional = "", temperature: Optional = "",
    on_oxygen: Optional = "", spo2_scale: Optional = "1", medicines: Optional = "",
    allergies: Optional = "", for_cpr: Optional = "", advance: Optional = "",
    legal: Optional = "", about_me: Optional = "", contacts: Optional = "",
    infection: Optional = "", belongings: Optional = "", step: Optional = "review",
) -> Response:  # fmt: skip
    """``step`` is ``review`` (check what was entered, NEWS2 computed), ``edit`` (back to the
    form with what was entered) or ``send``; nothing is sent before a review. Every field is
    optional to FastAPI, so that a blank one comes back on the form with its problem, never as
    a bare 400."""
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
    hospitals = _kind_of(request, "hospital")
    problems = _entered(entered, hospitals)
    readings = {name: _reading(entered, name, problems) for name in _READINGS}
    if consciousness not in news2.ACVPU:
        problems.append(("consciousness", "Choose the level of consciousness (ACVPU)"))
    vitals = news2.Vitals(
        int(readings["respiration_rate"]), int(readings["spo2"]), on_oxygen == "yes",
        int(readings["systolic_bp"]), int(readings["pulse"]),
        consciousness if consciousness in news2.ACVPU else "A",
        readings["temperature"], 2 if spo2_scale == "2" else 1,
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
        problems = [(None, p) for p in sent]
    status, error = (422, "The transfer was not sent") if problems else (200, None)
    return _page(request, "transfer_form.html", status, who=who, nhs_number=nhs_number,
                 prefill=entered, hospitals=hospitals, problems=problems,
                 errors={f: text for f, text in problems if f}, error=error)  # fmt: skip


@router.get(_INBOX, response_class=HTMLResponse)
def inbox_page(request: Request) -> Response:
    who = _signed_in(request)
    if who is None:
        return _to("/")
    notice = notice_first(request, who, _INBOX)
    if notice is not None:
        return notice
    svc = services(request)
    rows = listed(svc, who, context(request))
    with svc.engine.connect() as conn:
        opening = opening_messages(conn, [r.id for r in rows])
    triage = {tid: _triage(orjson.loads(raw)) for tid, raw in opening.items()}
    return _page(request, "inbox.html", who=who, rows=rows, org_names=_names(request),
                 triage=triage)  # fmt: skip


def _triage(bundle: dict[str, Any]) -> dict[str, str]:
    """What a hospital sorts its inbox by: who, why, and how unwell (NEWS2), from the message."""
    resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
    person: dict[str, Any] = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    name: dict[str, Any] = next(iter(person.get("name", [])), {})
    score: dict[str, Any] = next(
        (r for r in resources if r.get("resourceType") == "Observation"
         and any(c.get("code") == NEWS2_TOTAL for c in r.get("code", {}).get("coding", []))),
        {},
    )  # fmt: skip
    reason = dict(_sections(bundle)).get("Reason for transfer", "")
    return {
        "name": " ".join([*name.get("given", []), name.get("family", "")]).strip(),
        "news2": str(score.get("valueQuantity", {}).get("value", "")),
        "reason": reason,
    }


def _sections(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    composition: dict[str, Any] = next(
        (e["resource"] for e in bundle.get("entry", [])
         if e.get("resource", {}).get("resourceType") == "Composition"), {},
    )  # fmt: skip
    return [
        (s.get("title", ""), html.unescape(_TAGS.sub("", s.get("text", {}).get("div", ""))))
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
                 can_ack=can_ack, can_discharge=can_discharge,
                 org_names=_names(request))  # fmt: skip


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
    request: Request, transfer_id: str, csrf_token: Field, diagnoses: Optional = "",
    started: Optional = "", stopped: Optional = "", changed: Optional = "",
    follow_up: Optional = "", returned: Optional = "",
) -> Response:  # fmt: skip
    """A refused discharge comes back with what was typed, and why."""
    session.check_csrf(request, csrf_token)
    typed = {"diagnoses": diagnoses, "started": started, "stopped": stopped,
             "changed": changed, "follow_up": follow_up, "returned": returned}  # fmt: skip
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
    sent: str | list[str] = ["Enter the diagnoses, one a line"]
    if form.diagnoses:
        doc = discharge_message(form, sender=who.org, destination=row.care_home,
                                transfer_id=row.id, now=datetime.now(UTC),
                                base=svc.settings.canonical_base)  # fmt: skip
        sent = _send(request, who, doc)
    if isinstance(sent, list):
        shown = detail(svc, row)
        return _page(request, "transfer.html", 422, who=who, shown=shown,
                     messages=[(m["event"], _sections(m["bundle"])) for m in shown["messages"]],
                     can_ack=False, can_discharge=True, problems=sent, typed=typed,
                     org_names=_names(request))  # fmt: skip
    return _to(f"{_INBOX}/{quote(row.id)}")
