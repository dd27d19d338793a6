"""The reads the API serves, each one person at a time: resolve, decide and release through the
gate, audit, and only then hand back what may leave.

A Patient id the store does not hold and a person the user has no way in to end the same way:
the decision is made (over no facts, for an unknown id), refused, audited, and the caller
answers 404 or an empty searchset. Nothing here says which it was.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, select

from adapters.values import nhs_number_valid
from audit import Appender, AuditEntry, RequestContext, disclose, entry_for
from audit.entry import Action
from consent import (
    Answer,
    Decision,
    Grant,
    PatientFacts,
    Policy,
    Refusal,
    Request,
    Who,
    ask_break_glass,
    ask_self_claim,
    decide,
    source_row_shown,
)
from engine.access import claim_found_inappropriate, record_claim, record_grant
from engine.db import read_only
from engine.gate import Item, Released, gather_facts, release
from engine.identity import Members, members_of, members_of_patient, people_with_nhs_number
from engine.models import Resource
from engine.provenance import provenance_for, run_facts, view_provenance
from engine.transfer.record import released as transfers_released
from engine.transfer.store import stays_of

R = cast(Table, Resource.__table__)
#: FHIR's id syntax. Anything else names nothing in the store, so it is never sent there
#: (PostgreSQL refuses a NUL byte outright); the read goes on as one of an unknown id.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: A person (and Patient) id no row holds. A read of an unknown id runs the statements a read
#: of a person hidden from the user runs, over this, so that the number of round trips (and
#: so the time an answer takes) does not tell whether the id is real.
NOBODY = ""
#: The rule id of an attempt refused because several people hold the NHS number asked for.
AMBIGUOUS = "patient.ambiguous"
#: The rule on an attempt on an NHS number no one holds (break-glass, self-claim, explain).
UNKNOWN = "patient.unknown"


@dataclass(frozen=True, slots=True)
class Reader:
    """What every read needs: the store, the policy, the audit trail and the clock."""

    engine: Engine
    policy: Policy
    audit: Appender
    canonical_base: str = "https://fhir.scr.example/"

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Page:
    since: datetime | None = None
    offset: int = 0
    count: int | None = None
    #: A read by id: only these resources, so only they are released and audited.
    ids: tuple[str, ...] = ()
    #: Add each released resource's Provenance (``_revinclude=Provenance:target``).
    provenance: bool = False
    #: Add the person's red-bag transfers the decision lets through (the record page).
    transfers: bool = False


def _members(conn: Connection, person: str | None) -> Members | None:
    """The person's Patients and number; for no person, the same one statement over an id no
    row holds, so that an unknown person costs what a known one does."""
    return members_of(conn, person) if person else members_of_patient(conn, NOBODY)


def _facts(conn: Connection, members: Members | None, policy: Policy) -> PatientFacts:
    """What the store says about the person; for no person, the same statement over no one."""
    if members is None:
        return gather_facts(conn, NOBODY, (), policy)
    return gather_facts(conn, members.person_id, members.patient_ids, policy)


def _person(
    reader: Reader, conn: Connection, who: Who, members: Members | None, request: Request,
    page: Page,
) -> Released:  # fmt: skip
    facts = _facts(conn, members, reader.policy)
    patients = members.patient_ids if members else ()
    released = release(
        conn, who, facts, patients, who.purpose, request, reader.now(), reader.policy,
        since=page.since, offset=page.offset, count=page.count, ids=page.ids,
    )  # fmt: skip
    if page.provenance and released.items:
        released = replace(released, included=_provenance(reader, conn, released))
    if page.transfers and released.decision.permit:
        stays = stays_of(conn, facts.person_id)
        shown, held = transfers_released(released.decision, stays, reader.policy, facts.labels)
        withheld = Counter(released.withheld) + Counter(held)
        released = replace(released, transfers=shown, withheld=dict(sorted(withheld.items())))
    return released


def _provenance(reader: Reader, conn: Connection, released: Released) -> tuple[dict[str, Any], ...]:
    """A Provenance for each released resource: its source record and the run that wrote it;
    for one the mask took something out of, its source record alone (``view_provenance``);
    none where the decision withholds the source row, as the row id would name what the mask
    removes."""
    pairs = list(zip(released.items, released.origins, strict=True))
    runs = run_facts(conn, (o.run_id for i, o in pairs if i.versioned))
    now = reader.now()
    return tuple(
        provenance_for(
            i.resource_type, i.id, o.version_id, o.source_key, runs[o.run_id],
            reader.canonical_base,
        )
        if i.versioned
        else view_provenance(i.resource_type, i.id, o.source_key, now, reader.canonical_base)
        for i, o in pairs
        if (
            o.run_id in runs
            if i.versioned
            else source_row_shown(i.resource_type, released.decision)
        )
    )  # fmt: skip


def _disclose(
    reader: Reader, who: Who, context: RequestContext, members: Members | None,
    request: Request, released: Released, query: str | None = None,
) -> Released:  # fmt: skip
    """Audit what leaves (the Provenance and transfers beside the resources too), then let it
    leave; a transfer is named ``transfer/<id>``, as its own views name it. ``query`` is the
    request as asked, for a search or a whole record (BALP's query records it, not results)."""
    transfers = ({"resourceType": "transfer", "id": t.id} for t in released.transfers)
    entry = entry_for(
        released.decision, who, context, cast(Action, request.interaction),
        patient_id=members.person_id if members else None,
        nhs_number=members.nhs_number if members else None,
        released=(*_refs(released.items), *released.included, *transfers),
        withheld=released.withheld, query=query,
    )  # fmt: skip
    return disclose(reader.audit, entry, released)


def _refs(items: Sequence[Item]) -> list[dict[str, str]]:
    """What the audit entry names of each item: its type and id."""
    return [{"resourceType": i.resource_type, "id": i.id} for i in items]


def _of_patient(conn: Connection, patient_id: str) -> Members | None:
    return members_of_patient(conn, patient_id) if _FHIR_ID.fullmatch(patient_id) else None


def person_of_patient(reader: Reader, patient_id: str) -> str | None:
    members = read_only(reader.engine, lambda conn: _of_patient(conn, patient_id))
    return members.person_id if members else None


def person_record(
    reader: Reader,
    who: Who,
    context: RequestContext,
    patient_id: str,
    request: Request,
    page: Page = Page(),
    query: str | None = None,
) -> Released:
    """The record of the person a Patient id belongs to (``$everything``, searches), read on
    one connection: the person, the facts and the page; ``query`` is the request as asked."""

    def read(conn: Connection) -> tuple[Members | None, Released]:
        members = _of_patient(conn, patient_id)
        return members, _person(reader, conn, who, members, request, page)

    members, released = read_only(reader.engine, read)
    return _disclose(reader, who, context, members, request, released, query)


def resource_record(
    reader: Reader,
    who: Who,
    context: RequestContext,
    resource_type: str,
    resource_id: str,
    query: str,
) -> Released:
    """A read by id: the person whose active resource it is, and of their record only it.
    ``query`` is the request as asked: the entry names the id asked for even when nothing
    was released (withheld, or no such resource), so a probe for ids is in the trail."""
    request = Request("read", frozenset({resource_type}))
    owner = (
        select(R.c.patient_id)
        .where(R.c.id == resource_id, R.c.resource_type == resource_type, R.c.status == "active")
        .scalar_subquery()
    )

    def read(conn: Connection) -> tuple[Members | None, Released]:
        members = members_of_patient(conn, owner) if _FHIR_ID.fullmatch(resource_id) else None
        return members, _person(reader, conn, who, members, request, Page(ids=(resource_id,)))

    members, released = read_only(reader.engine, read)
    return _disclose(reader, who, context, members, request, released, query)


def _read(
    reader: Reader, who: Who, person: str | None, request: Request, page: Page
) -> tuple[Members | None, Released]:
    """One person's record, decided and released but not yet audited: it may not leave here
    but through :func:`_disclose` (or :func:`_ambiguous`, which lets none of it go)."""

    def read(conn: Connection) -> tuple[Members | None, Released]:
        members = _members(conn, person)
        return members, _person(reader, conn, who, members, request, page)

    return read_only(reader.engine, read)


def record_of(
    reader: Reader,
    who: Who,
    context: RequestContext,
    person: str | None,
    request: Request,
    page: Page = Page(),
    query: str | None = None,
) -> Released:
    """One person's record, decided, released and audited; ``None`` is a person not known.
    ``query`` is the request as asked."""
    members, released = _read(reader, who, person, request, page)
    return _disclose(reader, who, context, members, request, released, query)


@dataclass(frozen=True, slots=True)
class ByNumber:
    """What the record page may show for an NHS number: the one record the user may see
    (``released``); or none, with the decision that explains why (``None``: several people
    hold the number and the user may see more than one of them)."""

    released: Released | None
    decision: Decision | None


def record_by_number(
    reader: Reader,
    who: Who,
    context: RequestContext,
    nhs_number: str,
    request: Request,
    page: Page = Page(),
    query: str | None = None,
) -> ByNumber:
    """The record of the one person holding ``nhs_number`` whose record the user may see.

    Every holder's record is decided and released before any is audited, so that each entry
    says what the page shows. When the user may see more than one, none is shown (they are
    not one person's record) and each holder's entry says so, disclosing nothing. Otherwise
    each holder is audited as on a page of its own (one the user may see with nothing in it
    is the record, empty), so a user who may see one holder cannot
    tell that others exist; no holder at all is the explanation over no one, under the number
    asked."""
    people = people_for(reader, nhs_number) if nhs_number_valid(nhs_number) else []
    reads = [_read(reader, who, p, request, page) for p in people]
    if sum(1 for _, released in reads if released.items) > 1:
        for person, (_, released) in zip(people, reads, strict=True):
            _ambiguous(reader, who, context, person, nhs_number, request, released.decision)
        return ByNumber(None, None)
    each = [_disclose(reader, who, context, m, request, r, query) for m, r in reads]
    seen = [released for released in each if released.items]
    if seen:
        return ByNumber(seen[0], None)
    # A permit with nothing to show (a dissent leaves the user's own organisation's items,
    # and it holds none) is the record, empty, with its notice and directives: shown as a
    # refusal, it offered break-glass, which would set the person's objection aside.
    permitted = [released for released in each if released.decision.permit]
    if len(permitted) == 1:
        return ByNumber(permitted[0], None)
    if len(each) == 1:
        return ByNumber(None, each[0].decision)
    number = nhs_number if nhs_number_valid(nhs_number) else None
    return ByNumber(None, explanation(reader, who, context, None, number))


def _ambiguous(
    reader: Reader, who: Who, context: RequestContext, person: str, nhs_number: str,
    request: Request, decision: Decision,
) -> None:  # fmt: skip
    """Audit the view of one of several people holding ``nhs_number`` as refused
    (``AMBIGUOUS``), nothing disclosed: the page showed none of their records."""
    entry = entry_for(
        decision, who, context, cast(Action, request.interaction),
        patient_id=person, nhs_number=nhs_number,
    )  # fmt: skip
    disclose(reader.audit, replace(entry, outcome="deny", rules=(*entry.rules, AMBIGUOUS)), None)


def find_patients(
    reader: Reader, who: Who, context: RequestContext, nhs_number: str, query: str
) -> list[Item]:
    """Patient search by NHS number: one decision and one audit entry per person found."""
    request = Request("search", frozenset({"Patient"}))

    def read(conn: Connection) -> list[tuple[str | None, Released]]:
        people: list[str | None] = list(people_with_nhs_number(conn, nhs_number)) or [None]
        return [(p, _person(reader, conn, who, _members(conn, p), request, Page())) for p in people]

    found: list[Item] = []
    for person, released in read_only(reader.engine, read):
        entry = entry_for(
            released.decision, who, context, "search",
            patient_id=person, nhs_number=nhs_number, released=_refs(released.items), query=query,
            withheld=released.withheld,
        )  # fmt: skip
        found.extend(disclose(reader.audit, entry, released).items)
    return found


def people_for(reader: Reader, patient: str) -> list[str]:
    """The people a request names: by valid NHS number (how a clinician with no relationship
    finds someone) or by Patient id."""
    if nhs_number_valid(patient):
        return read_only(reader.engine, lambda conn: people_with_nhs_number(conn, patient))
    person = person_of_patient(reader, patient.removeprefix("Patient/"))
    return [person] if person else []


def ask(
    reader: Reader,
    who: Who,
    context: RequestContext,
    patient: str,
    reason_code: str | None,
    reason_text: str,
    minutes: int,
) -> str:
    """Break-glass (with a reason code) or a self-claim (without) for the person named.

    The request is judged first, on the user alone, so a refusal (403, with its reasons) is
    the same whether or not the person exists; only a user who may make the request learns
    that no one holds the number (404) or that several people do (:class:`Ambiguous`).
    Every outcome is audited before a grant or claim is stored; the id returned names the IG
    review item.
    """
    people = people_for(reader, patient)
    person = people[0] if len(people) == 1 else None
    answer: Answer[Any] = (
        ask_break_glass(
            who, person or "", reason_code, reason_text, reader.now(), reader.policy, minutes
        )
        if reason_code is not None
        else ask_self_claim(
            who, person or "", reason_text, reader.now(), reader.policy,
            # asked alike for no one (the same statements whether or not the person exists)
            found_inappropriate=read_only(reader.engine, lambda conn: claim_found_inappropriate(
                conn, who.user_id, person or NOBODY
            )),
        )
    )  # fmt: skip
    # The number asked for, whoever holds it: an attempt on a number several people (or no
    # one) hold must be found under it too.
    members = read_only(reader.engine, lambda conn: _members(conn, person))
    nhs = members.nhs_number if members else patient if nhs_number_valid(patient) else None
    unresolved = unresolved_rules(people)
    granted = answer.granted if person else None
    entry = AuditEntry(
        request_id=context.request_id,
        action="break-glass" if reason_code is not None else "self-claim",
        outcome="permit" if granted else "deny",
        user_id=who.user_id, user_name=who.name, role_code=who.role_code,
        profile=who.profile, org=who.org, purpose=who.purpose,
        rules=(*(r.rule_id for r in answer.reasons), *unresolved),
        policy_version=reader.policy.version, patient_id=person, nhs_number=nhs,
        break_glass_code=reason_code, break_glass_text=reason_text if reason_code else None,
        client_address=context.client_address, user_agent=context.user_agent,
    )  # fmt: skip
    disclose(reader.audit, entry, None)
    if answer.granted is None:
        raise RequestRefused(answer.refusals)
    if len(people) > 1:
        raise Ambiguous(patient)
    if granted is None or person is None:
        raise RequestRefused(())
    with reader.engine.begin() as conn:
        if isinstance(granted, Grant):
            return record_grant(conn, who, granted)
        return record_claim(conn, who, person, granted)


class Ambiguous(Exception):
    """More than one person holds the NHS number: a person must choose which, not scr."""


class RequestRefused(Exception):
    """A break-glass or self-claim request was refused, for these reasons."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        super().__init__("; ".join(r.text for r in refusals))
        self.refusals = tuple(refusals)


def unresolved_rules(people: Sequence[str]) -> tuple[str, ...]:
    """The rule naming why a request names no one person: several hold the number
    (``AMBIGUOUS``) or no one does (``UNKNOWN``); none when one person is named."""
    return () if len(people) == 1 else (AMBIGUOUS if people else UNKNOWN,)


def explanation(
    reader: Reader,
    who: Who,
    context: RequestContext,
    person: str | None,
    asked: str | None = None,
    unresolved: tuple[str, ...] = (),
) -> Decision:
    """The decision about the whole record, audited as ``explain``; it reads no resources.
    ``asked`` is the NHS number the user gave, recorded when no one person holds it, so the
    attempt is found under it; ``unresolved`` is added to the entry's rules only (the
    decision returned is the same), naming why no one person was named."""

    def read(conn: Connection) -> tuple[Members | None, PatientFacts]:
        members = _members(conn, person)
        return members, _facts(conn, members, reader.policy)

    members, facts = read_only(reader.engine, read)
    decision = decide(who, facts, who.purpose, Request("explain"), reader.now(), reader.policy)
    nhs = members.nhs_number if members else asked
    entry = entry_for(decision, who, context, "explain", patient_id=person, nhs_number=nhs)
    entry = replace(entry, rules=(*entry.rules, *unresolved)) if unresolved else entry
    return disclose(reader.audit, entry, decision)
