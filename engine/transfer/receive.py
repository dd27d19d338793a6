"""Receiving a red-bag message: check it, then store it whole with its audit entry.

The rule every access follows holds: nothing is answered before its audit entry is durable, and
a failed append fails the request. An accepted message commits in one transaction with the
entry that records it (``engine.transfer.take``), so the entry is exact: a message that loses a
race leaves none saying it was accepted. A refused message stores nothing but its audit entry.
A resubmission (same header id, same content) is answered with the bytes the first one was
given; the same id with other content is a conflict.

A care home sends only for a person in its care: the policy decision point decides, over the
same facts as any read of the person (``engine.gate.gather_facts``), whether the sender has a
relationship with them. Accepting a transfer opens the hospital's access to the record, so it
is never a way round the policy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine

from audit import Appender, AuditEntry, RequestContext, disclose
from audit.entry import Action
from consent import Decision, PatientFacts, Policy, Refusal, Request, Who, decide
from consent.case import Case
from consent.rules import legitimate_relationship
from engine.db import read_only
from engine.gate import gather_facts
from engine.transfer import message, signature, store
from engine.transfer.parties import PROFILES, may_take_part
from engine.transfer.rules import (
    Known,
    Named,
    Parsed,
    Problem,
    Refused,
    check_json,
    check_parties,
    check_shape,
    fold,
    listed,
    out_of_turn,
)
from engine.transfer.take import take


@dataclass(frozen=True, slots=True)
class Inbox:
    """What receiving needs: the store, the audit trail and the settings it reads."""

    engine: Engine
    audit: Appender
    base: str
    policy: Policy


def _entry(
    who: Who,
    ctx: RequestContext,
    permit: bool,
    rules: tuple[str, ...],
    person: str | None = None,
    nhs: str | None = None,
    action: Action = "transfer-receive",
    care: Decision | None = None,
    transfer_id: str | None = None,
) -> AuditEntry:
    """One entry; ``care`` is the policy's decision on the sender acting for the person, whose
    rules, basis and policy version it carries. An accepted message names its transfer
    (``transfer/<id>``), as a step through ``/transfers`` does, so the trail ties every step
    of a stay together whichever way it came."""
    return AuditEntry(
        request_id=ctx.request_id, action=action, outcome="permit" if permit else "deny",
        user_id=who.user_id, user_name=who.name, role_code=who.role_code, profile=who.profile,
        org=who.org, purpose=who.purpose,
        rules=rules + (tuple(r.rule_id for r in care.reasons) if care else ()),
        policy_version=care.policy_version if care else None,
        basis=care.basis if care else None, patient_id=person, nhs_number=nhs,
        refs=(f"transfer/{transfer_id}",) if transfer_id else (),
        client_address=ctx.client_address, user_agent=ctx.user_agent,
    )  # fmt: skip


def _audit(inbox: Inbox, entry: AuditEntry) -> None:
    """Append ``entry`` now, on its own: for an outcome that stores nothing."""
    disclose(inbox.audit, entry, None)


#: Each event's own audit action, so the trail (and the IG console's action filter) tells a
#: transfer from a discharge; a message whose event cannot be read is a ``transfer-receive``.
#: An acknowledgement by message is the action an acknowledgement through ``/transfers`` or
#: the inbox is, so the trail shows the step alike whichever way it came.
ACTIONS: dict[str, Action] = {
    "care-home-transfer": "transfer-receive",
    "hospital-discharge": "transfer-discharge",
    "transfer-acknowledgement": "transfer-acknowledge",
}


def action_of(parsed: Parsed | None) -> Action:
    return ACTIONS[parsed.header.event] if parsed is not None else "transfer-receive"


def refuse(
    inbox: Inbox, who: Who, ctx: RequestContext, status: int, *p: Problem,
    action: Action = "transfer-receive", known: Known | None = None, nhs: str | None = None,
) -> Refused:  # fmt: skip
    """Audit a refusal (with the person the message names, when one is known), then hand back
    the exception that answers it; what ``Problem.audit`` holds goes to the trail alone. The
    rules are taken from every problem, and only the answer is capped (``rules.listed``): a
    sender padding a message with problems cannot push why the person was refused off the
    trail."""
    rules = tuple(sorted({f"transfer.{x.code}" for x in p} | {r for x in p for r in x.audit}))
    person = known.people[0] if known is not None and len(known.people) == 1 else None
    _audit(inbox, _entry(who, ctx, False, rules, person, nhs, action))
    return Refused(status, *listed(p))


def home_cares(facts: PatientFacts, home: str, now: datetime, policy: Policy) -> bool:
    """Whether care home ``home`` has the relationship its staff read a transfer of the person
    by: the decision's own rule (``legitimate_relationship``, interaction ``transfer``), asked
    for the home. It is their only basis (the care-home profile has no self-claim and no
    break-glass); the rest of their decision (training, purpose) is each user's."""
    staff = Who(user_id="", name="", profile=PROFILES["care-home"], role_code="", org=home,
                org_kind="care-home", ig_training=None)  # fmt: skip
    case = Case.build(staff, facts, None, Request("transfer"), now, policy)
    return not isinstance(legitimate_relationship(case), Refusal)


@dataclass(frozen=True, slots=True)
class _Looked:
    """What the store says about a message: the copy already stored under its id, or what
    the rules need and the person's patients (to store it under, when it is accepted)."""

    found: store.Stored | None
    known: Known | None = None
    patients: tuple[str, ...] = ()
    #: The sender's registered key, PEM: a resubmission is checked against it too.
    key: str | None = None


def _look_up(conn: Connection, who: Who, parsed: Parsed, policy: Policy) -> _Looked:
    """Everything a message is judged by, on one connection; a resubmission stops at its
    stored copy."""
    h = parsed.header
    parties = store.parties(conn, h, parsed.nhs_number)
    if parties.found is not None:
        return _Looked(parties.found, key=parties.sender_key)
    people, patients = parties.people, parties.patients
    asks = len(people) == 1
    found = (
        store.named(conn, parsed.transfer_id, people[0] if asks else None)
        if parsed.transfer_id else None
    )  # fmt: skip
    named = (
        Named(found[0].care_home, found[0].hospital, found[1], found[0].status) if found else None
    )
    pem = parties.sender_key
    now = datetime.now(UTC)
    facts = gather_facts(conn, people[0], patients, policy) if asks else None
    cares = facts is None or h.event != "hospital-discharge" or home_cares(
        facts, h.destination, now, policy
    )  # fmt: skip
    known = Known(
        token_org=who.org, kinds=parties.kinds,
        sender_key=signature.load_public(pem) if pem else None, people=people, transfer=named,
        care=decide(who, facts, who.purpose, Request("transfer"), now, policy) if facts else None,
        born=parties.born, families=frozenset(fold(f) for f in parties.families),
        home_cares=cares,
    )  # fmt: skip
    return _Looked(None, known, patients)


def _look(inbox: Inbox, who: Who, parsed: Parsed) -> _Looked:
    """The look-ups in autocommit on one connection: they only read, and under read committed
    a transaction would add a BEGIN and a ROLLBACK and no consistency (``read_only``)."""
    return read_only(inbox.engine, lambda conn: _look_up(conn, who, parsed, inbox.policy))


def _again(
    inbox: Inbox, who: Who, ctx: RequestContext, found: store.Stored, digest: str,
    action: Action, doc: dict[str, Any], key: Ed25519PublicKey | None,
) -> bytes:  # fmt: skip
    """The first answer again, for the same message from the same sender, still signed by
    them: a resubmission skipped the signature, so a copy with junk for one was answered as
    theirs. Its entry names the person and transfer as the first's did."""
    if found.sender != who.org or found.content_hash != digest:
        raise refuse(inbox, who, ctx, 409, Problem(
            "conflict", "a different message with this MessageHeader.id was received already",
            "Bundle.entry[0].resource.id"), action=action)  # fmt: skip
    if key is None or not signature.by(doc, found.sender, key):
        raise refuse(inbox, who, ctx, 422, Problem(
            "security", f"the signature is not {found.sender}'s over this message",
            "Bundle.signature"), action=action, nhs=found.nhs_number)  # fmt: skip
    entry = _entry(who, ctx, True, ("transfer.resubmitted",), found.person_id,
                   found.nhs_number, action, transfer_id=found.transfer_id)  # fmt: skip
    _audit(inbox, entry)
    return found.response


def receive(inbox: Inbox, who: Who, ctx: RequestContext, raw: bytes) -> bytes:
    """The response message for an accepted ``raw`` message; :class:`Refused` otherwise."""
    if not may_take_part(who):
        why = "Only care-home staff and hospital clinicians send transfers"
        raise refuse(inbox, who, ctx, 403, Problem("forbidden", why))
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = Problem("structure", f"not JSON: {exc}", "Bundle")
        raise refuse(inbox, who, ctx, 422, problem) from None
    unfit = check_json(raw, doc)
    if unfit:
        raise refuse(inbox, who, ctx, 422, *unfit)
    problems, parsed = check_shape(doc)
    digest = store.message_hash(doc) if isinstance(doc, dict) else ""
    looked = _Looked(None) if parsed is None else _look(inbox, who, parsed)
    if looked.found is not None:
        key = signature.load_public(looked.key) if looked.key else None
        return _again(inbox, who, ctx, looked.found, digest, action_of(parsed), doc, key)
    known = looked.known
    if parsed is not None and known is not None:
        problems.extend(check_parties(doc, parsed, known))
    if problems or parsed is None or known is None:
        nhs = parsed.nhs_number if parsed else None
        raise refuse(inbox, who, ctx, 422, *problems, action=action_of(parsed),
                     known=known, nhs=nhs)  # fmt: skip
    return _accept(inbox, who, ctx, raw, parsed, digest, known, looked.patients)


def _accept(
    inbox: Inbox, who: Who, ctx: RequestContext, raw: bytes, parsed: Parsed, digest: str,
    known: Known, patients: tuple[str, ...],
) -> bytes:  # fmt: skip
    h = parsed.header
    nhs = parsed.nhs_number or ""
    now = datetime.now(UTC)
    (person,) = known.people
    patient = min(patients)
    answer = orjson.dumps(message.response(h, str(uuid.uuid4()), now, inbox.base))
    accepted = store.Accepted(
        header=h, raw=raw, content_hash=digest, response=answer, person_id=person,
        patient_id=patient, nhs_number=nhs, transfer_id=parsed.transfer_id or h.id,
        user_id=who.user_id,
    )  # fmt: skip
    entry = _entry(who, ctx, True, ("transfer.accepted",), person, nhs, action_of(parsed),
                   known.care, accepted.transfer_id)  # fmt: skip
    try:
        take(inbox.engine, accepted, now, entry)
    except store.Closed as lost:
        problem = out_of_turn(h.event, lost.status, parsed.transfer_path)
        raise refuse(inbox, who, ctx, 422, problem, action=action_of(parsed), known=known,
                     nhs=nhs) from None  # fmt: skip
    except store.Taken:
        with inbox.engine.connect() as conn:
            found = store.stored(conn, h.id)
        if found is None:
            raise
        return _again(inbox, who, ctx, found, digest, action_of(parsed), orjson.loads(raw),
                      known.sender_key)  # fmt: skip
    return answer
