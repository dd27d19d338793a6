"""The one read path: facts → decision → narrowed query → filter and mask → count and page.

Every reader (API, web pages, exports) asks here and nowhere else. The query is narrowed by the
decision before it runs (the person's patients, permitted types, live rows, own-organisation
rows when a dissent is in force, excluded labels only for their owner): a row outside it comes
back without its body, only to be counted as withheld (and known to be). Every row with its body
is then judged with ``consent.hidden_by`` (on the facts stored beside it at ingest,
``engine.facts``, or on the body when they were derived by other rules) and shaped with
``consent.mask``, which leaves no reference naming a row the decision withholds anywhere in the
record. Totals and pages are computed on what may be seen, so a count never reveals a hidden
record.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property, lru_cache
from typing import Any, Literal, NamedTuple, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    LargeBinary,
    Row,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import cast as cast_
from sqlalchemy.types import TypeEngine

from consent import (
    ConsentDirective,
    Decision,
    PatientFacts,
    Policy,
    Relationship,
    Request,
    ResourceMeta,
    Tie,
    Who,
    decide,
    directive,
    hidden_by,
    hidden_in_record,
    mask,
    meta_of,
    ods_code,
    organisation_reference,
    person_labels,
    referenced_id,
    relationship,
    unmasked,
)
from engine.access import made, user_made
from engine.canonical import exact, loads
from engine.db import among, each_of, one_of
from engine.facts import stored_directive, stored_tie
from engine.models import Resource, UtcDateTime
from engine.transfer.store import Stay, stays

R = cast(Table, Resource.__table__)
#: Resource types that record a relationship between an organisation and the person.
RELATIONSHIP_TYPES = ("EpisodeOfCare", "Encounter", "Task", "ServiceRequest", "CareTeam")
RESTRICTED_PERSON = "restricted-person"


class Origin(NamedTuple):
    """Where a released resource came from, for its Provenance: the source record and run.

    A named tuple, as :class:`Item`: a read makes one of each per released row, and a frozen
    dataclass takes about twice as long to build."""

    source_key: str
    run_id: str
    version_id: int


class Item(NamedTuple):
    """One released resource as it leaves: its type, its id and its JSON, which is the stored
    canonical JSON itself when the decision masks nothing of its type (never parsed on the
    way), or else the masked copy written again."""

    resource_type: str
    id: str
    json: bytes
    #: Whether it leaves as its stored version: nothing was taken out of it, so its version
    #: and the run that wrote it may be named beside it (its Provenance).
    versioned: bool = True


@dataclass(frozen=True)
class Released:
    """What may leave: the decision, the masked resources of this page, and the visible total.

    ``origins`` pairs with ``items`` one by one. ``withheld`` counts what policy held back of
    the rows asked for, by reason, for the audit trail; it never leaves to the user.
    ``included`` holds what leaves beside the page (Provenance), outside the total, and
    ``transfers`` the person's red-bag transfers when the reader asked for them
    (``engine.transfer.record``), also outside it.
    """

    decision: Decision
    items: tuple[Item, ...]
    total: int
    origins: tuple[Origin, ...] = ()
    withheld: Mapping[str, int] = field(default_factory=dict)
    included: tuple[dict[str, Any], ...] = ()
    transfers: tuple[Stay, ...] = ()

    @cached_property
    def resources(self) -> tuple[dict[str, Any], ...]:
        """The items as resources, parsed only for a reader that needs them (the web pages)."""
        return tuple(orjson.loads(i.json) for i in self.items)


@cache
def _organisations_query(dialect: str) -> Select[Any]:
    return select(R.c.id, R.c.body).where(
        R.c.resource_type == "Organization", one_of(R.c.id, "ids", dialect)
    )


def organisation_codes(conn: Connection, refs: set[str]) -> dict[str, str]:
    """``Organization/<id>`` → ODS code, for resources that reference rather than name an
    organisation (a SystmOne or EMIS registration's practice)."""
    ids = sorted(ref.split("/", 1)[1] for ref in refs)
    rows = conn.execute(_organisations_query(conn.dialect.name), {"ids": ids}).all()
    found = {f"Organization/{row.id}": ods_code(orjson.loads(row.body)) for row in rows}
    return {ref: code for ref, code in found.items() if code}


#: The facts statement's columns: each part fills its own, the rest are typed NULLs.
_FIELDS: dict[str, TypeEngine[Any]] = {
    "kind": String(), "resource_type": String(), "source_org": String(), "labels": Text(),
    "relation": Text(), "body": LargeBinary(), "relation_ref": Text(), "org_relation": Text(),
    "org_body": LargeBinary(), "reason_code": String(), "user_id": String(), "org": String(),
    "reason_text": Text(), "review": String(), "start": UtcDateTime(), "expiry": UtcDateTime(),
}  # fmt: skip


def _part(given: Mapping[str, ColumnElement[Any]]) -> Select[Any]:
    """One part of the facts statement, with every column of :data:`_FIELDS` in order."""
    return select(
        *((given[n] if n in given else cast_(null(), t)).label(n) for n, t in _FIELDS.items())
    )


@cache
def _facts_query(dialect: str) -> CompoundSelect[Any]:
    """Everything the policy is told about a person, in one statement built once: the
    person's relationship, Consent and Patient rows with their stored facts (a body only for
    a row whose facts were derived by other rules, ``version``), each with the
    ``Organization`` its relationship references; the break-glass grants and self-claims
    (``engine.access.user_made``); the hospital stays (``engine.transfer.store.stays``). Each
    part is found through its table's index, one probe per Patient or per person merged
    (``engine.db.each_of``, ``engine.identity.index.merged_in``), whatever the statistics."""
    org = R.alias("org")
    fresh = bindparam("version", type_=String())
    named = and_(org.c.id == R.c.relation_ref, org.c.resource_type == "Organization")
    stale = or_(org.c.facts_version.is_(None), org.c.facts_version != fresh)
    # Subqueries, not a join: a primary-key probe per referencing row, where a join may hash
    # every Organization in the store.
    rows = each_of(_part({
        "kind": literal("row"), "resource_type": R.c.resource_type,
        "source_org": R.c.source_org, "labels": R.c.labels, "relation": R.c.relation,
        "body": case((R.c.facts_version == fresh, null()), else_=R.c.body),
        "relation_ref": R.c.relation_ref,
        "org_relation": select(func.coalesce(org.c.relation, "")).where(
            named, org.c.facts_version == fresh
        ).scalar_subquery(),
        "org_body": select(org.c.body).where(named, stale).scalar_subquery(),
    }).where(
        R.c.status == "active",
        among(R.c.resource_type, [*RELATIONSHIP_TYPES, "Consent", "Patient"]),
    ), R.c.patient_id, "patients", dialect)  # fmt: skip
    made = user_made(dialect).subquery()
    held = stays(dialect).subquery()
    return union_all(
        rows,
        _part({n: made.c[n] for n in ("reason_code", "user_id", "org", "reason_text", "review",
                                      "start", "expiry")} | {"kind": made.c.kind}),
        _part({"kind": literal("stay"), "org": held.c.hospital, "start": held.c.received,
               "expiry": held.c.discharged}),
    )  # fmt: skip


def gather_facts(
    conn: Connection,
    person_id: str,
    patient_ids: Sequence[str],
    policy: Policy,
) -> PatientFacts:
    """What the stored records say about the person, whoever is asking (never filtered).

    One statement: grants and self-claims are read here too, from their own tables, so no
    caller can hand the decision a grant the store does not hold. A row's stored facts are
    used only under the running rules' ``facts_version``; any other row is gathered from its
    body exactly as it always was.
    """
    params = {
        "patients": list(patient_ids), "version": policy.facts_version,
        "person_id": person_id,
    }  # fmt: skip
    rows = conn.execute(_facts_query(conn.dialect.name), params).all()
    facts = _Gathered()
    for row in rows:
        facts.add(row)
    stale = [(t, orjson.loads(b)) for t, b in facts.bodies]
    related = [body for t, body in stale if t in RELATIONSHIP_TYPES]
    refs = {ref for body in related if (ref := organisation_reference(body))} - set(facts.orgs)
    orgs = facts.orgs | (organisation_codes(conn, refs) if refs else {})
    relationships = [rel for t in facts.ties if (rel := t.resolve(orgs)) is not None]
    relationships += [rel for body in related if (rel := relationship(body, orgs)) is not None]
    directives = facts.directives + [
        d
        for t, body in stale
        if t == "Consent" and (d := directive(body, policy.sensitive, policy.sections))
    ]
    grants, claims = made(facts.made, person_id)
    return PatientFacts(
        person_id=person_id,
        relationships=(*relationships, *facts.stays, *claims),
        grants=grants,
        directives=tuple(directives),
        labels=person_labels(facts.patients, RESTRICTED_PERSON),
    )


@dataclass
class _Gathered:
    """The facts statement's rows, sorted by part; stored facts decoded, stale bodies kept."""

    ties: list[Tie] = field(default_factory=list)
    directives: list[ConsentDirective] = field(default_factory=list)
    orgs: dict[str, str] = field(default_factory=dict)
    patients: list[tuple[str, str, str]] = field(default_factory=list)
    #: (resource type, body) of each row whose facts were derived by other rules.
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    made: list[Row[Any]] = field(default_factory=list)
    stays: list[Relationship] = field(default_factory=list)

    def add(self, row: Row[*tuple[Any, ...]]) -> None:
        # Unpacked in _FIELDS' order: a Row's attribute lookup costs about a quarter of a
        # microsecond, and a resident with many stays brings many rows.
        (kind, rtype, source_org, labels, relation, body, ref, org_relation, org_body,
         _, _, org, _, _, start, expiry) = row  # fmt: skip
        if kind == "stay":
            # As engine.transfer.store.hospital_stays: from receipt to its discharge.
            self.stays.append(Relationship(org, "transfer", start, expiry))
        elif kind != "row":
            self.made.append(row)
        elif rtype == "Patient":
            self.patients.append((rtype, source_org, labels))
        elif body is not None:
            self.bodies.append((rtype, body))
        elif relation is not None:
            if rtype == "Consent":
                self.directives.append(stored_directive(relation))
                return
            self.ties.append(stored_tie(relation))
            # The referenced Organization's code: from its body when its facts are stale;
            # "" when it has none; both NULL when there is no such Organization.
            code = ods_code(orjson.loads(org_body)) if org_body is not None else org_relation
            if code:
                self.orgs[f"Organization/{ref}"] = code


def _has_label(label: str) -> ColumnElement[bool]:
    return (literal(" ") + R.c.labels + literal(" ")).like(f"% {label} %")


@cache
def _without_labels(labels: frozenset[str]) -> ColumnElement[bool]:
    """Rows carrying none of ``labels``; built once per set, as policy names only a few. An
    unlabelled row, nearly every one, is told by one comparison, not a LIKE per label (four
    legally restricted categories over a heavy record's 2,000 rows took about 0.8 ms)."""
    return or_(R.c.labels == "", and_(*(not_(_has_label(x)) for x in sorted(labels))))


@lru_cache(maxsize=128)
def _page_query(
    dialect: str,
    own_org_only: bool,
    excluded: frozenset[str],
    withheld: frozenset[str],
    since: bool,
    ids: bool,
    pairs: frozenset[tuple[str, str]] = frozenset(),
    restricted: frozenset[str] = frozenset(),
) -> Select[Any]:
    """The page's query for one shape of decision, built once: the person's Patients, the
    permitted types, the user's organisation, ``_since`` and the ids asked are bound per read.

    One query for every row of the person, but a body only for a row asked for (``_since``,
    the ids) that the narrowed query allows (the decision's types, a dissent's
    own-organisation limit, excluded labels only for their owner, withheld labels for
    everyone): the rest come back as their columns alone, to be counted as withheld, never as
    content. A row not asked for comes back only when the decision may withhold it
    (``_maybe_withheld``: the profile's ``pairs``, the ``restricted`` sections), without its
    run (``run_id``, which every stored row has, is NULL: no column more for every read), only
    to say what the decision withholds from the record, which nothing released may name
    (``release``)."""
    own = R.c.source_org == bindparam("org")
    allowed = [one_of(R.c.resource_type, "types", dialect)]
    if own_org_only:
        allowed.append(own)
    if excluded:
        allowed.append(or_(own, _without_labels(excluded)))
    if withheld:
        allowed.append(_without_labels(withheld))
    asked: list[ColumnElement[bool]] = []
    if since:
        asked.append(R.c.last_updated >= bindparam("since", type_=R.c.last_updated.type))
    if ids:
        asked.append(one_of(R.c.id, "ids", dialect))
    body = case((and_(*allowed, *asked), R.c.body), else_=null()).label("body")
    run = case((and_(*asked), R.c.run_id), else_=null()).label("run_id") if asked else R.c.run_id
    rows = [one_of(R.c.patient_id, "patients", dialect), R.c.status == "active"]
    if asked:
        rows.append(or_(and_(*asked), _maybe_withheld(own_org_only, pairs, restricted)))
    return (
        select(
            R.c.id, R.c.resource_type, R.c.source_org, body, R.c.labels,
            R.c.section, R.c.policy_labels, R.c.facts_version,
            R.c.source_key, run, R.c.version_id,
        )
        .where(*rows)
        .order_by(R.c.resource_type, R.c.id)
    )  # fmt: skip


def _maybe_withheld(
    own_org_only: bool, pairs: frozenset[tuple[str, str]], restricted: frozenset[str]
) -> ColumnElement[bool]:
    """Rows the decision may withhold from the record: all but those its stored facts
    (``version``) show it does not (no policy label, a (type, section) pair of the profile,
    and the user's own organisation's or outside the ``restricted`` sections); what this lets
    through is judged as before, so it may only let through too much. A NULL fact lets a row
    through (``CASE``), as NOT of a NULL would not. The profile's pairs are written into the
    statement, built once per profile: bound as an array per read, a few dozen strings cost
    more than the rest of a read by id's parameters together."""
    shown = [
        R.c.facts_version == bindparam("version", type_=String()),
        R.c.policy_labels == "",
        (R.c.resource_type + literal_column("'|'") + R.c.section).in_(
            _constants(f"{t}|{s}" for t, s in pairs)
        ),
    ]
    own = R.c.source_org == bindparam("org")
    shown.append(own if own_org_only else or_(own, R.c.section.not_in(_constants(restricted))))
    return case((and_(*shown), false()), else_=true())


def _constants(values: Iterable[str]) -> list[ColumnElement[str]]:
    """``values`` as SQL string literals in the statement's text (each quote doubled; the
    policy's types and sections hold none), so that nothing is bound for them per read."""
    return [literal_column("'" + v.replace("'", "''") + "'", String()) for v in sorted(values)]


@cache
def _bodies_query(dialect: str) -> Select[Any]:
    """The rows named, with their bodies: those of the record whose stored facts were derived
    by other rules, read without their bodies, for ``_Judge.settle``."""
    return select(R.c.id, R.c.source_org, R.c.labels, R.c.body).where(
        one_of(R.c.id, "ids", dialect)
    )


def release(
    conn: Connection,
    who: Who,
    facts: PatientFacts,
    patient_ids: Sequence[str],
    purpose: str | None,
    request: Request,
    now: datetime,
    policy: Policy,
    *,
    since: datetime | None = None,
    offset: int = 0,
    count: int | None = None,
    ids: Sequence[str] = (),
) -> Released:
    """Decide, then release one page of what the decision lets ``who`` see of the person
    (only the resources ``ids`` names, when it names any: a read by id).

    What the decision withholds anywhere in the record, on this page or not, asked for or
    not, is known before the items leave, and an item naming any of it leaves masked
    (``consent.mask``'s ``withheld``), so that none names it."""
    decision = decide(who, facts, purpose, request, now, policy)
    if not decision.permit:
        return Released(decision, (), 0)
    ob = decision.obligations
    # Under any field rule every type is masked (``consent.unmasked``), and a row's time may be
    # that of a change to nothing but what the mask removes: ``_since`` then narrows nothing.
    narrows = since is not None and not ob.fields
    # A read narrowed to some rows reads the rest only where the decision may withhold them.
    maybe = (ob.contained_allowed, ob.own_org_sections) if narrows or ids else ()
    query = _page_query(
        conn.dialect.name, ob.own_org_only, ob.excluded_labels, ob.withheld_labels, narrows,
        bool(ids), *maybe,
    )  # fmt: skip
    params: dict[str, Any] = {
        "patients": list(patient_ids), "types": sorted(ob.types), "org": ob.org,
    }  # fmt: skip
    if narrows:
        params["since"] = since
    if ids:
        params["ids"] = list(ids)
    if maybe:
        params["version"] = policy.facts_version
    withheld: Counter[str] = Counter()
    shown: list[Item] = []
    # What each item was made from (source organisation, stored body, parsed body).
    made: list[tuple[str, bytes, dict[str, Any] | None]] = []
    origins: list[Origin] = []
    total = 0
    end = None if count is None else offset + count
    judge = _Judge(decision, policy)
    rows = conn.execute(query, params).all()
    # Unpacked by position (the order of _page_query's columns): a Row's attribute lookup
    # costs about a quarter of a microsecond, and a typical record's rows would take a dozen.
    for rid, rtype, org, body, labels, section, tags, version, key, run, ver in rows:
        if body is None:
            asked = run is not None
            if asked:
                withheld[_narrowed_away(decision, rtype, org, labels)] += 1
            judge.unread(rid, (rtype, org, section, tags, version, asked))
            continue
        resource, why = judge(rid, rtype, org, body, labels, (section, tags, version))
        if why is not None:
            withheld[why] += 1
            continue
        if total >= offset and (end is None or total < end):
            shown.append(judge.item(rtype, rid, org, body, resource))
            made.append((org, body, resource))
            origins.append(Origin(key, run, ver))
        total += 1
    if shown and judge.unknown and any(map(_naming(set(judge.unknown)), (m[1] for m in made))):
        judge.settle(conn)
    if shown and judge.gone:
        # Only now is all that the record withholds known (a later row may be the one an item
        # names), and only an item whose body names some of it is written again.
        names = _naming(judge.gone)
        shown = [
            judge.unlinked(item, *m) if names(m[1]) else item
            for item, m in zip(shown, made, strict=True)
        ]
    return Released(decision, tuple(shown), total, tuple(origins), dict(sorted(withheld.items())))


#: How canonical JSON writes the key of contained resources (no space after the colon).
_CONTAINED = b'"contained":'
#: How canonical JSON writes a reference, up to the first quote after it (its end, unless the
#: reference holds an escaped one).
_REFERENCE = re.compile(rb'"reference":"([^"]*)"')


#: Up to this many ids, a body is searched for each (about half a microsecond for a typical
#: body); beyond, its references are read once (about two).
_FEW = 4


def _naming(ids: Set[str]) -> Callable[[bytes], bool]:
    """A test of whether a canonical JSON body holds a reference to any of ``ids`` (as
    ``consent.referenced_id`` reads its target), made without parsing it, that never misses
    one: for a few ids, whether the body holds any of them at all (an id needs no escape in
    JSON); for more, whether a reference in it names one, one written with an escape counting,
    to be judged on the parsed body. A body it finds may name none: it is then parsed for
    nothing, never released naming one."""
    if len(ids) <= _FEW:
        encoded = tuple(i.encode() for i in ids)
        return lambda body: any(i in body for i in encoded)
    return lambda body: any(
        b"\\" in raw or referenced_id(raw.decode()) in ids for raw in _REFERENCE.findall(body)
    )


#: A row read without its body, as :func:`_standing` judges it: its type, organisation,
#: stored section, policy labels and facts version, and whether it was asked for.
_Unread = tuple[str, str, str | None, str | None, str | None, bool]
#: How such a row stands in the whole record; ``unknown``: only its body can tell.
_Standing = Literal["shown", "withheld", "unknown"]


def _standing(row: _Unread, decision: Decision, policy: Policy) -> _Standing:
    """Whether the decision withholds a row read without its body from the whole record
    (``consent.hidden_in_record``). One asked for, of a type the decision allows, was held back
    by its labels or organisation, which hold whatever was asked; any other is judged on its
    stored facts, or, when they were derived by other rules, on its body, unless its type
    alone withholds it."""
    resource_type, source_org, section, tags, version, asked = row
    ob = decision.obligations
    if asked and resource_type in ob.types:
        return "withheld"
    if version != policy.facts_version or section is None or tags is None:
        profile = any(t == resource_type for t, _ in ob.contained_allowed)
        return "unknown" if profile else "withheld"
    meta = ResourceMeta(resource_type, source_org, frozenset(tags.split()), section)
    return "shown" if hidden_in_record(meta, decision) is None else "withheld"


class _Judge:
    """``hidden_by`` and ``unmasked`` over one read's rows. A row with facts stored under the
    running rules is judged on them, once per distinct set of facts (a record has a few dozen);
    any other row on its body, which is handed back so that it is not parsed twice.

    It keeps the ids of what the decision withholds from the whole record (``gone``), so
    that no item it writes names one: the rows judged withheld, and the rows read without a
    body (not asked for, or narrowed away) that ``consent.hidden_in_record`` withholds, on
    their stored facts, or, for facts derived by other rules, on their bodies, read only when
    an item to be released may name one (``unknown``, :meth:`settle`)."""

    def __init__(self, decision: Decision, policy: Policy) -> None:
        self._decision = decision
        self._policy = policy
        self._verdicts: dict[tuple[str, str, str, str], str | None] = {}
        self._standings: dict[_Unread, _Standing] = {}
        self._whole: dict[str, bool] = {}
        self.gone: set[str] = set()
        self.unknown: list[str] = []

    def __call__(
        self, resource_id: str, resource_type: str, source_org: str, body: bytes, labels: str,
        stored: tuple[str | None, str | None, str | None],
    ) -> tuple[dict[str, Any] | None, str | None]:  # fmt: skip
        """Why the row is withheld (``None``: it may leave), and its parsed body if it was
        parsed; ``stored`` is the row's section, policy labels and facts version."""
        section, tags, version = stored
        if version == self._policy.facts_version and section is not None and tags is not None:
            key = (resource_type, source_org, section, tags)
            if key not in self._verdicts:
                meta = ResourceMeta(resource_type, source_org, frozenset(tags.split()), section)
                self._verdicts[key] = hidden_by(meta, self._decision)
            why, resource = self._verdicts[key], None
        else:
            resource = loads(body)
            why = hidden_by(meta_of(resource, source_org, labels, self._policy), self._decision)
        if why is not None:
            self.gone.add(resource_id)
        return resource, why

    def unread(self, resource_id: str, row: _Unread) -> None:
        """Note whether a row read without its body is withheld from the whole record
        (:func:`_standing`, once per distinct ``row``)."""
        standing = self._standings.get(row)
        if standing is None:
            standing = self._standings[row] = _standing(row, self._decision, self._policy)
        if standing == "withheld":
            self.gone.add(resource_id)
        elif standing == "unknown":
            self.unknown.append(resource_id)

    def settle(self, conn: Connection) -> None:
        """Judge the rows whose standing only their bodies can tell (``unknown``), in one
        statement: until ``scr db restamp``, as before the facts existed."""
        rows = conn.execute(_bodies_query(conn.dialect.name), {"ids": self.unknown}).all()
        for rid, source_org, labels, body in rows:
            meta = meta_of(orjson.loads(body), source_org, labels, self._policy)
            if hidden_in_record(meta, self._decision) is not None:
                self.gone.add(rid)
        self.unknown = []

    def item(
        self,
        resource_type: str,
        resource_id: str,
        source_org: str,
        body: bytes,
        resource: dict[str, Any] | None,
    ) -> Item:
        """The stored JSON as it is when the decision masks nothing of the type and it holds
        no contained resource (each is judged as a resource of its own); otherwise the masked
        resource, written again."""
        whole = self._whole.get(resource_type)
        if whole is None:
            whole = self._whole[resource_type] = unmasked(resource_type, self._decision)
        if whole and _CONTAINED not in body:
            return Item(resource_type, resource_id, body)
        return self._masked(resource_type, resource_id, source_org, body, resource)

    def unlinked(
        self, item: Item, source_org: str, body: bytes, resource: dict[str, Any] | None
    ) -> Item:
        """``item`` made again from its stored body, naming nothing the decision withholds
        from the record (``gone``)."""
        return self._masked(item.resource_type, item.id, source_org, body, resource, self.gone)

    def _masked(
        self, resource_type: str, resource_id: str, source_org: str, body: bytes,
        resource: dict[str, Any] | None, withheld: Set[str] = frozenset(),
    ) -> Item:  # fmt: skip
        stored = resource if resource is not None else loads(body)
        masked = mask(stored, self._decision, self._policy, source_org, withheld)
        return Item(
            resource_type, resource_id, orjson.dumps(masked, default=exact), masked == stored
        )


def _narrowed_away(decision: Decision, resource_type: str, source_org: str, labels: str) -> str:
    """Why the narrowed query left a row out (its type, a withheld label, a dissent's
    own-organisation limit, or an excluded label), from its columns alone, in the order
    ``consent.hidden_by`` asks."""
    ob = decision.obligations
    if resource_type not in ob.types:
        return "profile.types"
    if not ob.withheld_labels.isdisjoint(labels.split()):
        return "labels.excluded"
    if ob.own_org_only and source_org != ob.org:
        return "consent.own-organisation-only"
    return "labels.excluded"
