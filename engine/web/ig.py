"""``/ig``: the IG console for the ``ig-officer`` profile, and 403 for everyone else.

Search the trail (paged, CSV and FHIR export), the break-glass and self-claim review queue,
alerts, the patient access report, charts, and the chain's status with a verify action. Every
page passes ``engine.ig.gate.admit`` first, which audits the request before anything is
shown; an officer who has not acknowledged the confidentiality notice this session is shown
it instead, as on the record pages. Pages show identifiers, codes and counts from the trail,
never the record itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from adapters.values import nhs_number_valid
from audit import query
from audit.alerts import evaluate, load_rules
from audit.daily import daily
from audit.entry import Action
from audit.export import csv_rows, fhir_bundle
from audit.report import lines, load_roles
from audit.search import Filters, Page, SearchError, search
from consent import Who
from engine.access import ReviewError
from engine.api.deps import Services, context, services, user_for
from engine.api.errors import FhirError, Problem
from engine.identity import members_of, patient_lookup, people_with_nhs_number
from engine.ig import chain, facts
from engine.ig import queue as review_queue
from engine.ig.gate import NotIgOfficer, admit, decided, may_use_console
from engine.ig.people import held_by
from engine.web import session
from engine.web.charts import bars
from engine.web.pages import notice_first, org_names, to_sign_in
from engine.web.templating import templates

router = APIRouter(prefix="/ig", include_in_schema=False)
Field = Annotated[str, Form()]
_FILTERS = (
    "patient",
    "user",
    "org",
    "role",
    "profile",
    "purpose",
    "outcome",
    "action",
    "since",
    "until",
)
#: How far back the charts and alerts read by default.
CHART_DAYS = 14
#: ``days`` on the charts: digits (a sign allowed), few enough that ``int`` never refuses them.
_WHOLE = re.compile(r"[+-]?[0-9]{1,9}")


@cache
def _rules() -> dict[str, Any]:
    return load_rules()


@cache
def _roles() -> dict[str, str]:
    return load_roles()


class Refused(Exception):
    """Raised by a console route with the response to send instead (sign in, or 403)."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def refused(_: Request, exc: Exception) -> Response:
    """The app's handler for :class:`Refused`."""
    assert isinstance(exc, Refused)
    return exc.response


def _page(request: Request, name: str, status: int = 200, **values: Any) -> Response:
    values |= {"csrf": session.csrf_token(request)}
    response = templates.TemplateResponse(request, name, values, status_code=status)
    return session.keep_csrf(request, response)


def _signed_in(request: Request) -> Who:
    try:
        return user_for(request, cookie=True)
    except FhirError:
        raise Refused(to_sign_in(request)) from None


def _here(request: Request) -> str:
    """Where the confidentiality notice leads on to: this page, or the console after a form."""
    if request.method != "GET":
        return "/ig"
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _officer(request: Request, action: Action, asked: str, **audit: Any) -> Who:
    """The signed-in IG officer, the request audited first; anyone else is refused (403).
    The console names people (reports, alerts, the trail): an officer who has not
    acknowledged the confidentiality notice gets it instead, unaudited as nothing is shown."""
    who = _signed_in(request)
    svc = services(request)
    now = datetime.now(UTC)
    if may_use_console(who, now, svc.policy):
        notice = notice_first(request, who, _here(request))
        if notice is not None:
            raise Refused(notice)
    try:
        admit(svc.audit, decided(who, context(request), action, asked,
                                 policy=svc.policy, now=now, **audit))  # fmt: skip
    except NotIgOfficer as exc:
        raise Refused(_page(request, "ig_forbidden.html", 403, who=who, why=exc.why)) from None
    return who


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SearchError(f"{name}: a date, YYYY-MM-DD") from None


def _midnight(day: date, zone: tzinfo) -> datetime:
    """When ``day`` starts where ``zone`` keeps time, in UTC: a UK day is 23 or 25 hours long
    when the clocks change, so each end is found on its own day, not by adding 24 hours."""
    return datetime.combine(day, time.min, zone).astimezone(UTC)


def filters_from(args: dict[str, str], zone: tzinfo = UTC) -> Filters:
    """The console's search form as :class:`Filters`; ``until`` is the last day included.
    Days are ``zone``'s: the days of the times the page shows (UTC for the search and its
    export, UK days for the patient's report, which shows local times)."""
    patient = args.get("patient", "").replace(" ", "") or None
    nhs = patient if patient and patient.isdigit() else None
    if nhs is not None and not nhs_number_valid(nhs):
        raise SearchError("patient: not a valid NHS number")
    since = _day("since", args.get("since"))
    until = _day("until", args.get("until"))
    if until is not None and until.year == 9999:
        until = None  # the day after it cannot be written; every entry is before it anyway
    return Filters(
        patient_id=None if nhs else patient,
        nhs_number=nhs,
        user_id=args.get("user") or None,
        org=args.get("org") or None,
        role=args.get("role") or None,
        profile=args.get("profile") or None,
        purpose=args.get("purpose") or None,
        outcome=args.get("outcome") or None,
        action=args.get("action") or None,
        since=_midnight(since, zone) if since else None,
        until=_midnight(until + timedelta(days=1), zone) if until else None,
    )


def _args(request: Request) -> dict[str, str]:
    return {k: request.query_params[k].strip() for k in _FILTERS if request.query_params.get(k)}


@router.get("", response_class=HTMLResponse)
def console(request: Request, after: str | None = None) -> Response:
    args = _args(request)
    try:
        f = filters_from(args)
    except SearchError as exc:
        who = _officer(request, "ig-view", "search")
        return _page(request, "ig_search.html", 400, who=who, args=args, error=str(exc), page=None)
    who = _officer(request, "ig-view", "search?" + f.as_query(), **_about(request, f))
    svc = services(request)
    try:
        page = search(svc.engine, f, after=after, limit=50)
    except SearchError as exc:
        return _page(request, "ig_search.html", 400, who=who, args=args, error=str(exc), page=None)
    query_text = urlencode(args)
    return _page(
        request,
        "ig_search.html",
        who=who,
        args=args,
        page=page,
        query_text=query_text,
        orgs=org_names(request),
        chain_status=chain.status(svc.engine, svc.settings),
    )


def _about(request: Request, f: Filters) -> dict[str, str | None]:
    """The person a search or export is about, for its own entry, by their id and their NHS
    number whichever was asked by: another IG officer looking for who read this person's
    trail finds it by either (one asked by id was found by the id alone)."""
    person, number = f.patient_id, f.nhs_number
    with services(request).engine.connect() as conn:
        if person and not number:
            number = members_of(conn, person).nhs_number
        elif number and not person:
            holders = people_with_nhs_number(conn, number)
            person = holders[0] if len(holders) == 1 else None
    return {"patient_id": person, "nhs_number": number}


def _all(request: Request, f: Filters) -> Iterator[dict[str, Any]]:
    engine = services(request).engine
    after = None
    while True:
        page = search(engine, f, after=after, limit=500)
        yield from page.entries
        if page.next_cursor is None:
            return
        after = page.next_cursor


@router.get("/export")
def export(request: Request, format: str = "csv") -> Response:
    try:
        f = filters_from(_args(request))
    except SearchError as exc:  # the gate first: anyone else is refused (and audited) as ever
        _officer(request, "export", f"format={format}")
        raise FhirError(400, Problem("invalid", str(exc))) from None
    _officer(request, "export", f"format={format}&{f.as_query()}", **_about(request, f))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "fhir":
        svc = services(request)
        body = fhir_bundle(
            _all(request, f), svc.settings.canonical_base, patient_lookup(svc.engine)
        )
        disposition = f'attachment; filename="scr-audit-{stamp}.json"'
        return StreamingResponse(
            body, media_type="application/fhir+json", headers={"Content-Disposition": disposition}
        )
    disposition = f'attachment; filename="scr-audit-{stamp}.csv"'
    return StreamingResponse(
        (row.encode() for row in csv_rows(_all(request, f))),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


def _hours() -> int:
    hours: int = _rules()["rules"]["break-glass-unreviewed"]["hours"]
    return hours


@router.get("/reviews", response_class=HTMLResponse)
def reviews(request: Request, show: str = "open") -> Response:
    who = _officer(request, "ig-view", f"reviews?show={show}")
    svc = services(request)
    items = review_queue.queue(svc.engine, datetime.now(UTC), _hours(), open_only=show != "all")
    return _page(
        request,
        "ig_reviews.html",
        who=who,
        items=items,
        show=show,
        hours=_hours(),
        orgs=org_names(request),
    )


def _their_trail(svc: Services, item: review_queue.Item) -> Filters:
    """The user's entries about the person, under every id the person has had."""
    return Filters(user_id=item.user_id, people=held_by(svc.engine, item.person_id))


def _trail(svc: Services, item: review_queue.Item, after: str | None = None) -> Page | None:
    """A page of the user's trail of the person, newest first; ``None`` for a cursor that
    names no place in the trail."""
    try:
        return search(svc.engine, _their_trail(svc, item), after=after, limit=50)
    except SearchError:
        return None


@router.get("/reviews/{kind}/{item_id}", response_class=HTMLResponse)
def review_item(
    request: Request,
    kind: str,
    item_id: str,
    error: str | None = None,
    after: str | None = None,
) -> Response:
    """The item's page names its person and shows the user's trail of them, a page at a time
    with a link to older entries: its entry is recorded under that person, so an officer
    asking who looked at them finds it."""
    asked = f"reviews/{kind}/{item_id}"
    svc = services(request)
    now = datetime.now(UTC)
    if not may_use_console(_signed_in(request), now, svc.policy):
        _officer(request, "ig-view", asked)  # refused, and audited, before any look-up
    item = review_queue.find(svc.engine, kind, item_id, now, _hours())
    if item is None:
        who = _officer(request, "ig-view", asked)
        return _page(request, "ig_item.html", 404, who=who, item=None, error="No such item")
    who = _officer(request, "ig-view", asked, patient_id=item.person_id, nhs_number=item.nhs_number)
    trail = _trail(svc, item, after)
    return _page(
        request,
        "ig_item.html",
        200 if trail else 400,
        who=who,
        item=item,
        trail=trail,
        error=error if trail else "after: not a place in this trail",
        orgs=org_names(request),
    )


@router.post("/reviews/{kind}/{item_id}")
def review_outcome(
    request: Request, kind: str, item_id: str, csrf_token: Field, outcome: Field, note: Field
) -> Response:
    session.check_csrf(request, csrf_token)
    svc = services(request)
    now = datetime.now(UTC)
    who = _signed_in(request)
    if not may_use_console(who, now, svc.policy):
        who = _officer(request, "ig-review", f"{kind}/{item_id}")  # refused, and audited
    # The page answered for a refused review shows the item: the notice comes first, and
    # leads back to the item's page (this path, read).
    notice = notice_first(request, who, request.url.path)
    if notice is not None:
        raise Refused(notice)
    item = review_queue.find(svc.engine, kind, item_id, now, _hours())
    if item is None:
        who = _officer(request, "ig-review", f"{kind}/{item_id}")
        return _page(request, "ig_item.html", 404, who=who, item=None, error="No such item")
    try:
        review_queue.record(
            svc.engine, svc.audit, svc.policy, who, context(request), item, outcome, note, now
        )
    except NotIgOfficer as exc:
        raise Refused(_page(request, "ig_forbidden.html", 403, who=who, why=exc.why)) from None
    except ReviewError as exc:
        return _page(
            request,
            "ig_item.html",
            400,
            who=who,
            item=item,
            trail=_trail(svc, item),
            error=str(exc),
            orgs=org_names(request),
        )
    return RedirectResponse(f"/ig/reviews/{kind}/{item_id}", status_code=303)


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request) -> Response:
    who = _officer(request, "ig-view", "alerts")
    svc = services(request)
    rules = _rules()
    now = datetime.now(UTC)
    # The window, and the history before it that usual hours are learnt from.
    days = rules["window_days"] + rules["rules"]["out-of-hours"]["history_days"]
    entries = list(query.stream(svc.engine, now - timedelta(days=days)))
    staff = facts.staff()
    # Only a user in the staff directory can be looking at their own record: only the people
    # such users looked at are named (naming everyone accessed took seconds, and named them).
    people = {e["patient_id"] for e in entries if e.get("patient_id") and e["user_id"] in staff}
    items = review_queue.queue(svc.engine, now, _hours(), open_only=True)
    found = evaluate(
        entries,
        rules,
        now,
        staff=staff,
        people=facts.names_of(svc.engine, people),
        open_items=review_queue.open_items(items),
    )
    return _page(request, "ig_alerts.html", who=who, alerts=found, rules=rules)


@router.get("/report", response_class=HTMLResponse)
def report(
    request: Request, patient: str = "", since: str | None = None, until: str | None = None
) -> Response:
    nhs = patient.replace(" ", "")
    svc = services(request)
    if not nhs:
        who = _officer(request, "ig-view", "report")
        return _page(request, "ig_report.html", who=who, lines=None, patient="")
    if not nhs_number_valid(nhs):
        who = _officer(request, "ig-view", "report")
        return _page(
            request,
            "ig_report.html",
            400,
            who=who,
            lines=None,
            patient=patient,
            error="patient: not a valid NHS number",
        )
    try:
        days = {"since": since or "", "until": until or ""}
        f = filters_from({"patient": nhs, **days}, ZoneInfo(_rules()["time_zone"]))
    except SearchError as exc:
        who = _officer(request, "ig-view", "report")
        return _page(
            request, "ig_report.html", 400, who=who, lines=None, patient=patient, error=str(exc)
        )
    with svc.engine.connect() as conn:
        people = people_with_nhs_number(conn, nhs)
    who = _officer(request, "ig-view", "report?" + f.as_query(), nhs_number=nhs)
    if len(people) > 1:  # one report is one person's: two people's accesses are not mixed
        why = "More than one person's record holds this NHS number: resolve it first (scr identity)"
        return _page(request, "ig_report.html", 409, who=who, lines=None, patient=patient,
                     error=why)  # fmt: skip
    # Every person id the person's own records have had, while they had it. Not every entry
    # under the number: one may be another person's whose record carried it by mistake.
    entries = (
        list(_all(request, replace(f, nhs_number=None, people=held_by(svc.engine, people[0]))))
        if people
        else []
    )
    rules = _rules()
    found = lines(
        entries,
        organisations=org_names(request),
        roles=_roles(),
        purposes={code: p.display for code, p in svc.policy.purposes.items()},
        zone=ZoneInfo(rules["time_zone"]),
    )
    return _page(
        request,
        "ig_report.html",
        who=who,
        lines=found,
        patient=nhs,
        since=since,
        until=until,
        made=datetime.now(ZoneInfo(rules["time_zone"])),
    )


def _chart_days(text: str | None) -> int:
    """``days`` as asked, kept to 1-92; not a whole number is a :class:`SearchError`."""
    if text is None or not text.strip():
        return CHART_DAYS
    if _WHOLE.fullmatch(text.strip()) is None:
        raise SearchError("days: a whole number of days")
    return min(max(int(text), 1), 92)


@router.get("/charts", response_class=HTMLResponse)
def charts(request: Request, days: str | None = None) -> Response:
    # Text, read after the gate: FastAPI would refuse a bad number (400) before it, unaudited,
    # where anyone but an IG officer gets the audited 403 and a signed-out browser the sign-in.
    try:
        wanted = _chart_days(days)
    except SearchError as exc:
        _officer(request, "ig-view", "charts")
        raise FhirError(400, Problem("invalid", str(exc), "days")) from None
    who = _officer(request, "ig-view", f"charts?days={wanted}")
    today = datetime.now(UTC).date()
    first = today - timedelta(days=wanted - 1)
    start = datetime.combine(first, datetime.min.time(), UTC)
    counts = daily(query.stream(services(request).engine, start), first, today)
    orgs = org_names(request)
    by_org = {orgs.get(k, k): v for k, v in counts.by_org.items()}
    figures = [
        ("Accesses per day by organisation", by_org),
        ("Accesses per day by profile", counts.by_profile),
        ("Refusals per day", {"refusals": counts.refusals}),
        ("Break-glass uses per day", {"break-glass": counts.break_glass}),
    ]
    return _page(
        request,
        "ig_charts.html",
        who=who,
        days=wanted,
        counts=counts,
        figures=[(t, bars(t, counts.days, s), s) for t, s in figures],
    )


@router.get("/chain", response_class=HTMLResponse)
def chain_page(request: Request) -> Response:
    who = _officer(request, "ig-view", "chain")
    svc = services(request)
    return _page(
        request,
        "ig_chain.html",
        who=who,
        chain_status=chain.status(svc.engine, svc.settings),
        report=None,
    )


@router.post("/chain/verify", response_class=HTMLResponse)
def chain_verify(request: Request, csrf_token: Field) -> Response:
    session.check_csrf(request, csrf_token)
    who = _officer(request, "ig-verify", "chain/verify")
    svc = services(request)
    verified = chain.verify_now(svc.engine, svc.settings, datetime.now(UTC))
    return _page(
        request,
        "ig_chain.html",
        who=who,
        chain_status=chain.status(svc.engine, svc.settings),
        report=verified.report,
        unsigned=verified.unsigned,
        new_key=verified.new_key,
    )


@router.get("/chain/checkpoint")
def checkpoint_download(request: Request) -> Response:
    """The latest signed checkpoint, for IG to keep away from this server."""
    _officer(request, "ig-view", "chain/checkpoint")
    path = chain.latest_path(services(request).settings)
    if not path.exists():
        raise FhirError(404, Problem("not-found", "No checkpoint has been signed yet"))
    return Response(
        path.read_bytes(),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="scr-audit-checkpoint.json"'},
    )
