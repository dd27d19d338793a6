"""The red-bag pages: a care home starts a transfer from a resident's record, a hospital works
its inbox (view, acknowledge, discharge), and both see the status history and print the form.

The form is prefilled from what the read path releases to the user (``record_of``: decided and
audited like any view), and a submitted form becomes the same signed message a care-home system
would send, taken in by the same ``receive``. JSON stays at ``/transfers`` (the API); these
pages live at ``/inbox`` and ``/record/{nhs}/transfer``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, StringConstraints

from adapters.values import UK, nhs_number_valid
from consent import Decision, Who, section_of, user_refusals
from consent import Request as Asked
from consent.facts import organisation_reference
from engine.api.deps import SESSION_COOKIE, context, refuse, services, target
from engine.api.errors import FhirError
from engine.api.records import explanation, people_for, record_of
from engine.api.transfer import acknowledge, detail, inbox, listed, refused_step, seen
from engine.directory import organisations
from engine.gate import organisation_codes
from engine.transfer import news2, signature
from engine.transfer.entry import (
    ABOUT_ME,
    BAG,
    news2_so_far,
    packed,
    read_form,
    reviewed_medicines,
    unsaid,
)
from engine.transfer.entry import lines as _lines
from engine.transfer.form import (
    DischargeForm,
    Person,
    changes_of,
    discharge_message,
    transfer_message,
    written,
)
from engine.transfer.keys import OwnKey, org_key
from engine.transfer.parties import acknowledgement, may_take_part
from engine.transfer.reading import bag_of, sections, triage
from engine.transfer.receive import receive
from engine.transfer.rules import UUID, Refused
from engine.transfer.signature import SigningKeyError
from engine.transfer.store import TransferRow, opening_messages, transfer
from engine.web import session
from engine.web.current import current
from engine.web.pages import _page, _signed_in, _to, notice_first, org_names, to_sign_in
from engine.web.summary import compose, contact_lines, label, registered_practice
from engine.web.summary import detail as summary_detail
from engine.web.templating import templates, uk_time

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
Optional = Annotated[str, Form()]
_INBOX = "/inbox"
templates.env.globals["spo2_scales"] = news2.SCALES
templates.env.globals["acvpu"] = news2.ACVPU
templates.env.globals["about_me"] = ABOUT_ME
templates.env.globals["bag"] = BAG

log = logging.getLogger(__name__)


def _prefill(request: Request, who: Who, nhs_number: str) -> dict[str, Any] | None:
    """What the user may see of the person, shaped for the form; ``None`` if nothing."""
    svc = services(request)
    people = people_for(svc.reader, nhs_number)
    if len(people) != 1:  # no read is made for it, so the attempt is audited here
        number = nhs_number if nhs_number_valid(nhs_number) else None
        explanation(svc.reader, who, context(request), None, number)
        return None
    released = record_of(
        svc.reader, who, context(request), people[0], Asked("everything"), query=target(request)
    )
    if not released.items:
        return None
    today = svc.reader.now().astimezone(UK).date()
    names = org_names(request)
    view = compose(released.resources, svc.policy, names, today)
    # The summary's sections, which list current items only: the details list ended ones too
    # (a refused LPA, an ended DoLS), which the hospital would read as the resident's now.
    by_key = {s.key: s for s in view.summary}

    def labels(key: str) -> list[str]:
        found = [i.label for i in by_key[key].items] if key in by_key else []
        return list(dict.fromkeys(found))

    person = view.person
    contacts = contact_lines(
        r for r in released.resources
        if section_of(r, svc.policy) == "contacts" and current(r, today.isoformat())
    )  # fmt: skip
    return {
        "given": person.given if person else "", "family": person.family if person else "",
        "born": person.born if person else "",
        "gp_practice": _practice(request, released.resources, names, today.isoformat()),
        "medicines": "\n".join(labels("medications-current")),
        "allergies": "\n".join(labels("allergies")),
        "contacts": "\n".join(contacts),
        "advance": "; ".join(labels("advance-decisions")),
        "legal": "; ".join(labels("legal")),
        "for_cpr": "" if view.for_cpr is None else "yes" if view.for_cpr else "no",
    }  # fmt: skip


def _practice(
    request: Request, released: Sequence[Mapping[str, Any]], names: Mapping[str, str], today: str
) -> str:
    """The GP practice of the registrations released (``summary.registered_practice``); a
    SystmOne or EMIS registration names its practice by a reference, looked up here, as the
    policy's facts look it up."""
    svc = services(request)
    registrations = [r for r in released if section_of(r, svc.policy) == "registrations"]
    refs = {ref for r in registrations if (ref := organisation_reference(r))}
    orgs: dict[str, str] = {}
    if refs:
        with svc.engine.connect() as conn:
            orgs = organisation_codes(conn, refs)
    return registered_practice(registrations, orgs, names, today)


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
    except (SigningKeyError, OSError) as exc:  # the key file kept for it is damaged
        log.error("the signing key kept for %s cannot be used: %s", who.org, exc)
        return ["The signing key kept for your organisation cannot be read: nothing was sent. "
                "Ask your administrator to check it."]  # fmt: skip
    signed = orjson.dumps(signature.sign(doc, key, who.org, datetime.now(UTC)))
    if len(signed) > svc.settings.transfer_max_bytes:  # the limit a message posted has
        return [f"The message would be {len(signed):,} bytes, over the limit of "
                f"{svc.settings.transfer_max_bytes:,}: shorten the longest text"]  # fmt: skip
    try:
        receive(inbox(svc), who, context(request), signed)
    except Refused as exc:
        return [f"{p.diagnostics} ({p.expression})" for p in exc.problems]
    return str(doc["entry"][0]["resource"]["id"])


def _sent_already(request: Request, who: Who, message_id: str) -> bool:
    """Whether the user's organisation opened the transfer ``message_id`` names: a second send
    of one review (its timestamps differ, so the message would be a conflict) goes to it."""
    with services(request).engine.connect() as conn:
        row = transfer(conn, message_id)
    return row is not None and row.care_home == who.org


def _care_home_user(request: Request, nhs_number: str) -> Who | Response:
    """The signed-in care-home user past the notice, or the page to answer with instead:
    only care-home staff start a transfer (nor is a signing key made for anyone else)."""
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    notice = notice_first(request, who, f"/record/{quote(nhs_number)}/transfer")
    if notice is not None:
        return notice
    if who.org_kind != "care-home" or not may_take_part(who):
        number = nhs_number if nhs_number_valid(nhs_number) else None
        refuse(services(request), context(request), "transfer-send", who,
               ("transfer.forbidden",), number, page=True)  # fmt: skip
        why = "Only care-home staff start a transfer"
        return _page(request, "transfer_form.html", 403, who=who, nhs_number=nhs_number,
                     error=why, prefill=None, hospitals=[])  # fmt: skip
    return who


@router.get("/record/{nhs_number}/transfer", response_class=HTMLResponse)
def start(request: Request, nhs_number: str) -> Response:
    found = _care_home_user(request, nhs_number)
    if isinstance(found, Response):
        return found
    who = found
    prefill = _prefill(request, who, nhs_number)
    status = 200 if prefill else 404
    none = "You have no record you may see for this person"
    return _page(request, "transfer_form.html", status, who=who, nhs_number=nhs_number,
                 prefill=prefill, hospitals=_kind_of(request, "hospital"),
                 error=None if prefill else none)  # fmt: skip


class Typed(BaseModel):
    """What the transfer form posts. Every field but the CSRF token may be left out, so that a
    blank one comes back on the form with its problem, never as a bare 400."""

    csrf_token: str
    hospital: str = ""
    reason: str = ""
    given: str = ""
    family: str = ""
    born: str = ""
    gp_practice: str = ""
    respiration_rate: str = ""
    spo2: str = ""
    systolic_bp: str = ""
    pulse: str = ""
    consciousness: str = ""
    temperature: str = ""
    on_oxygen: str = ""
    spo2_scale: str = "1"
    observed: str = ""
    usual_respiration_rate: str = ""
    usual_spo2: str = ""
    usual_systolic_bp: str = ""
    usual_pulse: str = ""
    usual_temperature: str = ""
    usual_consciousness: str = ""
    usual_recorded: str = ""
    medicines: str = ""
    allergies: str = ""
    for_cpr: str = ""
    advance: str = ""
    legal: str = ""
    about_communication: str = ""
    about_matters: str = ""
    about_support: str = ""
    about_mobility: str = ""
    about_eating: str = ""
    about_continence: str = ""
    about_cognition: str = ""
    contacts: str = ""
    infection: str = ""
    belongings: str = ""
    #: The checklist's ticked boxes, sent in ``belongings`` (``entry.packed``).
    bag: list[str] = []
    step: str = "review"
    reviewed: str = ""
    message_id: str = ""


#: The fields that steer the form rather than say what the nurse entered.
_STEERING = frozenset({"csrf_token", "bag", "step", "reviewed", "message_id"})


@router.post("/record/{nhs_number}/transfer")
def send_transfer(request: Request, nhs_number: str, typed: Annotated[Typed, Form()]) -> Response:
    """``step`` is ``review`` (check what was entered, NEWS2 computed), ``edit`` (back to the
    form with what was entered) or ``send``; nothing is sent that was not reviewed as it is
    (``reviewed`` seals the values the review showed, the person's NHS number and the
    message id the review chose: a replayed or altered post, or one for another person, is
    shown for review again). A reviewed transfer sent twice (a double click, or Back and Send)
    is one message id, so the second send goes to the transfer the first opened."""
    session.check_csrf(request, typed.csrf_token)
    step, message_id, hospital = typed.step, typed.message_id, typed.hospital
    entered = typed.model_dump(exclude=set(_STEERING))
    entered["belongings"] = packed(typed.bag, typed.belongings)
    found = _care_home_user(request, nhs_number)
    if isinstance(found, Response):
        return found
    who = found
    hospitals = _kind_of(request, "hospital")
    form, problems = read_form(entered, nhs_number, who.name, dict(hospitals), datetime.now(UTC))
    # a review is of one person's transfer, sent as one message
    shown = entered | {"nhs_number": nhs_number, "message_id": message_id}
    if step == "send" and not (UUID.fullmatch(message_id)
                               and session.sealed(request, shown, typed.reviewed)):  # fmt: skip
        step = "review"
    if not problems and step == "review":  # each time with its day, as it will be sent
        entered["medicines"] = shown["medicines"] = reviewed_medicines(form.medicines)
        if form.observed_at is not None:
            entered["observed"] = shown["observed"] = written(form.observed_at)
        shown["message_id"] = str(uuid.uuid4())
        return _page(request, "transfer_form.html", 200, who=who, nhs_number=nhs_number,
                     prefill=entered, hospitals=hospitals, review=True,
                     news2=news2.said(form.vitals),
                     hospital_name=dict(hospitals).get(hospital, hospital),
                     message_id=shown["message_id"],
                     reviewed=session.seal(request, shown))  # fmt: skip
    if not problems and step == "send":
        if _sent_already(request, who, message_id):
            return _to(f"{_INBOX}/{quote(message_id)}")
        base = services(request).settings.canonical_base
        doc = transfer_message(form, sender=who.org, destination=hospital.strip(),
                               now=datetime.now(UTC), base=base, header_id=message_id)  # fmt: skip
        sent = _send(request, who, doc)
        if isinstance(sent, str) or _sent_already(request, who, message_id):
            return _to(f"{_INBOX}/{quote(message_id)}")  # the second of two sends at once
        problems = [(None, p) for p in sent]
    status, error = (422, "The transfer was not sent") if problems else (200, None)
    return _page(request, "transfer_form.html", status, who=who, nhs_number=nhs_number,
                 prefill=entered, hospitals=hospitals, problems=problems,
                 errors={f: text for f, text in problems if f}, error=error)  # fmt: skip


Reading = Annotated[str, StringConstraints(max_length=16)]


class Observed(BaseModel):
    """What the form's observations post as they are typed, with the form's CSRF token; the
    form's script posts these fields (``news2_fields``)."""

    csrf_token: str
    respiration_rate: Reading = ""
    spo2: Reading = ""
    spo2_scale: Reading = "1"
    on_oxygen: Reading = ""
    systolic_bp: Reading = ""
    pulse: Reading = ""
    consciousness: Reading = ""
    temperature: Reading = ""


templates.env.globals["news2_fields"] = [n for n in Observed.model_fields if n != "csrf_token"]
templates.env.globals["news2_so_far"] = news2_so_far


@router.post("/transfer/news2", response_class=PlainTextResponse)
def news2_now(request: Request, observed: Annotated[Observed, Form()]) -> Response:
    """NEWS2 as the form's observations stand, for the form to show while they are typed
    (``entry.news2_so_far``). It reads nothing of any record, so it asks a session, not a
    decision; it is posted so that readings stay out of addresses and the server's log. A
    refused session's cookie is dropped, as every page drops it (``to_sign_in``), and the
    script asks no more after a refusal, so one stale page is one refusal in the trail."""
    if _signed_in(request) is None:
        refused = PlainTextResponse("Sign in again to see NEWS2", status_code=401)
        if SESSION_COOKIE in request.cookies:
            session.sign_out(refused)
        return refused
    session.check_csrf(request, observed.csrf_token)
    return PlainTextResponse(news2_so_far(observed.model_dump()))


@router.get(_INBOX, response_class=HTMLResponse)
def inbox_page(request: Request) -> Response:
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    notice = notice_first(request, who, _INBOX)
    if notice is not None:
        return notice
    svc = services(request)
    rows = listed(svc, who, context(request))
    with svc.engine.connect() as conn:
        opening = opening_messages(conn, [r.id for r in rows])
    triaged = {tid: triage(orjson.loads(raw)) for tid, raw in opening.items()}
    refusals = user_refusals(who, datetime.now(UTC), svc.policy, "transfer")
    return _page(request, "inbox.html", who=who, rows=rows, org_names=org_names(request),
                 triage=triaged, refusals=refusals)  # fmt: skip


def _change(resource: dict[str, Any], event: str) -> str:
    """What a discharge did to a medicine (started, stopped, changed), as its coded kind
    says: the status alone reads a medicine started and one changed alike."""
    if event != "hospital-discharge" or resource.get("resourceType") != "MedicationStatement":
        return ""
    kinds = [str(code) for _, code in changes_of(resource)]
    return ", ".join(kinds) or "kind not given"


#: How each kind of entry says when it was: a medicine's last dose, a reading's taking.
_WHEN = {"MedicationStatement": "last dose given", "Observation": "taken"}


def _line(resource: dict[str, Any], names: Mapping[str, str], event: str) -> str:
    """One coded entry as a clinician reads it, as the record page words an item; a medicine's
    last dose and a reading's time to the minute, as the care home gave them (a usual
    reading's day), and a discharge's change."""
    parts = [label(resource), _change(resource, event), summary_detail(resource, names)]
    given = resource.get("effectiveDateTime")
    said = _WHEN.get(str(resource.get("resourceType")))
    if said is not None and isinstance(given, str):
        # A dateTime without a time (a year, a month, a day: R4 allows them) is shown as sent.
        parts.append(f"{said} {uk_time(given) if 'T' in given else given}")
    return " · ".join(p for p in parts if p)


def _may_discharge(who: Who, row: TransferRow) -> bool:
    return who.org == row.hospital and row.status == "acknowledged"


def _transfer_view(
    request: Request, who: Who, row: TransferRow, status: int = 200, **more: Any
) -> Response:
    """The transfer page as ``who`` may act on it now; ``more`` adds problems or typed text."""
    shown = detail(services(request), row)
    names = org_names(request)
    can_discharge = _may_discharge(who, row)
    if can_discharge:  # the form starts from what the bag held
        bag = next((bag_of(m["bundle"]) for m in shown["messages"]
                    if m["event"] == "care-home-transfer"), [])  # fmt: skip
        more.setdefault("typed", {"returned": "\n".join(bag)})
    messages = [
        (
            m["event"],
            [(s, [_line(r, names, m["event"]) for r in s.entries]) for s in sections(m["bundle"])],
        )
        for m in shown["messages"]
    ]
    return _page(request, "transfer.html", status, who=who, shown=shown, messages=messages,
                 can_ack=acknowledgement(who, row) is not None,
                 can_discharge=can_discharge, org_names=names,
                 **more)  # fmt: skip


def _seen_by(request: Request, transfer_id: str) -> tuple[Who, TransferRow, Decision] | Response:
    """The signed-in user, the transfer they may see (audited) and the decision that lets
    them, past the notice; else the page to answer with instead."""
    who = _signed_in(request)
    if who is None:
        return to_sign_in(request)
    notice = notice_first(request, who, f"{_INBOX}/{quote(transfer_id)}")
    if notice is not None:
        return notice
    try:
        return who, *seen(services(request), who, context(request), transfer_id)
    except FhirError:
        return _page(request, "transfer.html", 404, who=who, shown=None)


def _visible_to(request: Request, transfer_id: str) -> tuple[Who, TransferRow] | Response:
    """The signed-in user and the transfer they may see (audited), past the notice; else the
    page to answer with instead."""
    found = _seen_by(request, transfer_id)
    return found if isinstance(found, Response) else found[:2]


@router.get(_INBOX + "/{transfer_id}", response_class=HTMLResponse)
def transfer_page(request: Request, transfer_id: str) -> Response:
    found = _visible_to(request, transfer_id)
    if isinstance(found, Response):
        return found
    return _transfer_view(request, *found)


def _as_now(request: Request, row: TransferRow) -> TransferRow:
    """``row`` read again, for a step that was refused: shown as it now stands (moved on by
    another click, a colleague or a message), not as it was read before the step. The read
    was decided and audited already."""
    with services(request).engine.connect() as conn:
        return transfer(conn, row.id) or row


@router.post(_INBOX + "/{transfer_id}/acknowledge")
def acknowledge_page(request: Request, transfer_id: str, csrf_token: Field) -> Response:
    """A refused step (a second click, a transfer moved on) is shown, not passed over."""
    session.check_csrf(request, csrf_token)
    found = _visible_to(request, transfer_id)
    if isinstance(found, Response):
        return found
    who, row = found
    try:
        acknowledge(services(request), who, context(request), transfer_id)
    except FhirError as exc:
        problems = [p.diagnostics for p in exc.problems]
        return _transfer_view(request, who, _as_now(request, row), exc.status, problems=problems)
    return _to(f"{_INBOX}/{quote(row.id)}")


@router.post(_INBOX + "/{transfer_id}/discharge")
def discharge(
    request: Request, transfer_id: str, csrf_token: Field, diagnoses: Optional = "",
    started: Optional = "", stopped: Optional = "", changed: Optional = "",
    follow_up: Optional = "", returned: Optional = "", no_medicine_changes: Optional = "",
) -> Response:  # fmt: skip
    """A refused discharge comes back with what was typed, and why, on the transfer as it now
    stands; only the hospital, and only once it has acknowledged the transfer, as the page
    offers it."""
    session.check_csrf(request, csrf_token)
    typed = {"diagnoses": diagnoses, "started": started, "stopped": stopped,
             "changed": changed, "follow_up": follow_up, "returned": returned,
             "no_medicine_changes": no_medicine_changes}  # fmt: skip
    found = _seen_by(request, transfer_id)
    if isinstance(found, Response):
        return found
    who, row, decision = found
    svc = services(request)
    if not _may_discharge(who, row):  # refused as a step out of turn is, by /transfers
        refused_step(svc, who, context(request), "transfer-discharge", row,
                     "transfer.out-of-turn", decision)  # fmt: skip
        why = f"The transfer is {row.status}: only its hospital discharges it, once acknowledged"
        return _transfer_view(request, who, row, 409, problems=[why])
    form = DischargeForm(
        Person(row.nhs_number, "", "", ""), _lines(diagnoses), _lines(started), _lines(stopped),
        _lines(changed), follow_up, _lines(returned), who.name, bool(no_medicine_changes),
    )  # fmt: skip
    sent: str | list[str] = unsaid(form)
    if not sent:
        doc = discharge_message(form, sender=who.org, destination=row.care_home,
                                transfer_id=row.id, now=datetime.now(UTC),
                                base=svc.settings.canonical_base)  # fmt: skip
        sent = _send(request, who, doc)
    if isinstance(sent, list):
        now = _as_now(request, row)
        return _transfer_view(request, who, now, 422, problems=sent, typed=typed)
    return _to(f"{_INBOX}/{quote(row.id)}")
