"""Export: IHE BALP ``PatientRead`` / ``PatientQuery`` AuditEvents, and CSV for spreadsheets.

One AuditEvent per entry, and so per patient (an entry names at most one: by person id, NHS
number or both; an attempt on a number nobody or several people hold has the number alone). A
permitted search or whole record (``$everything``, the record page) is a ``PatientQuery``: the
request as asked in its one query entity, and not its results (BALP; its entities are sliced
by type alone, so a second System Object would fall in the query slice), which go in as counts.
A permitted read of one resource by id is a ``PatientRead``, naming that one resource. An
event claims a profile only where it meets it: not a refusal (BALP's Read and Query fix the
outcome to success), not an ``explain`` (it reads no resource), not an entry without the
client's network address or (kept before requests were) the query, and not an action that is
neither (break-glass, transfers, logins); those carry the same agents and patient entity, and
name what was released. What was disclosed and withheld goes in as counts (entity
``detail``), never as content.

The patient entity names the person as the FHIR API serves them: ``Patient/<id>`` for the
Patient id a ``patient_of`` lookup gives for the entry's person (the caller's: the trail
holds the person id, which no API route serves), with the NHS number and, in ``detail``, the
person id the trail and its CSV use. A person with no Patient now is named by number alone, or
by person id in the deployment's namespace when there is no number either.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
JOB_ROLE = "https://fhir.hl7.org.uk/CodeSystem/UKCore-SDSJobRoleName"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
#: Under the deployment's canonical base: the login names of operators and identity reviewers.
OPERATOR = "Id/operator-login"
#: Under the deployment's canonical base: scr's own person ids (the trail's ``patient_id``).
PERSON = "Id/person"
READS = frozenset({"read", "explain"})
#: Recorded as BALP queries, with the request as asked: a search, and a whole record.
QUERIES = {"search": "search-type", "everything": "operation"}
CSV_COLUMNS = (
    "seq", "time", "request_id", "action", "outcome", "rules", "policy_version", "basis",
    "user_id", "user_name", "role_code", "profile", "org", "purpose", "patient_id", "nhs_number",
    "disclosed", "withheld", "refs", "query", "break_glass_code", "break_glass_text",
    "client_address", "user_agent",
)  # fmt: skip


#: FHIR's ``code``: words of printable characters with one space between them.
_CODE = re.compile(r"[^\s\x00-\x1f\x7f]+(?: [^\s\x00-\x1f\x7f]+)*")


def code_valid(text: str) -> bool:
    """Whether ``text`` can be a FHIR ``code`` (a purpose of use must be one to enter)."""
    return _CODE.fullmatch(text) is not None


#: The Patient id the FHIR API serves for a person id, or ``None``.
PatientOf = Callable[[str], str | None]


def no_patient(person_id: str) -> None:
    """A lookup that knows no one: the events name people by NHS number (or person id)."""
    return None


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


#: R4B's ``string`` needs a character that is a space, CR, LF, TAB or no whitespace at all.
_R4B_STRING = re.compile(r"[ \r\n\t\S]")
#: Entry fields exported as codes when they are codes (:func:`_concept` shows them otherwise).
_CODED = frozenset({"purpose", "role_code"})


def _shown(text: str) -> str:
    """``text`` as R4B takes a ``string``: one made only of other whitespace (U+00A0, U+0085,
    U+2028, VT, ...), which R4B refuses, is written as its code points (``U+00A0``), so the
    event still says what was there and one entry cannot make a whole Bundle invalid."""
    if _R4B_STRING.search(text) or not text:
        return text
    return " ".join(f"U+{ord(c):04X}" for c in text)


def _concept(system: str, value: str) -> dict[str, Any]:
    """A coded value from a request or token; one that is not a code (an entry stored before
    purposes were checked, or a token's) is kept as the concept's text, so the event stays
    valid R4 (and R4B: :func:`_shown`)."""
    return _coding(system, value) if code_valid(value) else {"text": _shown(value)}


def _profile(doc: dict[str, Any]) -> str | None:
    """The BALP profile the event meets, if any (the module's docstring says which)."""
    named = doc.get("patient_id") or doc.get("nhs_number")
    if doc["outcome"] != "permit" or not named or not doc.get("client_address"):
        return None
    if doc["action"] in QUERIES:
        return BALP + "PatientQuery" if doc.get("query") else None
    if doc["action"] == "read" and len(doc.get("refs") or ()) == 1:
        return BALP + "PatientRead"
    return None


def _agents(doc: dict[str, Any], query: bool, server: str, base: str) -> list[dict[str, Any]]:
    """Client and server (DICOM roles swap for a query, as BALP says), the user, their org.

    A user with a role is a smartcard user, named by their SDS user id; one without (an
    operator at the command line, a manual identity decision) by their login name, in the
    deployment's own namespace."""
    client_role, server_role = ("110153", "110152") if query else ("110152", "110153")
    client: dict[str, Any] = {
        "type": _coding(DCM, client_role),
        "who": {"display": doc.get("user_agent") or "unknown client"},
        "requestor": False,
    }
    if doc.get("client_address"):
        client["network"] = {"address": doc["client_address"], "type": "2"}
    purposes = [doc["purpose"]] if doc.get("purpose") else []
    if doc.get("break_glass_code"):
        purposes.append("BTG")
    # A refused token names no one: the user agent then says so, and there is no organisation
    # agent (R4 refuses an empty string anywhere, so nothing empty is written).
    users = SDS_USER if doc.get("role_code") else base + OPERATOR
    user: dict[str, Any] = {
        "type": _coding(PARTICIPATION, "IRCP"),
        "who": (
            {"identifier": {"system": users, "value": doc["user_id"]}}
            if doc.get("user_id")
            else {"display": "unauthenticated user"}
        ),
        "requestor": True,
    }
    if doc.get("user_name"):
        user["name"] = doc["user_name"]
    job = (doc.get("role_code") or "").rsplit(":", 1)[-1]
    if job:
        user["role"] = [_concept(JOB_ROLE, job)]
    if purposes:
        user["purposeOfUse"] = [_concept(ACT_REASON, p) for p in purposes]
    server_agent = {
        "type": _coding(DCM, server_role),
        "who": {"display": "scr"},
        "requestor": False,
        "network": {"address": server, "type": "1"},
    }
    if not doc.get("org"):
        return [client, server_agent, user]
    org = {
        "type": _coding(ROLE_CLASS, "PROV"),
        "who": {"identifier": {"system": ODS, "value": doc["org"]}},
        "requestor": False,
    }
    return [client, server_agent, user, org]


def _patient(doc: dict[str, Any], base: str, patient_of: PatientOf) -> dict[str, Any]:
    """The patient entity's ``what``: a Patient the API serves, and the NHS number; the person
    id only when neither is known. Empty when the entry names no one."""
    person = doc.get("patient_id")
    served = patient_of(person) if person else None
    what: dict[str, Any] = {"reference": f"Patient/{served}"} if served else {}
    if doc.get("nhs_number"):
        what["identifier"] = {"system": NHS_NUMBER, "value": doc["nhs_number"]}
    elif person and not served:
        what["identifier"] = {"system": base + PERSON, "value": person}
    return what


def _entities(
    doc: dict[str, Any], query: bool, results: bool, base: str, patient_of: PatientOf
) -> list[dict[str, Any]]:
    """The transaction, the query (for a query), what was released (when ``results``), and the
    patient with the counts."""
    request: dict[str, Any] = {
        "type": {"system": BALP_ENTITY, "code": "XrequestId"},
        "what": {"identifier": {"value": doc["request_id"]}},
    }
    if not query and doc.get("query"):  # what was asked, in words (a page, a command)
        request["description"] = doc["query"]
    out: list[dict[str, Any]] = [request]
    if query and doc.get("query"):
        out.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2"},
                "role": {"system": OBJECT_ROLE, "code": "24"},
                "query": base64.b64encode(doc["query"].encode()).decode(),
            }
        )
    if results:
        out += [
            {
                "type": {"system": ENTITY_TYPE, "code": "2"},
                "role": {"system": OBJECT_ROLE, "code": "4"},
                "what": {"reference": ref},
            }
            for ref in doc.get("refs") or ()
        ]
    what = _patient(doc, base, patient_of)
    if what:  # an attempt on a number nobody (or several people) hold names it alone
        detail = [
            {"type": f"disclosed:{t}", "valueString": str(n)}
            for t, n in (doc.get("disclosed") or {}).items()
        ] + [
            {"type": f"withheld:{r}", "valueString": str(n)}
            for r, n in (doc.get("withheld") or {}).items()
        ]
        if doc.get("break_glass_code"):
            detail.append({"type": "break-glass-reason", "valueString": doc["break_glass_code"]})
        if doc.get("patient_id"):
            detail.append({"type": "person-id", "valueString": doc["patient_id"]})
        patient: dict[str, Any] = {
            "type": {"system": ENTITY_TYPE, "code": "1"},
            "role": {"system": OBJECT_ROLE, "code": "1"},
            "what": what,
        }
        if detail:
            patient["detail"] = detail
        out.append(patient)
    return out


def audit_event(
    doc: dict[str, Any], base: str, patient_of: PatientOf = no_patient
) -> dict[str, Any]:
    """One entry as an AuditEvent; ``base`` is the deployment's canonical base URL,
    ``patient_of`` the lookup of the Patient id the API serves for a person."""
    doc = {k: v if k in _CODED or not isinstance(v, str) else _shown(v) for k, v in doc.items()}
    server = urlsplit(base).hostname or "scr"
    query = doc["action"] in QUERIES
    permit = doc["outcome"] == "permit"
    profile = _profile(doc)
    # A PatientQuery records the query, not its results; any other event names what left.
    results = profile != BALP + "PatientQuery"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"scr-audit-{doc['seq']}",
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest"},
        "subtype": [{"system": RESTFUL, "code": QUERIES.get(doc["action"], "read")}],
        "action": "E" if query else "R",
        "recorded": doc["time"],
        "outcome": "0" if permit else "4",
        "agent": _agents(doc, query, server, base),
        "source": {"observer": {"display": "scr"}},
        "entity": _entities(doc, query, results, base, patient_of),
    }
    if doc["action"] not in READS and not query:
        event["type"] = {"system": DCM, "code": "110110"}  # Patient Record
        event["subtype"] = [{"system": f"{base}CodeSystem/audit-action", "code": doc["action"]}]
    if not permit:
        event["outcomeDesc"] = "refused: " + ", ".join(doc.get("rules") or ())
    if profile is not None:
        event["meta"] = {"profile": [profile]}
    return event


def fhir_bundle(
    docs: Iterable[dict[str, Any]], base: str, patient_of: PatientOf = no_patient
) -> Iterator[bytes]:
    """A ``collection`` Bundle of AuditEvents, written piece by piece (bounded memory)."""
    yield b'{"resourceType":"Bundle","type":"collection","entry":['
    for n, doc in enumerate(docs):
        event = audit_event(doc, base, patient_of)
        yield (b"," if n else b"") + orjson.dumps(
            {"fullUrl": f"urn:uuid:{_uuid(doc)}", "resource": event}
        )
    yield b"]}"


def _uuid(doc: dict[str, Any]) -> str:
    """A stable UUID per entry, from its request id and sequence number."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"scr-audit:{doc['seq']}:{doc['request_id']}"))


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        text = orjson.dumps(value).decode() if value else ""
    else:
        text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(docs: Iterable[dict[str, Any]]) -> Iterator[str]:
    """CSV text, header first, one line per entry."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for doc in docs:
        writer.writerow([_cell(doc.get(c)) for c in CSV_COLUMNS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue()
