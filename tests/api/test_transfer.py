"""``POST /fhir/$process-message`` and ``/transfers``: red-bag messages in, status out.

Every bad message is refused with 422, an issue naming what is wrong by FHIRPath, and nothing
stored; a good one is stored once however often (or however concurrently) it is sent.
"""

from __future__ import annotations

import base64
import copy
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

import audit.writer
from audit import RequestContext
from audit.chain import Sealed
from audit.entry import AuditEntry, flat
from audit.report import lines
from audit.tables import AuditRow
from consent import Request, decide
from engine.api.deps import who_for
from engine.api.errors import FhirError
from engine.api.transfer import acknowledge, inbox
from engine.gate import gather_facts
from engine.identity import patients_of, people_with_nhs_number
from engine.transfer import news2, signature
from engine.transfer import rules as transfer_rules
from engine.transfer import store as transfers
from engine.transfer.form import (
    ACVPU_SCORE,
    NEWS2_TOTAL,
    ON_AIR,
    ON_OXYGEN,
    SNOMED,
    DischargeForm,
    Person,
    acknowledgement_message,
    discharge_message,
    transfer_message,
)
from engine.transfer.message import Header
from engine.transfer.receive import receive
from engine.transfer.rules import NOT_IN_CARE, Refused
from engine.transfer.tables import MESSAGES, STATUS, TRANSFERS
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.transfers import (
    BASE,
    CARE_HOME,
    CARE_ROLE,
    FORM,
    HOSPITAL,
    OTHER_HOME,
    OTHER_HOSPITAL,
    at_once,
    home,
    keys,
    place,
    signed,
    unsigned,
)

__all__ = ["home", "keys"]  # fixtures shared with the other transfer tests
from tests.factories import nhs_numbers

URL = "/fhir/$process-message"
UTC_ZONE = ZoneInfo("UTC")
PATIENT_ENTRY = "Bundle.entry[2].resource"


def send(client: TestClient, tok: str, doc: Any) -> Any:
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    headers = auth(tok) | {"Content-Type": "application/fhir+json"}
    return client.post(URL, content=body, headers=headers)


def sent_transfer(
    client: TestClient, home: str, keys: dict[str, Ed25519PrivateKey], **over: Any
) -> str:
    """A care-home transfer the home sent and scr accepted: its transfer id."""
    doc = signed(unsigned(**over), keys[CARE_HOME])
    assert send(client, home, doc).status_code == 200
    found: str = doc["entry"][0]["resource"]["id"]
    return found


def count(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def everything(client: TestClient, tok: str) -> int:
    return client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(tok)).status_code


def test_a_good_transfer_is_stored_byte_exact_and_opens_the_hospital_inbox(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    doc = signed(unsigned(), keys[CARE_HOME])
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    answer = send(client, home, raw)
    assert answer.status_code == 200, answer.text
    header = answer.json()["entry"][0]["resource"]
    assert header["response"] == {"identifier": doc["entry"][0]["resource"]["id"], "code": "ok"}
    with store.engine.connect() as conn:
        assert conn.execute(select(MESSAGES.c.raw)).scalar_one() == raw
    inbox = client.get("/transfers", headers=auth(token("ae-doctor"))).json()["transfers"]
    assert [(t["nhs_number"], t["status"], t["care_home"]) for t in inbox] == [
        (NHS, "received", CARE_HOME)
    ]
    with store.engine.connect() as conn:
        actions = conn.execute(select(AuditRow.action, AuditRow.outcome)).all()
    assert ("transfer-receive", "permit") in [tuple(a) for a in actions]


def test_same_message_twice_gets_the_same_response_and_stores_nothing_new(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    doc = signed(unsigned(), keys[CARE_HOME])
    first, again = send(client, home, doc), send(client, home, doc)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert (count(store, MESSAGES), count(store, TRANSFERS), count(store, STATUS)) == (1, 1, 2)


def test_a_resubmission_is_still_checked_for_its_signature_and_names_its_transfer(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """The same message again was answered from the stored copy before anything else, its
    signature unchecked: a copy with junk for one was answered 200 as the sender's. And its
    audit entry named no one, where the first named the person and the transfer."""
    doc = signed(unsigned(), keys[CARE_HOME])
    assert send(client, home, doc).status_code == 200
    forged = copy.deepcopy(doc)
    forged["signature"]["data"] = base64.b64encode(b"e30..AAAA").decode()
    refused = send(client, home, forged)
    assert refused.status_code == 422
    assert [i["expression"] for i in refused.json()["issue"]] == [["Bundle.signature"]]
    assert send(client, home, doc).status_code == 200
    with store.engine.connect() as conn:
        bodies = conn.execute(select(AuditRow.body).order_by(AuditRow.seq)).scalars().all()
    first, denied, again = [flat(orjson.loads(b)) for b in bodies][-3:]
    assert denied["outcome"] == "deny" and again["rules"] == ["transfer.resubmitted"]
    for key in ("patient_id", "nhs_number", "refs"):
        assert again[key] == first[key] and first[key]
    assert count(store, MESSAGES) == 1


def test_same_id_with_other_content_is_a_conflict(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    doc = unsigned()
    assert send(client, home, signed(doc, keys[CARE_HOME])).status_code == 200
    changed = copy.deepcopy(doc)
    changed["entry"][1]["resource"]["title"] = "Changed after sending"
    refused = send(client, home, signed(changed, keys[CARE_HOME]))
    assert refused.status_code == 409
    assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.id"]
    assert count(store, MESSAGES) == 1


def _without_nhs(doc: dict[str, Any]) -> None:
    doc["entry"][2]["resource"]["identifier"] = []


def _nhs(value: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        doc["entry"][2]["resource"]["identifier"][0]["value"] = value

    return change


def _no_observations(doc: dict[str, Any]) -> None:
    sections = doc["entry"][1]["resource"]["section"]
    doc["entry"][1]["resource"]["section"] = [
        s for s in sections if s["code"]["coding"][0]["code"] != "observations"
    ]


def _bad_r4(doc: dict[str, Any]) -> None:
    doc["entry"][3]["resource"]["valueQuantity"] = "high"


def _second_patient_same_url(doc: dict[str, Any]) -> None:
    """Another Patient under the subject's fullUrl, first: a reader taking the first match
    would see someone else."""
    other = copy.deepcopy(doc["entry"][2])
    other["resource"]["name"] = [{"family": "Other", "given": ["Someone"]}]
    doc["entry"].insert(2, other)


def _another(doc: dict[str, Any], i: int, at: int, **resource: Any) -> None:
    """A copy of entry ``i`` (under a fresh fullUrl, with ``resource`` changed) put at ``at``."""
    copied = copy.deepcopy(doc["entry"][i])
    copied["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    copied["resource"] |= resource
    doc["entry"].insert(at, copied)


def _decoy_composition_first(doc: dict[str, Any]) -> None:
    """The focus names the real Composition, now second: the pages must not show the first."""
    _another(doc, 1, 1, title="Routine review")


def _second_header(doc: dict[str, Any]) -> None:
    _another(doc, 0, len(doc["entry"]), id=str(uuid.uuid4()))


def _stale_news2_total_first(doc: dict[str, Any]) -> None:
    """A stale 0 ahead of the real total: rules and pages must read one total, the same."""
    _another(doc, 10, 10)
    doc["entry"][10]["resource"]["valueQuantity"]["value"] = 0


def _nameless_patient(doc: dict[str, Any]) -> None:
    """Neither a family name nor a birth date: nothing to check the NHS number against."""
    patient = doc["entry"][2]["resource"]
    patient.pop("birthDate")
    patient["name"] = [{"given": ["Renée"]}]


def _bad_r4_in_a_list(doc: dict[str, Any]) -> None:
    """An R4 problem inside a repeating element: FHIRPath indexes it, ``name[0].family``."""
    doc["entry"][2]["resource"]["name"][0]["family"] = 7


def _header_id_not_a_uuid(doc: dict[str, Any]) -> None:
    doc["entry"][0]["resource"]["id"] = "0" * 36


BAD_NHS = NHS[:9] + str((int(NHS[9]) + 1) % 10)
UNKNOWN = next(nhs_numbers(999_600_000))


def _entry_request(doc: dict[str, Any]) -> None:
    """A batch's DELETE of another Patient, carried by a message's entry (bdl-3)."""
    doc["entry"][12]["request"] = {"method": "DELETE", "url": "Patient/someone-else"}


def _entry_unknown_key(doc: dict[str, Any]) -> None:
    doc["entry"][12]["evil"] = True


def _full_url_newline(doc: dict[str, Any]) -> None:
    """A pattern's $ matches before a final newline in Python's regular expressions."""
    doc["entry"][12]["fullUrl"] += "\n"


def _timestamp_not_an_instant(doc: dict[str, Any]) -> None:
    doc["timestamp"] = "yesterday"


def _reading_entered_in_error(doc: dict[str, Any]) -> None:
    """A reading so marked would be scored into the NEWS2 total all the same."""
    doc["entry"][3]["resource"]["status"] = "entered-in-error"


def _composition_entered_in_error(doc: dict[str, Any]) -> None:
    doc["entry"][1]["resource"]["status"] = "entered-in-error"


def _script_summary(doc: dict[str, Any]) -> None:
    """Served on to systems that may render it: no script, no event handler (txt-1)."""
    doc["entry"][1]["resource"]["section"][1]["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(1)"/></div>'
    )


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (_without_nhs, f"{PATIENT_ENTRY}.identifier"),
        (_nhs(BAD_NHS), f"{PATIENT_ENTRY}.identifier[0].value"),
        (_nhs(UNKNOWN), f"{PATIENT_ENTRY}.identifier[0].value"),
        (_no_observations, "Bundle.entry[1].resource.section"),
        (_bad_r4, "Bundle.entry[3].resource.valueQuantity"),
        (_bad_r4_in_a_list, f"{PATIENT_ENTRY}.name[0].family"),
        (_second_patient_same_url, "Bundle.entry[3].fullUrl"),
        (_header_id_not_a_uuid, "Bundle.entry[0].resource.id"),
        (_decoy_composition_first, "Bundle.entry[1].resource"),
        (_second_header, "Bundle.entry[14].resource"),
        (_stale_news2_total_first, "Bundle.entry[11].resource"),
        (_nameless_patient, f"{PATIENT_ENTRY}.birthDate"),
        (_entry_request, "Bundle.entry[12].request"),
        (_entry_unknown_key, "Bundle.entry[12].evil"),
        (_full_url_newline, "Bundle.entry[12].fullUrl"),
        (_timestamp_not_an_instant, "Bundle.timestamp"),
        (_script_summary, "Bundle.entry[1].resource.section[1].text.div"),
        (_reading_entered_in_error, "Bundle.entry[3].resource.status"),
        (_composition_entered_in_error, "Bundle.entry[1].resource.status"),
    ],
    ids=["missing-nhs-number", "invalid-nhs-number", "unknown-patient", "missing-section",
         "invalid-r4", "invalid-r4-in-a-list", "repeated-full-url", "header-id-not-a-uuid",
         "second-composition", "second-header", "second-news2-total", "nameless-patient",
         "entry-request", "entry-unknown-key", "full-url-newline", "timestamp-not-an-instant",
         "script-in-a-summary", "reading-entered-in-error", "composition-entered-in-error"],
)  # fmt: skip
def test_bad_content_is_refused_naming_the_element_and_nothing_is_stored(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    change: Any, expression: str,
) -> None:  # fmt: skip
    doc = unsigned()
    change(doc)
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422, refused.text
    assert [expression] in [i.get("expression") for i in refused.json()["issue"]]
    assert count(store, MESSAGES) == count(store, TRANSFERS) == 0


def _focus_elsewhere(doc: dict[str, Any]) -> None:
    doc["entry"][0]["resource"]["focus"][0]["reference"] = (
        "urn:uuid:00000000-0000-4000-8000-000000000000"
    )


def _sender_a_number(doc: dict[str, Any]) -> None:
    doc["entry"][0]["resource"]["sender"]["identifier"]["value"] = 5


@pytest.mark.parametrize("header", [_focus_elsewhere, _sender_a_number])
def test_a_header_the_rules_cannot_follow_does_not_hide_the_content_s_problems(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    header: Any,
) -> None:  # fmt: skip
    """A focus naming no Composition, or a sender of the wrong JSON type, stopped the checks:
    an invalid NHS number beside it went unsaid, and the sender fixed one problem to meet the
    next. The content is checked on the one Composition there is."""
    doc = unsigned()
    header(doc)
    _nhs(BAD_NHS)(doc)
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    expressions = {e for i in refused.json()["issue"] for e in i.get("expression", [])}
    assert f"{PATIENT_ENTRY}.identifier[0].value" in expressions
    assert count(store, MESSAGES) == 0


def test_a_signature_element_invalid_as_r4_is_refused_at_it(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """The signature's own elements are R4's too (its JWS is checked apart): a ``when`` that
    is no instant was accepted, the signature being left out of the Bundle's validation."""
    doc = signed(unsigned(), keys[CARE_HOME])
    doc["signature"]["when"] = "soon"
    refused = send(client, home, doc)
    assert refused.status_code == 422
    assert [i["expression"] for i in refused.json()["issue"]] == [["Bundle.signature.when"]]
    assert count(store, MESSAGES) == 0


def _other_patient(doc: dict[str, Any]) -> str:
    """A second Patient, Alan Jones with an NHS number that fails its check digit, appended
    under a fresh fullUrl: that fullUrl."""
    other = copy.deepcopy(doc["entry"][2])
    other["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    other["resource"]["identifier"][0]["value"] = BAD_NHS
    other["resource"]["name"] = [{"family": "Jones", "given": ["Alan"]}]
    doc["entry"].append(other)
    return str(other["fullUrl"])


def test_every_entry_is_about_the_subject_and_no_other_patient_is_carried(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """Only the subject's NHS number, name and birth date are checked, and the pages show every
    entry as the subject's: another Patient (whatever its NHS number), and an entry about it,
    about someone outside the Bundle or about no one named, would be a wrong-patient record.
    Each is refused by its own issue."""
    doc = unsigned()
    other = _other_patient(doc)
    last = len(doc["entry"]) - 1
    doc["entry"][12]["resource"]["subject"] = {"reference": other}  # the medicine
    doc["entry"][11]["resource"]["patient"] = {"reference": "Patient/someone-else"}  # allergy
    doc["entry"][3]["resource"]["subject"] = {"display": "Renée Smith"}  # an observation
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422, refused.text
    expressions = [e for i in refused.json()["issue"] for e in i.get("expression", [])]
    assert sorted(expressions) == [
        "Bundle.entry[11].resource.patient", "Bundle.entry[12].resource.subject",
        f"Bundle.entry[{last}].resource", "Bundle.entry[3].resource.subject",
    ]  # fmt: skip
    assert count(store, MESSAGES) == count(store, TRANSFERS) == 0


def test_a_discharge_or_an_acknowledgement_is_about_its_subject_alone(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token,
) -> None:  # fmt: skip
    """The same rule for the hospital's messages: a discharge's diagnosis about someone else,
    or an acknowledgement carrying another Patient, is refused; as built, both are taken."""
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    wrong = discharge(transfer_id)
    condition = next(
        i for i, e in enumerate(wrong["entry"]) if e["resource"]["resourceType"] == "Condition"
    )
    wrong["entry"][condition]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    extra = acknowledgement(transfer_id)
    _other_patient(extra)
    for doc, expression in (
        (wrong, f"Bundle.entry[{condition}].resource.subject"),
        (extra, f"Bundle.entry[{len(extra['entry']) - 1}].resource"),
    ):
        refused = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
        assert refused.status_code == 422, refused.text
        assert [expression] in [i.get("expression") for i in refused.json()["issue"]]
    for doc in (acknowledgement(transfer_id), discharge(transfer_id)):
        taken = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
        assert taken.status_code == 200, taken.text
    assert count(store, MESSAGES) == 3


@pytest.mark.parametrize(
    ("where", "value", "expression"),
    [
        (("section",), None, "Bundle.entry[1].resource.section"),
        (("section",), [None], "Bundle.entry[1].resource.section"),
        (("section", 0, "code"), None, "Bundle.entry[1].resource.section"),
        (("section", 0, "code", "coding", 0, "code"), [], "Bundle.entry[1].resource.section"),
        (("subject",), "Patient", "Bundle.entry[1].resource.subject"),
        (("relatesTo",), 7, "Bundle.entry[1].resource.relatesTo"),
    ],
)
def test_an_element_of_the_wrong_json_type_is_refused_at_its_path_not_crashed_on(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    where: tuple[str | int, ...], value: Any, expression: str,
) -> None:  # fmt: skip
    doc = unsigned()
    node: Any = doc["entry"][1]["resource"]
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = value
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422, refused.text
    expressions = [e for i in refused.json()["issue"] for e in i.get("expression", [])]
    assert any(e.startswith(expression) for e in expressions), expressions
    assert count(store, MESSAGES) == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc.update(entry=[]),
        lambda doc: doc.update(entry=None),
        lambda doc: doc.pop("entry"),
        lambda doc: doc["entry"][0].pop("resource"),
        lambda doc: doc["entry"][2].update(resource=None),
        lambda doc: doc.update(entry=5),
        lambda doc: doc.update(entry=True),
        lambda doc: doc.update(entry="entries"),
    ],
    ids=[
        "no-entries",
        "null-entries",
        "entries-missing",
        "header-entry-empty",
        "null-patient",
        "number-entries",
        "true-entries",
        "text-entries",
    ],
)
def test_a_message_whose_entries_cannot_be_read_is_refused_not_crashed_on(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    change: Any,
) -> None:  # fmt: skip
    doc = unsigned()
    change(doc)
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422, refused.text
    assert count(store, MESSAGES) == 0


@pytest.mark.parametrize("value", [["x"], "abc", 5, True, None, {"data": 5}])
def test_a_signature_of_the_wrong_json_type_is_refused_and_audited_not_crashed_on(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, value: Any
) -> None:
    doc = signed(unsigned(), keys[CARE_HOME]) | {"signature": value}
    refused = send(client, home, doc)
    assert refused.status_code == 422, refused.text
    expressions = [e for i in refused.json()["issue"] for e in i.get("expression", [])]
    assert "Bundle.signature" in expressions
    assert count(store, MESSAGES) == 0
    assert len(refusal_rules(store)) == 1


def test_bad_parties_are_refused_each_by_its_expression(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    tampered = signed(unsigned(), keys[CARE_HOME])
    tampered["entry"][1]["resource"]["title"] = "Edited in transit"
    misnamed = signed(unsigned(), keys[CARE_HOME])
    misnamed["signature"]["who"]["identifier"]["value"] = OTHER_HOME
    cases = {
        "Bundle.signature": [tampered, signed(unsigned(), keys[OTHER_HOME])],
        "Bundle.signature.who.identifier.value": [misnamed],
        "Bundle.entry[0].resource.sender.identifier.value": [
            signed(unsigned(sender=OTHER_HOME), keys[OTHER_HOME], OTHER_HOME)
        ],
        "Bundle.entry[0].resource.destination[0].receiver.identifier.value": [
            signed(unsigned(to="R0000"), keys[CARE_HOME])
        ],
    }
    for expression, docs in cases.items():
        for doc in docs:
            refused = send(client, home, doc)
            assert refused.status_code == 422, refused.text
            assert [expression] in [i.get("expression") for i in refused.json()["issue"]]
    assert count(store, MESSAGES) == 0


def test_every_problem_is_listed_at_once(
    client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    doc = unsigned(to="R0000")
    _no_observations(doc)
    _nhs(BAD_NHS)(doc)
    refused = send(client, home, doc | {"signature": signed(doc, keys[OTHER_HOME])["signature"]})
    expressions = {e for i in refused.json()["issue"] for e in i.get("expression", [])}
    assert {
        "Bundle.signature", "Bundle.entry[1].resource.section",
        f"{PATIENT_ENTRY}.identifier[0].value",
        "Bundle.entry[0].resource.destination[0].receiver.identifier.value",
    } <= expressions  # fmt: skip


def test_a_problem_in_the_header_does_not_hide_the_rest(
    client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """A header the rules can still route (its source is wrong) leaves the message readable, so
    its other problems are listed too, in one answer."""
    doc = unsigned()
    del doc["entry"][0]["resource"]["source"]["endpoint"]
    _no_observations(doc)
    _nhs(BAD_NHS)(doc)
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    expressions = {e for i in refused.json()["issue"] for e in i.get("expression", [])}
    assert {
        "Bundle.entry[0].resource.source", "Bundle.entry[1].resource.section",
        f"{PATIENT_ENTRY}.identifier[0].value",
    } <= expressions  # fmt: skip


def _upper_case_full_url(doc: dict[str, Any]) -> str:
    doc["entry"][5]["fullUrl"] = "urn:uuid:" + str(uuid.uuid4()).upper()
    return "Bundle.entry[5].fullUrl"


def _header_id_zeros(doc: dict[str, Any]) -> str:
    _header_id_not_a_uuid(doc)
    return "Bundle.entry[0].resource.id"


@pytest.mark.parametrize("malformed", [_header_id_zeros, _upper_case_full_url])
def test_a_malformed_header_id_or_full_url_does_not_hide_the_rest(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    malformed: Callable[[dict[str, Any]], str],
) -> None:  # fmt: skip
    """A header id or an entry's fullUrl that is not a lowercase UUID leaves the message
    readable: the signature, the destination and the NHS number are still checked, and
    every problem comes back in one answer."""
    doc = unsigned(to="R0000")
    _without_nhs(doc)
    where = malformed(doc)
    refused = send(client, home, doc | {"signature": signed(doc, keys[OTHER_HOME])["signature"]})
    assert refused.status_code == 422
    expressions = {e for i in refused.json()["issue"] for e in i.get("expression", [])}
    assert {
        where, "Bundle.signature", f"{PATIENT_ENTRY}.identifier",
        "Bundle.entry[0].resource.destination[0].receiver.identifier.value",
    } <= expressions, expressions  # fmt: skip
    assert count(store, MESSAGES) == 0


def test_malformed_json_and_a_huge_body_are_refused(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    malformed = send(client, home, b'{"resourceType": "Bundle", ')
    assert malformed.status_code == 422
    assert malformed.json()["issue"][0]["expression"] == ["Bundle"]

    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1_000_000

    headers = auth(home) | {"Content-Type": "application/fhir+json"}
    huge = client.post(URL, content=chunks(), headers=headers)
    declared = client.post(URL, content=b" " * 10_000_000, headers=headers)
    for refused in (huge, declared):
        assert refused.status_code == 422
        (issue,) = refused.json()["issue"]
        assert (issue["code"], issue["expression"]) == ("too-costly", ["Bundle"])
        assert "larger than 5,000,000 bytes" in issue["diagnostics"]
    assert count(store, MESSAGES) == 0
    with store.engine.connect() as conn:
        refusals = conn.execute(
            select(AuditRow.seq).where(
                AuditRow.action == "transfer-receive", AuditRow.outcome == "deny"
            )
        ).all()
    assert len(refusals) == 3


@pytest.mark.parametrize(
    ("ctype", "status"),
    [
        ("text/plain", 415), ("application/xml", 415), ("application/fhir+xml", 415),
        ("application/x-www-form-urlencoded", 415), (None, 415),
        ("application/json", 200), ("Application/FHIR+JSON; charset=utf-8", 200),
    ],
)  # fmt: skip
def test_a_body_not_declared_as_json_is_refused_415_and_audited(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    ctype: str | None, status: int,
) -> None:  # fmt: skip
    """A message is FHIR JSON and says so; one declared as anything else, or as nothing, is
    refused before it is read (415), and the refusal is audited as any other of the route."""
    body = orjson.dumps(signed(unsigned(), keys[CARE_HOME]))
    headers = auth(home) | ({"Content-Type": ctype} if ctype else {})
    answer = client.post(URL, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert count(store, MESSAGES) == (status == 200)
    if status == 415:
        (issue,) = answer.json()["issue"]
        assert issue["code"] == "not-supported"
        assert refusal_rules(store) == [["transfer.not-supported"]]


@pytest.mark.parametrize(
    ("junk", "issues"),
    [(500_000, 1), (5_000, transfer_rules.MAX_PROBLEMS + 1)],
    ids=["past-the-value-bound", "past-the-entry-bound"],
)
def test_junk_within_the_size_limit_gets_a_short_answer(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    junk: int, issues: int,
) -> None:  # fmt: skip
    """One body of junk entries, well under the size limit, used to cost seconds of checks and
    an answer 60 times its size (an issue per item): past the bound on JSON values it is
    refused at once, and past the schema's entry bound its issues stop at the cap, the last
    saying how many more there were."""
    doc = signed(unsigned(), keys[CARE_HOME])
    doc["entry"] += [1] * junk
    body = orjson.dumps(doc)
    refused = send(client, home, body)
    assert refused.status_code == 422
    found = refused.json()["issue"]
    assert len(found) == issues and len(refused.content) < len(body)
    assert found[-1]["expression"] == ["Bundle"] and found[-1]["code"] == "too-costly"
    if issues > 1:
        assert found[0]["expression"] == ["Bundle.entry"]
        more = junk + 1 - transfer_rules.MAX_PROBLEMS  # an issue an item, and the bound's
        assert found[-1]["diagnostics"].startswith(f"{more:,} more problems")
    assert count(store, MESSAGES) == 0 and len(refusal_rules(store)) == 1


def test_every_problem_of_a_real_message_is_listed() -> None:
    """The cap is far past a real message's problems: up to it, each is listed."""
    problems = [transfer_rules.Problem("value", str(i)) for i in range(transfer_rules.MAX_PROBLEMS)]
    assert transfer_rules.listed(problems) == problems


def _with_bad_flags(doc: dict[str, Any], n: int) -> None:
    """``n`` Flags missing their required elements: R4 problems, each at its own entry (a
    care-home system with a bug in one resource kind, say)."""
    for _ in range(n):
        doc["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}",
                             "resource": {"resourceType": "Flag"}})  # fmt: skip


def test_a_refusal_past_the_problem_cap_still_audits_why_the_person_was_refused(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """The cap is on the answer; the trail still says the number is held by no one
    (``transfer.person-unknown``), as it does for the same message with fewer problems, so a
    sender padding a message with R4 problems cannot probe numbers off the record."""
    few = unsigned()
    _nhs(UNKNOWN)(few)
    _with_bad_flags(few, 1)
    assert send(client, home, signed(few, keys[CARE_HOME])).status_code == 422
    many = unsigned()
    _nhs(UNKNOWN)(many)
    _with_bad_flags(many, transfer_rules.MAX_PROBLEMS + 1)
    refused = send(client, home, signed(many, keys[CARE_HOME]))
    assert refused.status_code == 422
    assert refused.json()["issue"][-1]["code"] == "too-costly"  # the cap was reached
    first, second = refusal_rules(store)
    assert "transfer.person-unknown" in first  # below the cap it is audited
    assert "transfer.person-unknown" in second, second
    assert count(store, MESSAGES) == 0


def test_past_the_cap_the_wrong_person_problem_is_still_listed(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """Problems were listed in the order found (schema, R4, ... parties last), so the problem
    a nurse most needs before the ambulance leaves (the NHS number is not one in the home's
    care) was the one cut: the parties' problems come first, the structure's after."""
    doc = unsigned()
    _nhs(UNKNOWN)(doc)
    _with_bad_flags(doc, transfer_rules.MAX_PROBLEMS + 1)
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    said = [i["diagnostics"] for i in refused.json()["issue"]]
    assert said[0] == NOT_IN_CARE, said[:3]


@pytest.mark.parametrize("where", ["Bundle", "Patient"])
@pytest.mark.parametrize("depth", [transfer_rules.MAX_DEPTH, 300])
def test_a_message_nested_past_the_bound_is_refused_and_audited_not_crashed_on(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    where: str, depth: int,
) -> None:  # fmt: skip
    """orjson reads 1,024 levels but writes only 255, so hashing a deep body raised: a 500,
    unaudited. Past the bound (far past any real message) it is refused before it is hashed."""
    doc = signed(unsigned(), keys[CARE_HOME])
    (doc if where == "Bundle" else doc["entry"][2]["resource"])["implicitRules"] = "DEEP"
    body = orjson.dumps(doc).replace(b'"DEEP"', b"[" * depth + b"]" * depth)
    refused = send(client, home, body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"][0]["expression"] == ["Bundle"]
    assert count(store, MESSAGES) == 0 and len(refusal_rules(store)) == 1


@pytest.mark.parametrize("url", [{"a": 1}, ["urn:uuid:x"], 7])
def test_a_header_entry_whose_full_url_is_not_a_string_is_refused_at_it(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, url: Any
) -> None:
    doc = unsigned()
    doc["entry"][0]["fullUrl"] = url
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422, refused.text
    assert ["Bundle.entry[0].fullUrl"] in [i.get("expression") for i in refused.json()["issue"]]
    assert count(store, MESSAGES) == 0


def test_an_entry_whose_full_url_is_not_a_string_names_nothing() -> None:
    entry = {"fullUrl": ["urn:uuid:x"], "resource": {"resourceType": "Patient"}}
    assert transfer_rules._by_url({"entry": [entry]}) == {}


def test_a_body_with_a_key_twice_is_refused_and_nothing_is_kept(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """The signature covers orjson's reading (the last value); the stored bytes would hold
    both, and a reader taking the first would see another birth date than was signed."""
    raw = orjson.dumps(signed(unsigned(), keys[CARE_HOME]))
    real = b'"birthDate":"1950-03-01"'
    forged = raw.replace(real, b'"birthDate":"1961-07-07",' + real)
    assert forged != raw
    refused = send(client, home, forged)
    assert refused.status_code == 422
    (issue,) = refused.json()["issue"]
    assert issue["expression"] == ["Bundle"] and "'birthDate' appears twice" in issue["diagnostics"]
    assert count(store, MESSAGES) == 0 and len(refusal_rules(store)) == 1


@pytest.mark.parametrize("indent", [False, True])
def test_a_key_twice_is_found_however_the_body_is_written(indent: bool) -> None:
    """A body as orjson writes it is not read again for keys (the writing holds each once);
    one written otherwise is, and one with a key twice never passes for the first kind."""
    doc = signed(unsigned(), signature.new_key())
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0)
    assert transfer_rules.check_json(raw, orjson.loads(raw)) == []
    patient = b'"resourceType": "Patient"' if indent else b'"resourceType":"Patient"'
    twice = raw.replace(patient, patient + (b", " if indent else b",") + patient, 1)
    (problem,) = transfer_rules.check_json(twice, orjson.loads(twice))
    assert "'resourceType' appears twice" in problem.diagnostics


def test_the_same_message_sent_ten_times_at_once_is_stored_once(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    raw = orjson.dumps(signed(unsigned(), keys[CARE_HOME]))
    svc = client.app.state.services  # type: ignore[attr-defined]
    who = who_for(svc, svc.verifier.verify(home))
    answers = at_once(10, lambda i: receive(inbox(svc), who, RequestContext(f"race-{i}"), raw))
    assert len(answers) == 10 and len(set(answers)) == 1
    assert (count(store, MESSAGES), count(store, TRANSFERS)) == (1, 1)
    with store.engine.connect() as conn:  # one acceptance in the trail, nine resubmissions
        said = [flat(orjson.loads(b))["rules"][0] for b in conn.execute(
            select(AuditRow.body).where(AuditRow.action == "transfer-receive")
        ).scalars()]  # fmt: skip
    assert sorted(said) == ["transfer.accepted"] + ["transfer.resubmitted"] * 9


def test_a_message_whose_audit_entry_fails_is_not_kept(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The acceptance and its entry commit together: when the database refuses the entry,
    after the message's rows were written in the same transaction, the sender gets 503, and
    nothing of the message is kept to open the hospital's access."""
    real_row, real_around = Sealed.row, audit.writer._around

    def no_body(self: Sealed) -> dict[str, Any]:  # SQLite: sealed by the writer
        return real_row(self) | {"body": None}

    def no_start(e: AuditEntry) -> tuple[bytes | None, bytes]:  # PostgreSQL: by the database
        return None, real_around(e)[1]

    monkeypatch.setattr(Sealed, "row", no_body)
    monkeypatch.setattr(audit.writer, "_around", no_start)
    answer = send(client, home, signed(unsigned(), keys[CARE_HOME]))
    assert answer.status_code == 503
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert (count(store, MESSAGES), count(store, TRANSFERS), count(store, STATUS)) == (0, 0, 0)


def test_the_hospital_gains_a_relationship_on_receipt_and_loses_it_after_the_window(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    doctor = token("ae-doctor")
    other = token("ae-doctor", org=OTHER_HOSPITAL, user_id="u-other-hospital")
    assert everything(client, doctor) != 200
    assert send(client, home, signed(unsigned(), keys[CARE_HOME])).status_code == 200
    assert everything(client, doctor) == 200
    assert everything(client, other) != 200
    svc = client.app.state.services  # type: ignore[attr-defined]
    who = who_for(svc, svc.verifier.verify(doctor))
    window = svc.policy.relationships["hospital"]["transfer"]
    with store.engine.connect() as conn:
        (person,) = people_with_nhs_number(conn, NHS)
        facts = gather_facts(conn, person, patients_of(conn, person), svc.policy)
    assert [r.org for r in facts.relationships if r.kind == "transfer"] == [HOSPITAL]
    later = datetime.now(UTC) + timedelta(days=window or 0, hours=1)
    ask = Request("everything")
    assert decide(who, facts, who.purpose, ask, datetime.now(UTC), svc.policy).permit
    assert not decide(who, facts, who.purpose, ask, later, svc.policy).permit
    # and through the API, on this backend's stored steps, once the window has passed
    with store.engine.begin() as conn:
        for step, at in conn.execute(select(STATUS.c.id, STATUS.c.at)).all():
            back = at - timedelta(days=(window or 0) + 1)
            conn.execute(update(STATUS).where(STATUS.c.id == step).values(at=back))
    assert everything(client, doctor) == 404 and everything(client, other) == 404


def test_a_stay_open_past_the_window_can_still_be_seen_and_discharged_by_its_hospital(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    """The window bounds the hospital's reads of the record after receipt, not its finishing
    the transfer it received: 91 days into a stay, the transfer vanished from its list and
    its discharge was refused ("no current relationship"), so the care home never got one."""
    found = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    assert client.post(f"/transfers/{found}/acknowledge", headers=auth(doctor)).status_code == 200
    window = client.app.state.services.policy.relationships["hospital"]["transfer"]  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        for step, at in conn.execute(select(STATUS.c.id, STATUS.c.at)).all():
            back = at - timedelta(days=(window or 0) + 1)
            conn.execute(update(STATUS).where(STATUS.c.id == step).values(at=back))
    assert everything(client, doctor) == 404
    listed = client.get("/transfers", headers=auth(doctor)).json()["transfers"]
    assert [t["id"] for t in listed] == [found]
    answer = send(client, doctor, signed(discharge(found), keys[HOSPITAL], HOSPITAL))
    assert answer.status_code == 200, answer.text


def test_the_hospitals_relationship_follows_the_person_through_a_merge(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    doctor = token("ae-doctor")
    other = token("ae-doctor", org=OTHER_HOSPITAL, user_id="u-other-hospital")
    assert send(client, home, signed(unsigned(), keys[CARE_HOME])).status_code == 200
    store.merge()
    assert everything(client, doctor) == 200
    assert everything(client, other) != 200


def discharge(transfer_id: str, person: Person = FORM.person) -> dict[str, Any]:
    return discharge_message(
        DischargeForm(person, ["Fractured neck of femur, repaired"],
                      started=["Alendronic acid"], follow_up="Fracture clinic in 6 weeks",
                      belongings_returned=["Glasses"], completed_by="Dr Ben Synthetic"),
        sender=HOSPITAL, destination=CARE_HOME, transfer_id=transfer_id, now=datetime.now(UTC),
        base=BASE,
    )  # fmt: skip


def test_only_the_two_organisations_see_a_transfer_and_its_steps_run_in_order(
    client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    stranger = token("gp", org=OTHER_HOME, role_code=CARE_ROLE, user_id="u-other-home")
    path = f"/transfers/{transfer_id}"
    assert client.get(path, headers=auth(stranger)).status_code == 404
    assert client.get("/transfers", headers=auth(stranger)).json()["transfers"] == []
    assert client.get(path, headers=auth(home)).json()["status"] == "received"
    assert client.post(path + "/acknowledge", headers=auth(home)).status_code == 409
    assert client.post(path + "/acknowledge", headers=auth(doctor)).json()["status"] == (
        "acknowledged"
    )
    sent = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert sent.status_code == 200, sent.text
    assert client.post(path + "/acknowledge", headers=auth(home)).json()["status"] == "returned"
    seen = client.get(path, headers=auth(home)).json()
    assert [s["status"] for s in seen["history"]] == [
        "sent", "received", "acknowledged", "discharged", "returned"
    ]  # fmt: skip
    assert [m["event"] for m in seen["messages"]] == ["care-home-transfer", "hospital-discharge"]


@pytest.mark.parametrize(
    ("who", "headers"),
    [
        ({"ig_training": date.today() - timedelta(days=800)}, {}),
        ({}, {"x-purpose-of-use": "POPHLTH"}),
        ({}, {"x-purpose-of-use": "BOGUS"}),
    ],
    ids=["training-lapsed", "secondary-purpose", "unknown-purpose"],
)
def test_a_transfer_is_read_only_as_the_policy_lets_its_person_be_read(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, who: dict[str, Any], headers: dict[str, str],
) -> None:  # fmt: skip
    """A transfer carries the person's medicines and allergies: a hospital doctor the record
    is refused to (lapsed IG training, a purpose that is not direct care) gets the same 404
    from /transfers, sees nothing listed and cannot acknowledge, and the trail says why."""
    transfer_id = sent_transfer(client, home, keys)
    doctor = {**auth(token("ae-doctor", user_id="u-refused", **who)), **headers}
    path = f"/transfers/{transfer_id}"
    assert client.get(path, headers=doctor).status_code == 404
    assert client.get("/transfers", headers=doctor).json()["transfers"] == []
    assert client.post(path + "/acknowledge", headers=doctor).status_code == 404
    assert client.get(path, headers=auth(token("ae-doctor"))).status_code == 200
    with store.engine.connect() as conn:
        refused = conn.execute(
            select(AuditRow.body).where(AuditRow.user_id == "u-refused", AuditRow.outcome == "deny")
        ).scalars().all()  # fmt: skip
    assert len(refused) == 3  # the view, the list and the acknowledgement
    assert all(flat(orjson.loads(b))["nhs_number"] == NHS for b in refused)


def test_an_acknowledgement_that_loses_a_race_is_audited_as_refused_not_as_done(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Between reading the transfer and moving it, another step moved it on: the step and its
    entry commit together, so the trail holds a refusal for it and no acknowledgement."""
    transfer_id = sent_transfer(client, home, keys)

    def beaten(conn: Any, tid: str, *args: Any) -> None:
        raise transfers.Closed(tid, "acknowledged")

    monkeypatch.setattr("engine.api.transfer.store.step", beaten)
    late = client.post(f"/transfers/{transfer_id}/acknowledge", headers=auth(token("ae-doctor")))
    assert late.status_code == 409
    assert trail(store, "transfer-acknowledge") == [("transfer-acknowledge", "deny", HOSPITAL)]


def test_a_discharge_must_name_a_transfer_of_that_person_between_those_parties(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], token: Token
) -> None:
    doctor = token("ae-doctor")
    form = DischargeForm(FORM.person, ["Chest infection"], completed_by="Dr Ben Synthetic")
    for transfer_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid\x00"):
        doc = discharge_message(
            form, sender=HOSPITAL, destination=CARE_HOME, transfer_id=transfer_id,
            now=datetime.now(UTC), base=BASE,
        )  # fmt: skip
        refused = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
        assert refused.status_code == 422
        assert ["Bundle.entry[1].resource.relatesTo"] in [
            i.get("expression") for i in refused.json()["issue"]
        ]
    assert client.get("/transfers/%00x", headers=auth(doctor)).status_code == 404
    assert count(store, MESSAGES) == 0


def trail(store: Store, *actions: str) -> list[tuple[str, str, str]]:
    """(action, outcome, organisation) of each entry with one of ``actions``, in order."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(AuditRow.action, AuditRow.outcome, AuditRow.org)
            .where(AuditRow.action.in_(actions))
            .order_by(AuditRow.seq)
        ).all()
    return [tuple(r) for r in rows]


def test_each_step_is_audited_as_its_own_action_and_reported_to_the_person(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    doc = signed(unsigned(), keys[CARE_HOME])
    transfer_id = doc["entry"][0]["resource"]["id"]
    path = f"/transfers/{transfer_id}"
    doctor = token("ae-doctor")
    assert send(client, home, doc).status_code == 200
    assert client.post(path + "/acknowledge", headers=auth(doctor)).status_code == 200
    stray = discharge("00000000-0000-4000-8000-000000000000")
    assert send(client, doctor, signed(stray, keys[HOSPITAL], HOSPITAL)).status_code == 422
    closing = signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, closing).status_code == 200
    assert client.post(path + "/acknowledge", headers=auth(home)).status_code == 200
    steps = ("transfer-receive", "transfer-acknowledge", "transfer-discharge", "transfer-return")
    assert trail(store, *steps) == [
        ("transfer-receive", "permit", CARE_HOME), ("transfer-acknowledge", "permit", HOSPITAL),
        ("transfer-discharge", "deny", HOSPITAL), ("transfer-discharge", "permit", HOSPITAL),
        ("transfer-return", "permit", CARE_HOME),
    ]  # fmt: skip
    with store.engine.connect() as conn:
        docs = [flat(orjson.loads(b)) for b in conn.execute(
            select(AuditRow.body).where(AuditRow.action.in_(steps), AuditRow.outcome == "permit")
        ).scalars()]  # fmt: skip
    (accepted,) = [d for d in docs if d["action"] == "transfer-discharge"]
    assert accepted["rules"][0] == "transfer.accepted"
    assert "relationship.legitimate" in accepted["rules"] and accepted["basis"] == "relationship"
    said = [
        line.what for line in lines(docs, organisations={}, roles={}, purposes={}, zone=UTC_ZONE)
    ]
    assert said == [
        "sent your details to hospital with a transfer",
        "confirmed receipt of your hospital transfer details",
        "sent your hospital discharge details to your care home",
        "confirmed your return from hospital",
    ]


def refusal_rules(store: Store) -> list[list[str]]:
    """The rules of each refused ``transfer-receive`` entry, in order."""
    with store.engine.connect() as conn:
        bodies = conn.execute(
            select(AuditRow.body)
            .where(AuditRow.action == "transfer-receive", AuditRow.outcome == "deny")
            .order_by(AuditRow.seq)
        ).scalars()
        return [flat(orjson.loads(b))["rules"] for b in bodies]


def test_a_care_home_sends_only_for_its_residents_and_cannot_tell_them_from_unknown_numbers(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    other = token("gp", org=OTHER_HOME, role_code=CARE_ROLE, user_id="u-other-home")
    not_theirs = signed(unsigned(sender=OTHER_HOME), keys[OTHER_HOME], OTHER_HOME)
    unknown = unsigned(sender=OTHER_HOME)
    _nhs(UNKNOWN)(unknown)
    own_unknown = unsigned()
    _nhs(UNKNOWN)(own_unknown)
    answers = [
        send(client, other, not_theirs),
        send(client, other, signed(unknown, keys[OTHER_HOME], OTHER_HOME)),
        send(client, home, signed(own_unknown, keys[CARE_HOME])),
    ]
    assert {a.status_code for a in answers} == {422}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["issue"] == [{
        "severity": "error", "code": "not-found", "diagnostics": NOT_IN_CARE,
        "expression": [f"{PATIENT_ENTRY}.identifier[0].value"],
    }]  # fmt: skip
    assert NHS not in answers[0].text
    assert count(store, MESSAGES) == count(store, TRANSFERS) == 0
    assert everything(client, token("ae-doctor")) != 200
    stranger, *unknowns = refusal_rules(store)
    assert "transfer.not-in-care" in stranger and "relationship.legitimate" in stranger
    assert all("transfer.person-unknown" in r and "transfer.not-in-care" not in r for r in unknowns)
    with store.engine.connect() as conn:
        refused = conn.execute(
            select(AuditRow.nhs_number, AuditRow.patient_id)
            .where(AuditRow.action == "transfer-receive", AuditRow.outcome == "deny")
            .order_by(AuditRow.seq)
        ).all()
    assert [r.nhs_number for r in refused] == [NHS, UNKNOWN, UNKNOWN]
    assert refused[0].patient_id is not None and refused[1].patient_id is None


def test_a_care_home_the_resident_has_left_cannot_send_for_them(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], token: Token
) -> None:
    place(store, OTHER_HOME, start="2022-01-01", end="2024-03-31")
    former = token("gp", org=OTHER_HOME, role_code=CARE_ROLE, user_id="u-former-home")
    refused = send(
        client, former, signed(unsigned(sender=OTHER_HOME), keys[OTHER_HOME], OTHER_HOME)
    )
    assert refused.status_code == 422
    assert [i["diagnostics"] for i in refused.json()["issue"]] == [NOT_IN_CARE]
    assert "transfer.not-in-care" in refusal_rules(store)[0]
    assert count(store, MESSAGES) == 0


def test_a_nurse_whose_ig_training_lapsed_is_refused_by_the_same_decision(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    lapsed = token("gp", org=CARE_HOME, role_code=CARE_ROLE, user_id="u-lapsed",
                   ig_training=date.today() - timedelta(days=400))  # fmt: skip
    refused = send(client, lapsed, signed(unsigned(), keys[CARE_HOME]))
    assert refused.status_code == 422
    assert [i["diagnostics"] for i in refused.json()["issue"]] == [NOT_IN_CARE]
    assert {"transfer.not-in-care", "training.current"} <= set(refusal_rules(store)[0])
    assert count(store, MESSAGES) == 0


def test_an_accepted_transfer_is_audited_with_the_policy_decision(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    assert send(client, home, signed(unsigned(), keys[CARE_HOME])).status_code == 200
    with store.engine.connect() as conn:
        body = conn.execute(
            select(AuditRow.body).where(
                AuditRow.action == "transfer-receive", AuditRow.outcome == "permit"
            )
        ).scalar_one()
    entry = flat(orjson.loads(body))
    assert entry["basis"] == "relationship" and entry["policy_version"]
    assert {"transfer.accepted", "relationship.legitimate"} <= set(entry["rules"])


def test_a_step_by_hand_is_audited_with_the_policy_decision_as_one_by_message(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    """An acknowledgement or return through /transfers (or the inbox buttons), and a second
    click refused, carry the decision's policy version, basis and rules, as a discharge by
    message does."""
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    path = f"/transfers/{transfer_id}/acknowledge"
    assert client.post(path, headers=auth(doctor)).status_code == 200
    assert client.post(path, headers=auth(doctor)).status_code == 409
    closing = signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL)
    assert send(client, doctor, closing).status_code == 200
    assert client.post(path, headers=auth(home)).status_code == 200
    steps = ("transfer-acknowledge", "transfer-discharge", "transfer-return")
    with store.engine.connect() as conn:
        docs = [flat(orjson.loads(b)) for b in conn.execute(
            select(AuditRow.body).where(AuditRow.action.in_(steps)).order_by(AuditRow.seq)
        ).scalars()]  # fmt: skip
    assert [(d["action"], d["outcome"]) for d in docs] == [
        ("transfer-acknowledge", "permit"), ("transfer-acknowledge", "deny"),
        ("transfer-discharge", "permit"), ("transfer-return", "permit"),
    ]  # fmt: skip
    version = docs[2]["policy_version"]
    assert version and all(
        d["policy_version"] == version and d["basis"] == "relationship"
        and "relationship.legitimate" in d["rules"] for d in docs
    )  # fmt: skip
    assert docs[1]["rules"][0] == "transfer.out-of-turn"


def test_a_stay_is_discharged_once(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    first = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert first.status_code == 200, first.text
    again = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert again.status_code == 422
    issues = again.json()["issue"]
    assert [(i["code"], i.get("expression")) for i in issues] == [
        ("business-rule", ["Bundle.entry[1].resource.relatesTo"])
    ]
    assert count(store, MESSAGES) == 2  # the transfer and the first discharge


def test_a_discharge_or_an_ack_is_sent_only_as_the_policy_lets_the_sender_act(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    """A doctor whose IG training has lapsed is refused the record, so cannot discharge or
    acknowledge the person either; a colleague can."""
    transfer_id = sent_transfer(client, home, keys)
    lapsed = token("ae-doctor", user_id="u-lapsed", ig_training=date.today() - timedelta(days=800))
    for message in (acknowledgement(transfer_id), discharge(transfer_id)):
        refused = send(client, lapsed, signed(message, keys[HOSPITAL], HOSPITAL))
        assert refused.status_code == 422
        assert [i["code"] for i in refused.json()["issue"]] == ["forbidden"]
        assert "training" in refused.json()["issue"][0]["diagnostics"]
    assert count(store, MESSAGES) == 1
    with store.engine.connect() as conn:
        rules = conn.execute(
            select(AuditRow.body).where(AuditRow.user_id == "u-lapsed", AuditRow.outcome == "deny")
        ).scalars().all()  # fmt: skip
    assert len(rules) == 2
    assert all("training.current" in flat(orjson.loads(b))["rules"] for b in rules)
    ok = send(client, token("ae-doctor"), signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert ok.status_code == 200, ok.text


def test_a_hospital_cannot_learn_whether_a_number_is_known_from_a_discharge_or_an_ack(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], token: Token
) -> None:
    """A message about a transfer that does not exist gets the same answer whoever holds the
    NHS number it names: the hospital has no relationship with anyone here."""
    doctor = token("ae-doctor")
    made_up = "00000000-0000-4000-8000-000000000000"
    for message in (discharge(made_up), acknowledgement(made_up)):
        answers = []
        for number in (NHS, UNKNOWN):
            doc = copy.deepcopy(message)
            _nhs(number)(doc)
            answers.append(send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL)))
        assert [a.status_code for a in answers] == [422, 422]
        assert answers[0].json() == answers[1].json()
        assert [i["expression"] for i in answers[0].json()["issue"]] == [
            ["Bundle.entry[1].resource.relatesTo"]
        ]
    assert everything(client, doctor) == 404
    assert count(store, MESSAGES) == 0


def acknowledgement(transfer_id: str, **over: Any) -> dict[str, Any]:
    """The unsigned acknowledgement of ``transfer_id``, from the hospital unless ``over`` says."""
    return acknowledgement_message(
        FORM.person, sender=over.get("sender", HOSPITAL), destination=over.get("to", CARE_HOME),
        transfer_id=transfer_id, completed_by="Dr Ben Synthetic", now=datetime.now(UTC),
        base=BASE, header_id=over.get("header_id"),
    )  # fmt: skip


def history(client: TestClient, tok: str, transfer_id: str) -> list[tuple[str, str]]:
    seen = client.get(f"/transfers/{transfer_id}", headers=auth(tok)).json()
    return [(s["status"], s["org"]) for s in seen["history"]]


def test_a_hospital_acknowledges_a_transfer_by_message(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    doc = signed(acknowledgement(transfer_id), keys[HOSPITAL], HOSPITAL)
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    answer = send(client, doctor, raw)
    assert answer.status_code == 200, answer.text
    header = answer.json()["entry"][0]["resource"]
    assert header["response"] == {"identifier": doc["entry"][0]["resource"]["id"], "code": "ok"}
    assert header["eventCoding"]["code"] == "transfer-acknowledgement"
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).json()["status"] == (
        "acknowledged"
    )
    assert history(client, home, transfer_id) == [
        ("sent", CARE_HOME), ("received", HOSPITAL), ("acknowledged", HOSPITAL)
    ]  # fmt: skip
    with store.engine.connect() as conn:
        kept = conn.execute(
            select(MESSAGES.c.raw).where(MESSAGES.c.event == "transfer-acknowledgement")
        ).scalar_one()
    assert kept == raw
    assert trail(store, "transfer-acknowledge") == [("transfer-acknowledge", "permit", HOSPITAL)]
    with store.engine.connect() as conn:
        body = conn.execute(
            select(AuditRow.body).where(AuditRow.action == "transfer-acknowledge")
        ).scalar_one()
    entry = flat(orjson.loads(body))
    assert entry["rules"][0] == "transfer.accepted" and entry["nhs_number"] == NHS
    assert "training.current" in entry["rules"] and entry["basis"] == "relationship"
    assert entry["refs"] == [f"transfer/{transfer_id}"]
    with store.engine.connect() as conn:
        sent = conn.execute(
            select(AuditRow.body).where(
                AuditRow.action == "transfer-receive", AuditRow.outcome == "permit"
            )
        ).scalar_one()
    assert flat(orjson.loads(sent))["refs"] == [f"transfer/{transfer_id}"]  # the same stay
    said = lines([entry], organisations={}, roles={}, purposes={}, zone=UTC_ZONE)
    assert [line.what for line in said] == ["confirmed receipt of your hospital transfer details"]


def test_an_acknowledgement_resent_gets_the_same_answer_and_changed_is_a_conflict(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    doc = acknowledgement(transfer_id)
    first = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))
    again = send(client, doctor, signed(doc, keys[HOSPITAL], HOSPITAL))  # re-signed: the same
    assert first.status_code == again.status_code == 200, again.text
    assert first.content == again.content
    assert (count(store, MESSAGES), count(store, STATUS)) == (2, 3)
    changed = copy.deepcopy(doc)
    changed["entry"][1]["resource"]["author"] = [{"display": "Someone else"}]
    refused = send(client, doctor, signed(changed, keys[HOSPITAL], HOSPITAL))
    assert refused.status_code == 409
    assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.id"]
    assert (count(store, MESSAGES), count(store, STATUS)) == (2, 3)
    assert [o for _, o, _ in trail(store, "transfer-acknowledge")] == ["permit", "permit", "deny"]


RELATES_TO = "Bundle.entry[1].resource.relatesTo"
SENDER = "Bundle.entry[0].resource.sender.identifier.value"
NO_SUCH = "00000000-0000-4000-8000-000000000000"


def _acknowledged(client: TestClient, doctor: str, keys: Any, transfer_id: str) -> None:
    first = send(client, doctor, signed(acknowledgement(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert first.status_code == 200, first.text


def _discharged(client: TestClient, doctor: str, keys: Any, transfer_id: str) -> None:
    closing = send(client, doctor, signed(discharge(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert closing.status_code == 200, closing.text


@pytest.mark.parametrize(
    ("before", "status"),
    [(_acknowledged, "acknowledged"), (_discharged, "discharged")],
    ids=["acknowledged-already", "discharged"],
)
def test_only_a_received_transfer_is_acknowledged_and_once(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, before: Any, status: str,
) -> None:  # fmt: skip
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    before(client, doctor, keys, transfer_id)
    stored = (count(store, MESSAGES), count(store, STATUS))
    refused = send(client, doctor, signed(acknowledgement(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"] == [{
        "severity": "error", "code": "business-rule", "expression": [RELATES_TO],
        "diagnostics": f"that transfer is {status}, not received: a transfer is acknowledged "
                       "once, on receipt",
    }]  # fmt: skip
    assert (count(store, MESSAGES), count(store, STATUS)) == stored
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).json()["status"] == status
    assert trail(store, "transfer-acknowledge")[-1] == ("transfer-acknowledge", "deny", HOSPITAL)


def test_an_acknowledgement_through_the_api_first_leaves_none_for_the_message(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    path = f"/transfers/{transfer_id}/acknowledge"
    assert client.post(path, headers=auth(doctor)).status_code == 200
    refused = send(client, doctor, signed(acknowledgement(transfer_id), keys[HOSPITAL], HOSPITAL))
    assert refused.status_code == 422
    assert [(i["code"], i["expression"]) for i in refused.json()["issue"]] == [
        ("business-rule", [RELATES_TO])
    ]
    assert count(store, MESSAGES) == 1
    assert [s for s, _ in history(client, home, transfer_id)].count("acknowledged") == 1


def _no_relates_to(doc: dict[str, Any]) -> None:
    doc["entry"][1]["resource"].pop("relatesTo")


@pytest.mark.parametrize(
    ("names", "change", "expected"),
    [
        ("none", None, [("not-found", RELATES_TO)]),
        ("other-hospital", None, [("not-found", RELATES_TO)]),
        ("own", _no_relates_to, [("required", RELATES_TO)]),
    ],
    ids=["no-such-transfer", "sent-to-another-hospital", "names-no-transfer"],
)
def test_an_acknowledgement_must_name_a_transfer_to_the_sending_hospital(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, names: str, change: Any, expected: list[tuple[str, str]],
) -> None:  # fmt: skip
    own = sent_transfer(client, home, keys)
    elsewhere = sent_transfer(client, home, keys, to=OTHER_HOSPITAL)
    doc = acknowledgement({"none": NO_SUCH, "other-hospital": elsewhere, "own": own}[names])
    if change is not None:
        change(doc)
    refused = send(client, token("ae-doctor"), signed(doc, keys[HOSPITAL], HOSPITAL))
    assert refused.status_code == 422, refused.text
    issues = refused.json()["issue"]
    assert [(i["code"], i["expression"][0]) for i in issues] == expected
    assert (count(store, MESSAGES), count(store, STATUS)) == (2, 4)
    assert trail(store, "transfer-acknowledge") == [("transfer-acknowledge", "deny", HOSPITAL)]


def test_a_care_home_cannot_acknowledge_its_own_transfer_by_message(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doc = signed(acknowledgement(transfer_id, sender=CARE_HOME, to=HOSPITAL), keys[CARE_HOME])
    refused = send(client, home, doc)
    assert refused.status_code == 422, refused.text
    issues = {i["expression"][0]: i for i in refused.json()["issue"]}
    assert issues[SENDER]["code"] == "forbidden"
    assert issues[SENDER]["diagnostics"] == "a transfer-acknowledgement is sent by a hospital"
    assert (count(store, MESSAGES), count(store, STATUS)) == (1, 2)
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).json()["status"] == (
        "received"
    )


def test_a_stay_acknowledged_by_message_is_still_discharged(
    client: TestClient, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    _acknowledged(client, doctor, keys, transfer_id)
    _discharged(client, doctor, keys, transfer_id)
    assert [s for s, _ in history(client, home, transfer_id)] == [
        "sent", "received", "acknowledged", "discharged"
    ]  # fmt: skip
    seen = client.get(f"/transfers/{transfer_id}", headers=auth(home)).json()
    assert [m["event"] for m in seen["messages"]] == [
        "care-home-transfer", "transfer-acknowledgement", "hospital-discharge"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "step"),
    [(discharge, "discharged"), (acknowledgement, "acknowledged")],
    ids=["discharges", "acknowledgements"],
)
def test_messages_at_once_move_the_transfer_on_once(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token,
    message: Any, step: str,
) -> None:  # fmt: skip
    transfer_id = sent_transfer(client, home, keys)
    svc = client.app.state.services  # type: ignore[attr-defined]
    who = who_for(svc, svc.verifier.verify(token("ae-doctor")))
    raws = [orjson.dumps(signed(message(transfer_id), keys[HOSPITAL], HOSPITAL)) for _ in range(6)]

    def one(i: int) -> tuple[int, list[str]]:
        try:
            receive(inbox(svc), who, RequestContext(f"{step}-{i}"), raws[i])
        except Refused as refused:
            return refused.status, [p.code for p in refused.problems]
        return 200, []

    assert sorted(at_once(len(raws), one)) == [(200, [])] + [(422, ["business-rule"])] * 5
    assert count(store, MESSAGES) == 2  # the transfer and the one message that moved it on
    assert [s for s, _ in history(client, home, transfer_id)].count(step) == 1


def test_acknowledgements_through_the_api_at_once_acknowledge_the_transfer_once(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str, token: Token
) -> None:
    transfer_id = sent_transfer(client, home, keys)
    svc = client.app.state.services  # type: ignore[attr-defined]
    who = who_for(svc, svc.verifier.verify(token("ae-doctor")))

    def one(i: int) -> int:
        try:
            acknowledge(svc, who, RequestContext(f"api-ack-{i}"), transfer_id)
        except FhirError as refused:
            return refused.status
        return 200

    assert sorted(at_once(6, one)) == [200, 409, 409, 409, 409, 409]
    assert [s for s, _ in history(client, home, transfer_id)].count("acknowledged") == 1


def test_a_step_from_a_status_the_transfer_has_left_keeps_nothing(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """What a hand acknowledgement meets when a discharge message moved the transfer on after
    it was read: it must not put the transfer back."""
    transfer_id = sent_transfer(client, home, keys)
    steps = count(store, STATUS)
    with pytest.raises(transfers.Closed) as lost, store.engine.begin() as conn:
        transfers.step(conn, transfer_id, ("acknowledged",), "discharged", HOSPITAL, "u",
                       datetime.now(UTC))  # fmt: skip
    assert lost.value.status == "received"
    assert count(store, STATUS) == steps
    assert client.get(f"/transfers/{transfer_id}", headers=auth(home)).json()["status"] == (
        "received"
    )


@pytest.mark.parametrize("element", ["valueQuantity", "valueInteger"])
def test_a_news2_total_its_readings_do_not_give_is_refused_at_its_element(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    element: str,
) -> None:  # fmt: skip
    """The hospital triages on the total: a slip that makes a high risk read low is refused,
    whether the total is sent as a quantity or as an integer (R4 allows either)."""
    doc = unsigned()
    (i, total) = next(
        (i, e["resource"]) for i, e in enumerate(doc["entry"])
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == NEWS2_TOTAL
    )  # fmt: skip
    assert total["valueQuantity"]["value"] == news2.total(FORM.vitals) > 0
    if element == "valueQuantity":
        total["valueQuantity"]["value"] = 0
    else:
        total.pop("valueQuantity")
        total["valueInteger"] = 0
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    (issue,) = refused.json()["issue"]
    path = "valueQuantity.value" if element == "valueQuantity" else "valueInteger"
    assert issue["expression"] == [f"Bundle.entry[{i}].resource.{path}"]
    assert "its readings score" in issue["diagnostics"]
    assert count(store, MESSAGES) == 0


def test_a_reading_no_person_can_have_is_refused_at_its_entry(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """SpO2 940 (94 mistyped) scored as 96 or more, so 0 points: the form refuses it, but a
    message scoring its total on it was accepted."""
    doc = unsigned()
    (i, spo2) = next((i, e["resource"]) for i, e in enumerate(doc["entry"])
                     if _coded(e) == "59408-5")  # fmt: skip
    spo2["valueQuantity"]["value"] = 940
    total = next(e["resource"] for e in doc["entry"] if _coded(e) == NEWS2_TOTAL)
    total["valueQuantity"]["value"] = news2.total(replace(FORM.vitals, spo2=940))
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    issues = refused.json()["issue"]
    assert [f"Bundle.entry[{i}].resource"] in [x["expression"] for x in issues]
    assert any("outside what a person can have" in x["diagnostics"] for x in issues)
    assert count(store, MESSAGES) == 0


@pytest.mark.parametrize(
    ("code", "named"), [("8310-5", "Body temperature"), (ACVPU_SCORE, "ACVPU scale score")]
)
def test_a_news2_total_sent_without_one_of_its_readings_is_refused(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    code: str, named: str,
) -> None:  # fmt: skip
    """A total the message does not carry every reading of cannot be checked, and the inbox
    would show it as whole: NEWS2 0 sent with a temperature left out, the rest scoring 8."""
    doc = unsigned()
    gone = next(e["fullUrl"] for e in doc["entry"] if _coded(e) == code)
    doc["entry"] = [e for e in doc["entry"] if e["fullUrl"] != gone]
    for section in doc["entry"][1]["resource"]["section"]:
        section["entry"] = [r for r in section.get("entry", []) if r["reference"] != gone]
        if not section["entry"]:
            del section["entry"]
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == NEWS2_TOTAL)
    doc["entry"][i]["resource"]["valueQuantity"]["value"] = 0
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    (issue,) = refused.json()["issue"]
    assert issue["expression"] == [f"Bundle.entry[{i}].resource.valueQuantity.value"]
    assert issue["diagnostics"].endswith(f"missing: {named}")
    assert count(store, MESSAGES) == 0


@pytest.mark.parametrize(
    ("code", "kind"),
    [("9279-1", "Respiratory rate"), (ON_AIR, "air or oxygen"), (ACVPU_SCORE, "ACVPU scale score")],
)
def test_a_reading_sent_twice_beside_a_news2_total_is_refused(code: str, kind: str) -> None:
    """Which of two the total was scored on cannot be told: an RR of 30 ahead of the 22 it was
    scored on, or 'on oxygen' beside 'room air' (two points), passed on the last one read."""
    doc = unsigned()
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == code)
    extra = copy.deepcopy(doc["entry"][i])
    extra["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    if code == ON_AIR:
        extra["resource"]["code"] = {"coding": [{"system": SNOMED, "code": ON_OXYGEN}]}
    doc["entry"].insert(i + 1, extra)
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key(), CARE_HOME))
    said = f"a NEWS2 total is scored on one {kind}; this is another"
    assert (f"Bundle.entry[{i + 1}].resource", said) in [
        (p.expression, p.diagnostics) for p in problems
    ]


@pytest.mark.parametrize(
    ("code", "status"), [("59408-5", "cancelled"), (NEWS2_TOTAL, "registered")]
)
def test_a_reading_or_total_with_no_result_is_refused(code: str, status: str) -> None:
    """An SpO2 never taken (cancelled) was scored into the total, and a total never scored
    (registered) was triaged on, as if each had a result."""
    doc = unsigned()
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == code)
    doc["entry"][i]["resource"]["status"] = status
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key(), CARE_HOME))
    said = f"an Observation with status {status} has no result"
    assert [(p.expression, p.diagnostics) for p in problems] == [
        (f"Bundle.entry[{i}].resource", said)
    ]


def _fahrenheit(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == "8310-5")
    doc["entry"][i]["resource"]["valueQuantity"] = {
        "value": 100.2, "unit": "degF", "system": "http://unitsofmeasure.org", "code": "[degF]"
    }  # fmt: skip
    return i


def _air_and_oxygen(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == ON_AIR)
    doc["entry"][i]["resource"]["code"]["coding"].append({"system": SNOMED, "code": ON_OXYGEN})
    return i


def _rate_as_pulse(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == "9279-1")
    coding = doc["entry"][i]["resource"]["code"]["coding"]
    coding.append({"system": "http://loinc.org", "code": "8867-4"})
    return i


def _rate_under_another_system(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == "9279-1")
    doc["entry"][i]["resource"]["code"]["coding"][0]["system"] = "http://example.org/vitals"
    return i


def _acvpu_listed(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == ACVPU_SCORE)
    doc["entry"][i]["resource"]["valueString"] = ["A"]
    return i


def _total_without_system(doc: dict[str, Any]) -> int:
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == NEWS2_TOTAL)
    del doc["entry"][i]["resource"]["code"]["coding"][0]["system"]
    return i


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_fahrenheit, "Body temperature is scored in Cel (UCUM); this is in [degF]"),
        (_acvpu_listed, "the ACVPU scale score is one of A, C, V, P, U, not ['A']"),
        (_total_without_system, "a NEWS2 total is coded in SNOMED CT (http://snomed.info/sct)"),
        (_air_and_oxygen, "one Observation says both on oxygen and breathing room air"),
        (_rate_as_pulse, "one Observation is one reading; this is coded as Heart rate, "
                         "Respiratory rate"),
        (_rate_under_another_system, ""),
    ],
)  # fmt: skip
def test_a_reading_the_total_cannot_be_checked_on_is_refused(
    spoil: Callable[[dict[str, Any]], int], said: str
) -> None:
    """37.9 °C sent as 100.2 °F was scored as 100.2 °C; a reading coded both on oxygen and
    room air, or as two vital signs, let the sender choose what the total was checked on; a
    code under another system is no reading (the total is then missing one)."""
    doc = unsigned()
    i = spoil(doc)
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key(), CARE_HOME))
    found = [(p.expression, p.diagnostics) for p in problems]
    if said:
        assert (f"Bundle.entry[{i}].resource", said) in found
    else:
        assert [d for _, d in found] == [
            "a NEWS2 total comes with every reading it is scored on; missing: Respiratory rate"
        ]


@pytest.mark.parametrize(
    ("loinc", "code"), [("9279-1", "{Breaths}/min"), ("8867-4", "{beats}/min")]
)
def test_a_rate_with_a_ucum_annotation_is_in_its_unit(loinc: str, code: str) -> None:
    """UK Core's NEWS2 example sends {Breaths}/min and {beats}/min: an annotation names the
    unit, it does not change it."""
    doc = unsigned()
    i = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == loinc)
    doc["entry"][i]["resource"]["valueQuantity"]["code"] = code
    problems, _ = transfer_rules.check_shape(signed(doc, signature.new_key(), CARE_HOME))
    assert problems == []


def test_an_entry_naming_no_one_or_carrying_another_patient_is_refused(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """R4 lets an Observation leave out its subject, and an entry may carry a Patient inside
    it: either is someone other than the subject the rules checked, read as the subject's."""
    doc = unsigned()
    total = next(i for i, e in enumerate(doc["entry"]) if _coded(e) == NEWS2_TOTAL)
    del doc["entry"][total]["resource"]["subject"]
    allergy = next(i for i, e in enumerate(doc["entry"])
                   if e["resource"]["resourceType"] == "AllergyIntolerance")  # fmt: skip
    doc["entry"][allergy]["resource"]["contained"] = [{
        "resourceType": "Patient", "id": "other", "name": [{"family": "Jones"}],
    }]  # fmt: skip
    doc["entry"][allergy]["resource"]["asserter"] = {"reference": "#other"}
    refused = send(client, home, signed(doc, keys[CARE_HOME]))
    assert refused.status_code == 422
    assert {e for i in refused.json()["issue"] for e in i["expression"]} == {
        f"Bundle.entry[{total}].resource.subject",
        f"Bundle.entry[{allergy}].resource.contained[0]",
    }
    assert count(store, MESSAGES) == 0


def _coded(entry: dict[str, Any]) -> str:
    return str(entry["resource"].get("code", {}).get("coding", [{}])[0].get("code"))


@pytest.mark.parametrize(
    ("person", "where"),
    [
        (Person(NHS, "Smith", "Renée", "2001-07-07", "Y00001"), ["birthDate"]),
        (Person(NHS, "Wrongperson", "Bertie", "1950-03-01", "Y00001"), ["name"]),
        (Person(NHS, "SMITH", "Renée", "1950-03-01", "Y00001"), []),
        (Person(NHS, "Smith-", "R", "1950-03-01", "Y00001"), []),
    ],
)
def test_the_person_sent_must_be_the_one_the_number_is_for(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    person: Person, where: list[str],
) -> None:  # fmt: skip
    """A number typed for a neighbour sends the wrong person's record ahead of them: a birth
    date or family name the record never held for the number is refused (case and
    punctuation aside)."""
    doc = transfer_message(replace(FORM, person=person), sender=CARE_HOME, destination=HOSPITAL,
                           now=datetime.now(UTC), base=BASE)  # fmt: skip
    answer = send(client, home, signed(doc, keys[CARE_HOME]))
    found = [i["expression"][0].rsplit(".", 1)[1] for i in answer.json().get("issue", [])]
    assert found == where and answer.status_code == (422 if where else 200)


def test_every_family_name_sent_must_be_one_the_record_holds(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str
) -> None:
    """One held name was enough, and the pages show the first: a Patient named Mary Jones,
    then Renée Smith, under Renée Smith's number was accepted and listed as Mary Jones."""
    doc = unsigned()
    doc["entry"][2]["resource"]["name"] = [{"family": "Jones", "given": ["Mary"]},
                                           {"family": "Smith", "given": ["Renée"]}]  # fmt: skip
    answer = send(client, home, signed(doc, keys[CARE_HOME]))
    assert answer.status_code == 422
    assert [i["expression"] for i in answer.json()["issue"]] == [["Bundle.entry[2].resource.name"]]
    assert count(store, MESSAGES) == 0


@pytest.mark.parametrize(
    ("person", "where"),
    [
        (Person(NHS, "Jones", "Doris", "1931-07-15", "Y00001"), ["birthDate", "name"]),
        (Person(NHS, "Smith", "Renée", "1931-07-15", "Y00001"), ["birthDate"]),
        (Person(NHS, "SMITH", "R", "1950-03-01", "Y00001"), []),
    ],
)
def test_a_discharge_for_someone_else_by_name_or_birth_date_is_refused_and_kept_nowhere(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, person: Person, where: list[str],
) -> None:  # fmt: skip
    """Another patient's discharge summary sent with the resident's NHS number (typed from
    the transfer) would be read by the home as hers: its Patient is checked as a transfer's."""
    transfer_id = sent_transfer(client, home, keys)
    doctor = token("ae-doctor")
    answer = send(client, doctor, signed(discharge(transfer_id, person), keys[HOSPITAL], HOSPITAL))
    found = [i["expression"][0].rsplit(".", 1)[1] for i in answer.json().get("issue", [])]
    assert found == where and answer.status_code == (422 if where else 200)
    assert count(store, MESSAGES) == (1 if where else 2)


def _expressions(answer: Any) -> list[str]:
    return [e for i in answer.json().get("issue", []) for e in i.get("expression", [])]


@pytest.mark.parametrize("who", ["refused by the policy", "another hospital, forged"])
def test_a_discharge_compares_the_patient_only_for_a_hospital_that_may_act(
    client: TestClient, store: Store, keys: dict[str, Ed25519PrivateKey], home: str,
    token: Token, who: str,
) -> None:  # fmt: skip
    """Whether a birth date or family name is one the record holds is what the comparison
    tells: a hospital user the policy refuses (lapsed IG training), or another hospital
    naming the transfer under its hospital's code, is answered alike for the record's own
    details and another person's."""
    transfer_id = sent_transfer(client, home, keys)
    if who == "refused by the policy":
        user, key = token("ae-doctor", ig_training=date(2020, 1, 1)), keys[HOSPITAL]
    else:
        user, key = token("ae-doctor", org=OTHER_HOSPITAL), keys[CARE_HOME]
    right = Person(NHS, "SMITH", "R", "1950-03-01", "Y00001")
    wrong = Person(NHS, "Jones", "Doris", "1931-07-15", "Y00001")
    answers = [
        send(client, user, signed(discharge(transfer_id, p), key, HOSPITAL)) for p in (right, wrong)
    ]
    assert [a.status_code for a in answers] == [422, 422]
    assert _expressions(answers[0]) == _expressions(answers[1])
    assert count(store, MESSAGES) == 1


def test_a_birth_date_the_record_keeps_to_a_year_or_a_month_is_held() -> None:
    held = transfer_rules._held
    assert held("1950-03-01", frozenset({"1950"})) and held("1950-03-01", frozenset({"1950-03"}))
    assert not held("1950-03-01", frozenset({"1950-04"}))
    assert not held("1951-03-01", frozenset({"1950"}))


def test_a_family_name_is_the_same_composed_or_decomposed() -> None:
    """Some systems send Unicode decomposed (e + combining diaeresis): the resident the record
    holds composed must not be refused as another person."""
    composed, decomposed = "Brontë", unicodedata.normalize("NFD", "Brontë")
    assert composed != decomposed and transfer_rules.fold(composed) == transfer_rules.fold(
        decomposed
    )
    header = Header(str(uuid.UUID(int=0)), "care-home-transfer", CARE_HOME, HOSPITAL, "urn:uuid:x")
    patient = {"resourceType": "Patient", "birthDate": "1950-03-01",
               "name": [{"family": decomposed}]}  # fmt: skip
    parsed = transfer_rules.Parsed(header, NHS, "p", None, "r", PATIENT_ENTRY, patient)
    known = transfer_rules.Known(CARE_HOME, {}, None, ("person",), born=frozenset({"1950-03-01"}),
                                 families=frozenset({transfer_rules.fold(composed)}))  # fmt: skip
    assert list(transfer_rules._same_person(parsed, known)) == []


@pytest.mark.parametrize(
    ("record", "sent"),
    [("Łukasiewicz", "Lukasiewicz"), ("Ødegård", "Odegard"), ("Ærø", "Aero"),
     ("Đorđević", "Dordevic"), ("Œuvray", "Oeuvray"), ("Weiß", "Weiss")],
)  # fmt: skip
def test_a_letter_with_a_stroke_is_folded_as_an_accent(record: str, sent: str) -> None:
    """'accents dropped': NFKD has no decomposition for Ł, Ø or Æ, so a resident the record
    holds as Łukasiewicz, sent as Lukasiewicz (a care-home system without the letter) with
    the record's own birth date, was refused as a wrong-patient risk."""
    header = Header(str(uuid.UUID(int=0)), "care-home-transfer", CARE_HOME, HOSPITAL, "urn:uuid:x")
    patient = {"resourceType": "Patient", "birthDate": "1950-03-01", "name": [{"family": sent}]}
    parsed = transfer_rules.Parsed(header, NHS, "p", None, "r", PATIENT_ENTRY, patient)
    known = transfer_rules.Known(CARE_HOME, {}, None, ("person",), born=frozenset({"1950-03-01"}),
                                 families=frozenset({transfer_rules.fold(record)}))  # fmt: skip
    assert list(transfer_rules._same_person(parsed, known)) == []


def _news2_total(subject: str, when: str, score: int) -> dict[str, Any]:
    coding = [{"system": SNOMED, "code": NEWS2_TOTAL}]
    resource = {"resourceType": "Observation", "status": "final", "code": {"coding": coding},
                "subject": {"reference": subject}, "effectiveDateTime": when,
                "valueInteger": score}  # fmt: skip
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource}


def test_a_discharges_medicine_changes_are_one_statement_each() -> None:
    """A care-home system updates its medicines record from them: the narrative alone joined
    them with "; ", which a line may hold itself."""
    form = DischargeForm(
        FORM.person, ["UTI"], started=["Amoxicillin 500mg TDS; 5 days"],
        stopped=["Nitrofurantoin"], changed=["Furosemide 40mg, was 20mg"],
        completed_by="Dr Ben Synthetic",
    )  # fmt: skip
    doc = discharge_message(
        form, sender=HOSPITAL, destination=CARE_HOME, transfer_id=str(uuid.uuid4()),
        now=datetime.now(UTC), base=BASE,
    )  # fmt: skip
    by_url = {e["fullUrl"]: e["resource"] for e in doc["entry"]}
    medicines = "medications-and-medical-devices"
    sections = doc["entry"][1]["resource"]["section"]
    (section,) = [s for s in sections if s["code"]["coding"][0]["code"] == medicines]
    listed = [by_url[r["reference"]] for r in section["entry"]]
    assert [(m["medicationCodeableConcept"]["text"], m["status"], m["note"][0]["text"])
            for m in listed] == [
        ("Amoxicillin 500mg TDS; 5 days", "active", "Started in hospital"),
        ("Nitrofurantoin", "stopped", "Stopped in hospital"),
        ("Furosemide 40mg, was 20mg", "active", "Changed in hospital"),
    ]  # fmt: skip
    problems, parsed = transfer_rules.check_shape(signed(doc, signature.new_key(), HOSPITAL))
    assert parsed is not None and [p.diagnostics for p in problems] == []


def test_a_discharge_may_carry_the_news2_on_admission_and_on_discharge() -> None:
    """'One NEWS2 total' is for what the inbox triages on: a transfer's opening message. A
    hospital's discharge (from its own system, by the API) may carry the score on admission
    and the score at discharge; the pages show no total of a discharge."""
    doc = discharge(str(uuid.uuid4()))
    subject = doc["entry"][1]["resource"]["subject"]["reference"]
    for when, score in (("2026-12-01T09:00:00+00:00", 6), ("2026-12-09T11:00:00+00:00", 1)):
        doc["entry"].append(_news2_total(subject, when, score))
    problems, parsed = transfer_rules.check_shape(signed(doc, signature.new_key(), HOSPITAL))
    assert parsed is not None
    assert [p.diagnostics for p in problems] == []
