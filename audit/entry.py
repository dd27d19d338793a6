"""One audit entry: who asked what about whom, what the decision was, and what left.

Entries are minimal (BALP guidance): identifiers, codes and counts, never names of people's
conditions, results or any other content of the record. ``disclosed`` counts what was released
per resource type and ``refs`` names it when there are few items (a single read); ``withheld``
counts what policy held back per reason, so an IG officer can see that something was hidden
without the trail becoming a copy of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

from consent import Decision, Who
from engine import canonical

Action = Literal[
    "read",
    "search",
    "everything",
    "explain",
    "break-glass",
    "self-claim",
    "transfer-send",
    "transfer-receive",
    "transfer-acknowledge",
    "transfer-discharge",
    "transfer-return",
    "export",
    "login",
    "token-refused",
    "form-refused",
    "identity-link",
    "identity-unlink",
    "ig-view",
    "ig-review",
    "ig-verify",
    "operator-view",
]
Outcome = Literal["permit", "deny"]
#: More released items than this are recorded as counts only, so one read of a large record
#: does not make an entry of thousands of references.
MAX_REFS = 50


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the transport knows about a request: its id, the client's address and software."""

    request_id: str
    client_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """The content of an entry; the writer adds ``seq``, ``time`` and the hashes."""

    request_id: str
    action: Action
    outcome: Outcome
    user_id: str
    user_name: str
    role_code: str
    profile: str | None
    org: str
    purpose: str | None
    rules: tuple[str, ...] = ()
    policy_version: str | None = None
    basis: str | None = None
    patient_id: str | None = None
    nhs_number: str | None = None
    disclosed: Mapping[str, int] = field(default_factory=dict)
    refs: tuple[str, ...] = ()
    withheld: Mapping[str, int] = field(default_factory=dict)
    #: The search as asked (``identifier=...``), for BALP ``PatientQuery``; never results.
    query: str | None = None
    break_glass_code: str | None = None
    break_glass_text: str | None = None
    client_address: str | None = None
    user_agent: str | None = None


def entry_for(
    decision: Decision,
    who: Who,
    context: RequestContext,
    action: Action,
    *,
    patient_id: str | None = None,
    nhs_number: str | None = None,
    released: Iterable[Mapping[str, Any]] = (),
    withheld: Mapping[str, int] | None = None,
    query: str | None = None,
    break_glass: tuple[str, str] | None = None,
) -> AuditEntry:
    """The entry for one decision, granted or refused, and the resources it released."""
    items = [(str(r.get("resourceType")), str(r.get("id"))) for r in released]
    counts = Counter(t for t, _ in items)
    refs = tuple(f"{t}/{i}" for t, i in items) if len(items) <= MAX_REFS else ()
    return AuditEntry(
        request_id=context.request_id,
        action=action,
        outcome="permit" if decision.permit else "deny",
        user_id=who.user_id,
        user_name=who.name,
        role_code=who.role_code,
        profile=decision.profile,
        org=who.org,
        purpose=decision.purpose,
        rules=tuple(r.rule_id for r in decision.reasons),
        policy_version=decision.policy_version,
        basis=decision.basis,
        patient_id=patient_id,
        nhs_number=nhs_number,
        disclosed=dict(sorted(counts.items())),
        refs=refs,
        withheld=dict(sorted((withheld or {}).items())),
        query=query,
        break_glass_code=break_glass[0] if break_glass else None,
        break_glass_text=break_glass[1] if break_glass else None,
        client_address=context.client_address,
        user_agent=context.user_agent,
    )


#: A red-bag step refused because its transfer had moved on (a second click, a race): a
#: refused step of the workflow, not a refused look at the record.
OUT_OF_TURN = "transfer.out-of-turn"


def refused_look(entry: Mapping[str, Any]) -> bool:
    """Whether an entry (as stored) is someone refused a look at a record, which alerts count
    and a person's report tells them of."""
    return entry["outcome"] == "deny" and OUT_OF_TURN not in (entry.get("rules") or ())


def time_text(time: datetime) -> str:
    """The one text form of an entry's time: UTC, microseconds, ``Z``."""
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: :func:`time_text` as PostgreSQL's ``to_char`` writes it, of a time ``AT TIME ZONE 'UTC'``.
PG_TIME_TEXT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


#: Fields copied into columns for searching. In the stored body they sit together under
#: ``index``, which sorts last, so the body ends with them in a fixed order and ``verify`` can
#: check every column against the hashed bytes with one comparison per entry.
INDEX_FIELDS = (
    "action",
    "nhs_number",
    "org",
    "outcome",
    "patient_id",
    "purpose",
    "request_id",
    "seq",
    "time",
    "user_id",
)


def encodable(entry: AuditEntry) -> AuditEntry:
    """``entry`` with every string in it (values, listed items, count keys) encodable as UTF-8:
    a lone surrogate becomes U+FFFD. One entry that could not be encoded would fail the append,
    and with it every entry batched beside it; this one is kept, showing where the value was
    not text."""
    over = {
        f.name: fixed
        for f in fields(entry)
        if (fixed := canonical.encodable(value := getattr(entry, f.name))) is not value
    }
    return replace(entry, **over) if over else entry


def document(entry: AuditEntry, seq: int, time: datetime) -> dict[str, Any]:
    """The entry as one flat JSON object: what exports and searches hand out."""
    return {
        "seq": seq,
        "time": time_text(time),
        "request_id": entry.request_id,
        "action": entry.action,
        "outcome": entry.outcome,
        "rules": list(entry.rules),
        "policy_version": entry.policy_version,
        "basis": entry.basis,
        "user_id": entry.user_id,
        "user_name": entry.user_name,
        "role_code": entry.role_code,
        "profile": entry.profile,
        "org": entry.org,
        "purpose": entry.purpose,
        "patient_id": entry.patient_id,
        "nhs_number": entry.nhs_number,
        "disclosed": dict(entry.disclosed),
        "refs": list(entry.refs),
        "withheld": dict(entry.withheld),
        "query": entry.query,
        "break_glass_code": entry.break_glass_code,
        "break_glass_text": entry.break_glass_text,
        "client_address": entry.client_address,
        "user_agent": entry.user_agent,
    }


def body(entry: AuditEntry, seq: int, time: datetime) -> bytes:
    """The stored, hashed bytes: canonical JSON (sorted keys, no whitespace) of
    ``{"entry": <the other fields>, "index": <INDEX_FIELDS>}``."""
    doc = document(entry, seq, time)
    index = {k: doc.pop(k) for k in INDEX_FIELDS}
    return canonical.dumps({"entry": doc, "index": index})


def flat(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored body, parsed, as the flat :func:`document`."""
    return {**stored["entry"], **stored["index"]}
