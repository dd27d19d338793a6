"""Whether a message may be accepted: its shape, each resource as R4, and the business rules.

Pure: the caller looks up what the rules need (the sender's key, the destination's kind, the
people holding the NHS number, the policy's decision on the care home acting for that person,
the transfer a discharge closes or an acknowledgement acknowledges) and passes it in as
:class:`Known`. Every problem is reported, each with the FHIRPath of what is wrong, so a sender
can fix a message in one go.

A number no one holds and a person the sender does not care for are refused with the very same
issue, so a signed-in sender cannot learn which NHS numbers scr knows (deny by default: an error
never reveals what policy hides); which it was goes to the audit trail alone (``Problem.audit``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator

from adapters.exactjson import MAX_DEPTH, extent
from adapters.schema import SCHEMA_DIR
from adapters.values import nhs_number_valid
from consent import Decision
from engine.finish import entered_in_error
from engine.identity.features import fold as identity_fold
from engine.narrative import unsafe_narratives
from engine.transfer import news2, signature, store
from engine.transfer.form import CHANGES, changes_of, claimed_news2
from engine.transfer.message import NHS, REQUIRED, ROUTES, Header, header_of
from engine.validate import ElementMemo, validate_resource

_HEADER = "Bundle.entry[0].resource"
#: The one answer for a number no one holds, held by more than one person, or held by someone
#: the sender does not care for.
NOT_IN_CARE = "no person in your organisation's care in the shared record holds this NHS number"
#: A transfer's id (its first message's header id); nothing else is looked up.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: What is wrong with a message of each event that names a transfer (in the Composition's
#: ``relatesTo``) when it names none.
_UNNAMED = {
    "hospital-discharge": "a discharge names the transfer it closes",
    "transfer-acknowledgement": "an acknowledgement names the transfer it acknowledges",
}
#: How many JSON values a message may hold in all (and it may nest no deeper than any JSON
#: from outside, ``adapters.exactjson.MAX_DEPTH``). A red-bag message holds a few hundred
#: values (one with 60 medicines and 30 allergies, about 1,600); the bound is far past any
#: real one and keeps one message's checks cheap (500,000 junk values cost 17 s of validation).
MAX_VALUES = 50_000
#: The most problems one answer lists: every problem of any real message, and a short answer
#: to junk (one final issue says how many more there were).
MAX_PROBLEMS = 100
#: The element models this process has built for messages (docs/ingest.md, ``ElementMemo``):
#: messages from the same care homes share codes, narratives and organisations, and every
#: resource is still validated whole. Shared by the server's threads; ``None`` turns it off.
ELEMENTS: ElementMemo | None = ElementMemo(nested=True)


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a message is refused: an OperationOutcome issue code, the words, and the
    FHIRPath of what is wrong."""

    code: str
    diagnostics: str
    expression: str | None = None
    #: Rule codes for the audit trail only: what the sender must not be told.
    audit: tuple[str, ...] = ()


class Refused(Exception):
    """A message is refused with this HTTP status, for these problems."""

    def __init__(self, status: int, *problems: Problem) -> None:
        super().__init__("; ".join(p.diagnostics for p in problems))
        self.status = status
        self.problems = problems


@cache
def _schema() -> Draft202012Validator:
    doc = orjson.loads((SCHEMA_DIR / "transfer-message.schema.json").read_bytes())
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(_inlined(doc, doc.get("$defs", {})))


def _inlined(node: Any, defs: Mapping[str, Any]) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/name"}`` replaced by its definition, once, at
    load: jsonschema resolves a reference at every use (each entry's ``fullUrl``), about a fifth
    of the time of checking a message."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inlined(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inlined(v, defs) for v in node]
    return node


def _path(parts: Any) -> str:
    out = "Bundle"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


@dataclass(frozen=True, slots=True)
class Parsed:
    """A message whose shape is right: its header, subject and NHS number where found."""

    header: Header
    nhs_number: str | None
    #: FHIRPath of the NHS number (or of the identifiers, when there is none).
    nhs_path: str
    #: The transfer id a discharge or an acknowledgement names (``None`` for a transfer).
    transfer_id: str | None
    transfer_path: str
    #: Where the subject Patient is (``Bundle.entry[i].resource``), and it, once found.
    patient_path: str | None = None
    patient: Mapping[str, Any] | None = None


def check_json(raw: bytes, doc: Any) -> list[Problem]:
    """What makes a body unfit to read further, before it is hashed or checked: nesting past
    :data:`MAX_DEPTH`, more than :data:`MAX_VALUES` values, or a key twice in one object
    (I-JSON: the signature covers orjson's reading, the last value, while the stored bytes
    hold both, and a first-wins reader takes the other as the message). A body written as
    ``orjson`` writes the document read from it (as ``scr transfer send`` and the pages send)
    holds each key once, since the writing does; only another body is read again for keys."""
    depth, values = extent(doc)
    if depth > MAX_DEPTH:
        return [Problem("structure", f"the body nests deeper than {MAX_DEPTH} levels", "Bundle")]
    if values > MAX_VALUES:
        return [Problem("too-costly", f"the body holds more than {MAX_VALUES:,} JSON values",
                        "Bundle")]  # fmt: skip
    if orjson.dumps(doc) == raw:
        return []
    try:
        json.loads(raw, object_pairs_hook=_unique)
    except _RepeatedKey as exc:
        return [Problem("structure", f"the key {exc} appears twice in one object", "Bundle")]
    return []


class _RepeatedKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> None:
    """Refuse an object with a key twice; nothing is built, as only the keys are checked."""
    if len(dict(pairs)) != len(pairs):
        keys = [k for k, _ in pairs]
        raise _RepeatedKey(next(repr(k) for k in keys if keys.count(k) > 1))


#: The order an answer lists problems in, by code, what a sender most needs first: who may
#: send and the signature, the parties, the person and the transfer, a value (a wrong patient's
#: birth date, an NHS number), then the message's structure. Past :data:`MAX_PROBLEMS` the
#: structure is what is cut, never the reason the person or the sender was refused.
ORDER = ("forbidden", "security", "not-found", "business-rule", "conflict", "value", "required",
         "invariant", "structure", "too-costly")  # fmt: skip


def listed(problems: Sequence[Problem]) -> list[Problem]:
    """The problems in :data:`ORDER` (in the order found within a code), at most
    :data:`MAX_PROBLEMS`, and then one saying how many more were found: a real message's
    problems are all listed, junk's answer stays short. Only the answer is cut: the audit
    entry takes its rules from every problem (``receive.refuse``)."""
    rank = {code: i for i, code in enumerate(ORDER)}
    ordered = sorted(problems, key=lambda p: rank.get(p.code, len(ORDER)))
    if len(ordered) <= MAX_PROBLEMS:
        return ordered
    said = f"{len(ordered) - MAX_PROBLEMS:,} more problems were found and are not listed"
    return [*ordered[:MAX_PROBLEMS], Problem("too-costly", said, "Bundle")]


def _schema_problems(doc: Any) -> list[Problem]:
    errors = sorted(_schema().iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [Problem("structure", _short(e.message), _path(e.absolute_path)) for e in errors]


def _short(said: str) -> str:
    """A schema message quotes the value it is about, which may be the whole of a huge entry
    list: the path says where, and the first words what."""
    return said if len(said) <= 300 else said[:300] + "…"


def _r4_problems(doc: dict[str, Any]) -> Iterator[Problem]:
    """The Bundle as R4: its own elements, each entry's (but its resource) and the signature in
    one model, each problem at its element; then each resource on its own. The entries and the
    signature were left out, so an entry's unknown key or a signature's ``when: "soon"`` was
    accepted; an entry that is not an object is the schema's to report."""
    entries = _list(doc.get("entry"))
    shell = doc | {
        "entry": [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else {}
            for e in entries
        ]
    }
    for issue in validate_resource(shell, ELEMENTS):
        yield Problem("structure", issue.reason, issue.field or "Bundle")
    if len(entries) > _schema().schema["properties"]["entry"]["maxItems"]:
        return  # refused by the schema already: no validation of an absurd number of resources
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        for issue in validate_resource(resource, ELEMENTS):
            where = (issue.field or "").split(".", 1)
            suffix = f".{where[1]}" if len(where) > 1 else ""
            yield Problem("structure", issue.reason, f"Bundle.entry[{i}].resource{suffix}")


def _no_requests(doc: dict[str, Any]) -> Iterator[Problem]:
    """bdl-3, bdl-4: an entry of a message carries no request or response. R4's model allows
    both on any Bundle, and a receiver reading a message as a batch would act on them (a
    DELETE of another Patient)."""
    for i, entry in enumerate(_list(doc.get("entry"))):
        for key in ("request", "response"):
            if key in _obj(entry):
                yield Problem("invariant", f"an entry of a message has no {key} (bdl-3, bdl-4)",
                              f"Bundle.entry[{i}].{key}")  # fmt: skip


def _withdrawn(doc: dict[str, Any]) -> Iterator[Problem]:
    """A message carries no record marked entered in error (its status, or an allergy's or a
    condition's verification status): the hospital would read it as the resident's, and a
    reading so marked would be scored into the NEWS2 total."""
    for i, entry in enumerate(_list(doc.get("entry"))):
        resource = _obj(entry).get("resource")
        element = entered_in_error(resource) if isinstance(resource, dict) else None
        if element is not None:
            yield Problem("value", "a message carries no record entered in error",
                          f"Bundle.entry[{i}].resource.{element}")  # fmt: skip


def _narratives(doc: dict[str, Any]) -> Iterator[Problem]:
    """Every narrative in the message (a resource's ``text``, a section's) as R4 allows it
    (``engine.narrative``), each problem at its ``div``."""
    for i, entry in enumerate(_list(doc.get("entry"))):
        resource = _obj(entry).get("resource")
        for path, why in unsafe_narratives(resource, f"Bundle.entry[{i}].resource"):
            yield Problem("invariant", f"narrative: {why}", path)


def _repeated_urls(doc: dict[str, Any]) -> Iterator[Problem]:
    """bdl-7: a fullUrl names one entry. With two, the sender and scr could each read a
    different Patient as the subject."""
    seen: set[str] = set()
    for i, entry in enumerate(_list(doc.get("entry"))):
        url = _obj(entry).get("fullUrl")
        if isinstance(url, str) and url in seen:
            yield Problem("invariant", f"fullUrl {url} names an earlier entry too",
                          f"Bundle.entry[{i}].fullUrl")  # fmt: skip
        if isinstance(url, str):
            seen.add(url)


def _others(doc: dict[str, Any], kind: str, one: int, which: str) -> Iterator[Problem]:
    """Each ``kind`` resource but entry ``one``: the rules judge one Composition, one header and
    one Patient (the subject), and the pages show what the rules judged
    (``engine.transfer.reading``), so a second (a decoy for another person, say) is refused
    rather than left for a reader."""
    for i, entry in enumerate(_list(doc.get("entry"))):
        if i != one and _obj(_obj(entry).get("resource")).get("resourceType") == kind:
            yield Problem("structure", f"a message has {which}", f"Bundle.entry[{i}].resource")


#: The elements by which a resource says whom it is about.
_ABOUT = ("subject", "patient")
#: The element each kind of clinical entry names its person by, where R4 lets it be left out:
#: an entry naming no one would be read as the subject's without being said to be.
_NAMES = {
    "Observation": "subject", "Condition": "subject", "MedicationStatement": "subject",
    "MedicationRequest": "subject", "Procedure": "subject", "Encounter": "subject",
    "CarePlan": "subject", "DocumentReference": "subject", "Consent": "patient",
    "AllergyIntolerance": "patient", "Immunization": "patient", "Flag": "subject",
    "RelatedPerson": "patient",
}  # fmt: skip


def _about_others(doc: dict[str, Any], skip: set[int], subject: str) -> Iterator[Problem]:
    """Each ``subject`` or ``patient`` of an entry's resource that is not a reference to the
    subject's fullUrl, and each clinical entry naming no one: the subject's NHS number, name
    and birth date are what the rules check, and the pages show every entry as the
    subject's, so an allergy or a medicine about anyone else (another Patient, ``Patient/x``
    outside the Bundle, no reference at all) would be read as theirs. A Patient carried
    inside an entry (``contained``) is a second person too."""
    said = f"every entry is about the Composition's subject ({subject}): this is not"
    for i, entry in enumerate(_list(doc.get("entry"))):
        resource = _obj(_obj(entry).get("resource"))
        if i in skip:
            continue
        here = f"Bundle.entry[{i}].resource"
        for key in _ABOUT:
            if key in resource and _obj(resource[key]).get("reference") != subject:
                yield Problem("value", said, f"{here}.{key}")
        named = _NAMES.get(str(resource.get("resourceType")))
        if named is not None and named not in resource:
            yield Problem("required", f"{said}: it names no one", f"{here}.{named}")
        for j, inner in enumerate(_list(resource.get("contained"))):
            if _obj(inner).get("resourceType") == "Patient":
                yield Problem("structure", "a message has one Patient, the Composition's "
                              "subject", f"{here}.contained[{j}]")  # fmt: skip


def _by_url(doc: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each entry's resource by its fullUrl; an entry whose fullUrl is not a string names
    nothing (the schema reports it)."""
    return {
        e["fullUrl"]: (i, e["resource"])
        for i, e in enumerate(doc["entry"])
        if isinstance(e["fullUrl"], str) and isinstance(e["resource"], dict)
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _content(doc: dict[str, Any], header: Header, problems: list[Problem]) -> Parsed:
    """Composition, sections and subject: what the schema cannot say. Elements of the wrong
    JSON type are read as absent: R4 validation has already reported them at their paths."""
    urls = _by_url(doc)
    nhs: str | None = None
    nhs_path = _HEADER + ".focus"
    transfer_id: str | None = None
    event = header.event if isinstance(header.event, str) else ""
    found = urls.get(header.focus) if isinstance(header.focus, str) else None
    if found is None or found[1].get("resourceType") != "Composition":
        problems.append(Problem("structure", "focus must name the Composition in this Bundle",
                                _HEADER + ".focus[0]"))  # fmt: skip
        # The rest is still checked on the one Composition there is: every problem comes
        # back in one answer (a wrong focus hid an invalid NHS number).
        sole = [(i, r) for i, r in urls.values() if r.get("resourceType") == "Composition"]
        if len(sole) != 1:
            return Parsed(header, None, nhs_path, None, _HEADER + ".focus")
        found = sole[0]
    c, composition = found
    here = f"Bundle.entry[{c}].resource"
    problems.extend(_others(doc, "Composition", c, "one Composition, the one its focus names"))
    found_patient: tuple[str | None, Mapping[str, Any] | None] = (None, None)
    codes = {
        code
        for s in _list(composition.get("section"))
        for coding in _list(_obj(_obj(s).get("code")).get("coding"))
        if isinstance(code := _obj(coding).get("code"), str)
    }
    for code in REQUIRED.get(event, ()):
        if code not in codes:
            problems.append(Problem("required", f"required section {code} is missing",
                                    f"{here}.section"))  # fmt: skip
    subject_url = str(_obj(composition.get("subject")).get("reference"))
    subject = urls.get(subject_url)
    if subject is None or subject[1].get("resourceType") != "Patient":
        problems.append(Problem("required", "subject must name the Patient in this Bundle",
                                f"{here}.subject"))  # fmt: skip
    else:
        p, patient = subject
        found_patient = (f"Bundle.entry[{p}].resource", patient)
        problems.extend(_others(doc, "Patient", p, "one Patient, the Composition's subject"))
        problems.extend(_about_others(doc, {c, p}, subject_url))
        if event == "care-home-transfer" and not _checkable(patient):
            problems.append(Problem("required", "the Patient has neither a family name nor a "
                                    "birth date: one is needed to check that the NHS number is "
                                    "theirs", f"Bundle.entry[{p}].resource.birthDate"))  # fmt: skip
        nhs_path = f"Bundle.entry[{p}].resource.identifier"
        numbers = [
            (j, ident.get("value"))
            for j, ident in enumerate(_list(patient.get("identifier")))
            if isinstance(ident, dict) and ident.get("system") == NHS
        ]
        if not numbers:
            problems.append(Problem("required", "the Patient has no NHS number", nhs_path))
        else:
            j, value = numbers[0]
            nhs_path = f"{nhs_path}[{j}].value"
            if isinstance(value, str) and nhs_number_valid(value):
                nhs = value
            else:
                problems.append(Problem("value", f"{value!r} is not a valid NHS number",
                                        nhs_path))  # fmt: skip
    transfer_path = f"{here}.relatesTo"
    unnamed = _UNNAMED.get(event)
    if unnamed is not None:
        target = next(
            (_obj(_obj(r).get("targetIdentifier")).get("value")
             for r in _list(composition.get("relatesTo"))),
            None,
        )  # fmt: skip
        if isinstance(target, str) and UUID.fullmatch(target.removeprefix("urn:uuid:")):
            transfer_id = target.removeprefix("urn:uuid:")
        else:
            problems.append(Problem("required", unnamed, transfer_path))
    return Parsed(header, nhs, nhs_path, transfer_id, transfer_path, *found_patient)


def check_shape(doc: Any) -> tuple[list[Problem], Parsed | None]:
    """Problems with the message itself; ``Parsed`` when the header can be read."""
    if not isinstance(doc, dict):
        return [Problem("structure", "the body is not a JSON object", "Bundle")], None
    problems = _schema_problems(doc)
    problems.extend(_r4_problems(doc))
    problems.extend(_no_requests(doc))
    problems.extend(_narratives(doc))
    problems.extend(_withdrawn(doc))
    problems.extend(_repeated_urls(doc))
    if any(_unreadable(p.expression or "") for p in problems):
        return problems, None
    try:
        header = header_of(doc)
    except (KeyError, IndexError, TypeError):
        return problems, None  # the schema has said what is missing
    # A header the rules cannot route by (an element of the wrong type, an event they do not
    # know: the schema has said what is wrong) still leaves the content checked, so every
    # problem is listed at once, but nothing is looked up for it.
    routable = _routable(header)
    if (
        routable
        and not UUID.fullmatch(header.id)
        and all(p.expression != _HEADER + ".id" for p in problems)
    ):
        # The schema says so; never accepted, should the schema change.
        problems.append(Problem("structure", "the id is not a lowercase UUID", _HEADER + ".id"))
    # Any other problem in the header (its source, say) leaves the rest of the message
    # readable, and every problem in it is listed at once.
    problems.extend(_others(doc, "MessageHeader", 0, "one MessageHeader, its first entry"))
    parsed = _content(doc, header, problems)
    event = header.event if isinstance(header.event, str) else ""
    problems.extend(_news2(doc, event))
    problems.extend(_changes(doc, event))
    return problems, parsed if routable else None


def _changes(doc: dict[str, Any], event: str) -> Iterator[Problem]:
    """A discharge's MedicationStatement that says what the hospital did to the medicine
    (``form.CHANGES``, in its ``category``) says one kind, known, and a status that agrees:
    the care home's page and systems act on it (a medicine read as started but sent stopped
    would be given). One that says no kind is accepted, as before the kind was coded
    (docs/red-bag.md): the page shows it as not given."""
    if event != "hospital-discharge":
        return
    for i, entry in enumerate(_list(doc.get("entry"))):
        resource = _obj(_obj(entry).get("resource"))
        if resource.get("resourceType") != "MedicationStatement":
            continue
        here = f"Bundle.entry[{i}].resource"
        kinds = changes_of(resource)
        for j, code in kinds:
            if not (isinstance(code, str) and code in CHANGES):  # R4 reports a code not a string
                said = f"a kind of medicine change is one of {', '.join(CHANGES)}, not {code!r}"
                yield Problem("value", said, f"{here}.category.coding[{j}].code")
        if len(kinds) > 1:
            yield Problem("value", "a medicine has one kind of change", f"{here}.category")
        elif kinds and (kind := str(kinds[0][1])) in CHANGES:
            status = resource.get("status")
            if (status == "stopped") != (CHANGES[kind][1] == "stopped"):
                said = f"a medicine {kind} in hospital is not sent with status {status!r}"
                yield Problem("value", said, f"{here}.status")


def _news2(doc: dict[str, Any], event: str) -> Iterator[Problem]:
    """A NEWS2 total must be what its readings give: the hospital triages on the total, and a
    sender's slip (or a stale score) must not make a high risk read as low. A transfer, what
    the inbox triages on, has one total; another message (a discharge with the score on
    admission and on discharge) may have more, and then no one total is checked against the
    readings, which may be either's. A transfer's total comes with every reading it was
    scored on: without one it cannot be checked, and the inbox would show it as whole."""
    claim = claimed_news2(_list(doc.get("entry")))
    if claim is None:
        return
    resource = _obj(_obj(_list(doc.get("entry"))[claim.entry]).get("resource"))
    value = "valueQuantity.value" if "valueQuantity" in resource else "valueInteger"
    where = f"Bundle.entry[{claim.entry}].resource.{value}"
    if event == "care-home-transfer":
        for i in claim.more:  # the pages show one total, and it must be the one checked here
            yield Problem("structure", "a message has one NEWS2 total",
                          f"Bundle.entry[{i}].resource")  # fmt: skip
        if claim.missing:
            said = "a NEWS2 total comes with every reading it is scored on; missing: "
            yield Problem("required", said + ", ".join(claim.missing), where)
        for i, why in claim.unusable:  # never a reading the sender chose among
            yield Problem("value", why, f"Bundle.entry[{i}].resource")
    elif claim.more:
        return
    if claim.vitals is None:
        return
    scored = news2.total(claim.vitals)
    if claim.total != scored:
        said = f"the NEWS2 total is {claim.total!r}, but its readings score {scored}"
        yield Problem("value", said, where)


#: A problem with an entry that leaves the entries readable: its fullUrl (not a lowercase
#: UUID, of the wrong JSON type, or repeated; ``_by_url`` takes only a string, once).
_READABLE = re.compile(r"Bundle\.entry\[\d+\]\.fullUrl")


def _unreadable(expression: str) -> bool:
    """Whether a problem at ``expression`` leaves the entries unfit to read further (no list,
    an entry that is not an object or lacks its fullUrl or resource): a problem inside a
    resource, or with an entry's fullUrl, leaves the rest to be read and checked, so every
    problem is listed at once."""
    return (
        expression.startswith("Bundle.entry")
        and "resource" not in expression
        and not _READABLE.fullmatch(expression)
    )


def _routable(h: Header) -> bool:
    """Whether the header elements the rules read are of the type they must be and its event
    one the rules know. An id that is not a lowercase UUID is the schema's problem, already
    listed (so the message is refused); the rest of the message is still read and checked,
    and no stored message has such an id, so it is never taken for a resubmission."""
    values = (h.id, h.event, h.sender, h.destination, h.focus)
    return all(isinstance(v, str) for v in values) and h.event in ROUTES


@dataclass(frozen=True, slots=True)
class Named:
    """The transfer a discharge or an acknowledgement names, as the store holds it."""

    care_home: str
    hospital: str
    #: Whether it is a transfer of the one person holding the message's NHS number (recorded
    #: under them, or under someone since merged into them: ``store.named``).
    theirs: bool
    status: str


@dataclass(frozen=True, slots=True)
class Known:
    """What the store says about the parties and the person, for :func:`check_parties`."""

    token_org: str
    #: organisation code → kind, for the sender and the destination.
    kinds: Mapping[str, str]
    sender_key: Ed25519PublicKey | None
    #: The people holding the message's NHS number.
    people: tuple[str, ...]
    #: The transfer the message names, if it exists.
    transfer: Named | None = None
    #: The policy's decision on the sender acting for the one person holding the number
    #: (``None`` when there is no such person).
    care: Decision | None = None
    #: That person's birth dates and family names in the record, from every source (a name
    #: folded as identity matching folds it: letters only, accents and case aside, so a name
    #: composed or decomposed in Unicode is one name).
    born: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    #: Whether the care home a discharge goes to still has the relationship its staff read
    #: the transfer by (asked of a discharge only: ``receive.home_cares``).
    home_cares: bool = True


def check_parties(doc: dict[str, Any], parsed: Parsed, known: Known) -> list[Problem]:
    """Sender, signature, destination, person and (for a discharge or an acknowledgement)
    the transfer, which must be at a status the message moves it on from."""
    h = parsed.header
    problems: list[Problem] = []
    sender_kind, dest_kind = ROUTES[h.event]
    if h.sender != known.token_org:
        problems.append(Problem("forbidden", f"the sender {h.sender} is not your organisation",
                                _HEADER + ".sender.identifier.value"))  # fmt: skip
    elif known.kinds.get(h.sender) != sender_kind:
        problems.append(Problem("forbidden", f"a {h.event} is sent by a {sender_kind}",
                                _HEADER + ".sender.identifier.value"))  # fmt: skip
    if known.sender_key is None:
        problems.append(Problem("security", f"no signing key is registered for {h.sender}",
                                "Bundle.signature"))  # fmt: skip
    elif signature.signed_by(doc) != h.sender or not signature.verify(doc, known.sender_key):
        problems.append(Problem("security", f"the signature is not {h.sender}'s over this "
                                "message", "Bundle.signature"))  # fmt: skip
    elif signature.who(doc) != h.sender:
        problems.append(Problem("security", f"the signature's who is not {h.sender}, who signed",
                                "Bundle.signature.who.identifier.value"))  # fmt: skip
    if known.kinds.get(h.destination) != dest_kind:
        problems.append(Problem("not-found", f"{h.destination} is not a known {dest_kind}",
                                _HEADER + ".destination[0].receiver.identifier.value"))  # fmt: skip
    why = _not_in_care(h.event, known) if parsed.nhs_number is not None else ()
    if why and h.event == "care-home-transfer":
        problems.append(Problem("not-found", NOT_IN_CARE, parsed.nhs_path, why))
    elif h.event == "care-home-transfer" and parsed.nhs_number is not None:
        problems.extend(_same_person(parsed, known))
    if parsed.transfer_id is not None:
        # A message about a transfer answers for its person through the transfer alone, so
        # a hospital cannot learn from the answer whether anyone holds a number it names.
        t = known.transfer
        if t is None or (t.hospital, t.care_home) != (h.sender, h.destination) or not t.theirs:
            problems.append(Problem("not-found", "no transfer of this person from "
                                    f"{h.destination} to {h.sender} has that id",
                                    parsed.transfer_path, why))  # fmt: skip
            return problems
        proven = not problems  # the sender is the user's, signed by it, to a known home
        if h.event == "hospital-discharge" and proven and known.care and known.care.permit:
            # A hospital the policy lets act for the person, through this transfer, learns
            # nothing new from the comparison; anyone else would learn what the record holds.
            # A discharge summary attached to the wrong patient would otherwise be read by
            # the home as the resident's.
            problems.extend(_same_person(parsed, known))
            if not known.home_cares:
                problems.append(_home_gone(h.destination))
        if t.status not in store.MOVES[h.event][0]:
            problems.append(out_of_turn(h.event, t.status, parsed.transfer_path))
        elif known.care is None or not known.care.permit:
            # The sender knows the person through this transfer; the policy's reasons (lapsed
            # IG training, a purpose that is not direct care) are theirs to read, as on
            # /access/explain.
            refusals = known.care.refusals if known.care else ()
            said = "; ".join(r.text for r in refusals) or "no decision could be made"
            problems.append(Problem("forbidden", f"you may not act for this person now: {said}",
                                    None, tuple(r.rule_id for r in refusals)))  # fmt: skip
    return problems


_CHECK = "check that the number and the person are the same"
#: Latin letters NFKD does not decompose (a stroke, a ligature), as a system without them
#: writes them: Łukasiewicz sent as Lukasiewicz, Ødegård as Odegard, Ærø as Aero. Lower case
#: only, as identity's fold casefolds first (and already makes ß ss).
_LETTERS = str.maketrans({"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d",
                          "þ": "th", "ħ": "h", "ı": "i"})  # fmt: skip


def fold(text: str) -> str:
    """A family name as the wrong-patient check compares it: identity matching's fold (letters
    only, any script, accents and case aside) with the letters in :data:`_LETTERS` spelled
    out. Its own, not identity's: identity's fold also makes the blocking keys stored in
    ``identity_block``, so changing it there is a change to matching that needs a relink."""
    return identity_fold(text).translate(_LETTERS)


def _families(patient: Mapping[str, Any]) -> set[str]:
    names = [n for n in _list(patient.get("name")) if isinstance(n, dict)]
    return {fold(n["family"]) for n in names if isinstance(n.get("family"), str)} - {""}


def _checkable(patient: Mapping[str, Any]) -> bool:
    """Whether :func:`_same_person` has anything to compare: a transfer's Patient with neither
    a family name nor a birth date would skip the wrong-patient check altogether."""
    return isinstance(patient.get("birthDate"), str) or bool(_families(patient))


def _held(born: str, dates: frozenset[str]) -> bool:
    """Whether the record holds this birth date, to the precision it holds it (a source may
    keep only a year or a month)."""
    return any(born == d or born.startswith(d + "-") for d in dates)


def _same_person(parsed: Parsed, known: Known) -> Iterator[Problem]:
    """The Patient a care home sends must be the resident the NHS number is theirs: a birth
    date or family name the record has never held for them is a wrong-patient risk (a number
    typed for a neighbour's), refused so the home checks before the ambulance leaves. A
    hospital's discharge is checked alike, when its Patient has a name or birth date to
    compare: another patient's summary must not be read as the resident's."""
    patient, here = parsed.patient or {}, parsed.patient_path
    born = patient.get("birthDate")
    if isinstance(born, str) and known.born and not _held(born, known.born):
        said = f"this date of birth is not the record's for this NHS number: {_CHECK}"
        yield Problem("value", said, f"{here}.birthDate")
    # Every name the message gives, not one of them: the pages show its first, and a Patient
    # named [Jones, Smith] under Smith's number was accepted and listed as Mary Jones.
    families = _families(patient)
    if families and known.families and not families <= known.families:
        said = f"this family name is not one the record holds for this NHS number: {_CHECK}"
        yield Problem("value", said, f"{here}.name")


def _home_gone(home: str) -> Problem:
    """A discharge to a care home that no longer cares for the person (their placement there
    ended while they were in hospital): no one there could read it, so accepting it would
    lose the summary silently. Told only to a hospital the policy lets act for the person."""
    said = (
        f"{home} no longer cares for this person in the shared record (their placement "
        "there has ended), so no one there could read this discharge: nothing was sent. "
        "Give the discharge summary to whoever cares for them now by another route"
    )
    return Problem("business-rule", said, _HEADER + ".destination[0].receiver.identifier.value")


def out_of_turn(event: str, status: str, path: str | None) -> Problem:
    """A message about a transfer already past the step it moves on from: a stay is
    discharged once, and a transfer is acknowledged once, on receipt."""
    if event == "transfer-acknowledgement":
        return Problem("business-rule", f"that transfer is {status}, not received: a transfer "
                       "is acknowledged once, on receipt", path)  # fmt: skip
    return Problem("business-rule", f"that transfer is {status} already: a stay is discharged "
                   "once", path)  # fmt: skip


def _not_in_care(event: str, known: Known) -> tuple[str, ...]:
    """Why the person is not one the sender may send about, for the audit trail; ``()`` when
    they are. A care home needs the policy's permit on the relationship itself (a placement):
    a grant or a claim is no basis for sending a person to hospital."""
    if not known.people:
        return ("transfer.person-unknown",)
    if len(known.people) > 1:
        return ("transfer.person-ambiguous",)
    if event != "care-home-transfer":
        return ()
    care = known.care
    if care is not None and care.permit and care.basis == "relationship":
        return ()
    refusals = care.refusals if care is not None else ()
    return ("transfer.not-in-care", *(r.rule_id for r in refusals))
