"""Export: BALP-shaped AuditEvents that validate as FHIR, and CSV a spreadsheet cannot run."""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Engine
from typer.testing import CliRunner

from audit.export import BALP, NHS_NUMBER, audit_event
from audit.query import stream
from audit.search import Filters, search
from audit.writer import append, append_batch
from engine.cli import app
from tests.audit.trail import entry

runner = CliRunner()


def _export(db_url: str, *args: str) -> bytes:
    """The export, without its own entry (an export is a read of the trail, audited first:
    the last entry, when the export reaches it)."""
    result = runner.invoke(app, ["audit", "export", *args], env={"SCR_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    out = result.stdout_bytes
    if "csv" in args:
        lines = out.decode().splitlines(keepends=True)
        own = lines and ",operator-view," in lines[-1]
        return "".join(lines[:-1] if own else lines).encode()
    doc = orjson.loads(out)
    subtypes = [e["resource"]["subtype"][0]["code"] for e in doc["entry"]]
    if subtypes and subtypes[-1] == "operator-view":
        doc["entry"] = doc["entry"][:-1]
    return orjson.dumps(doc)


def test_an_export_is_audited_as_a_read_of_the_trail(engine: Engine, db_url: str) -> None:
    """The trail names who read whose record: the export's own entry comes first, named by the
    operator's login in the deployment's namespace, the command as the request's text."""
    _fill(engine)
    result = runner.invoke(app, ["audit", "export"], env={"SCR_DATABASE_URL": db_url})
    doc = orjson.loads(result.stdout_bytes)
    Bundle.model_validate(doc)
    own = doc["entry"][-1]["resource"]
    assert own["subtype"][0]["code"] == "operator-view"
    user = next(a for a in own["agent"] if a["requestor"])
    assert user["who"]["identifier"]["system"] == "https://fhir.scr.example/Id/operator-login"
    request = next(e for e in own["entity"] if e["type"]["code"] == "XrequestId")
    assert request["description"] == "audit export --format fhir"


def _fill(engine: Engine) -> None:
    append_batch(
        engine,
        [
            entry(1, action="read", refs=("Observation/o1",)),
            entry(2, action="everything", refs=("Observation/o1", "Condition/c1")),
            entry(3, action="search"),
            entry(4, action="read", outcome="deny", rules=("basis.none",), disclosed={}),
            entry(5, action="break-glass", break_glass_code="5", break_glass_text="unconscious"),
        ],
    )


def unmet_balp(event: dict[str, Any]) -> list[str]:
    """The constraints of the BALP profile ``event`` claims (IHE ITI.BasicAudit
    ``PatientRead.fsh``/``PatientQuery.fsh``) that it does not meet. Entities are sliced by
    type alone, so every System Object (type 2) is the Read's one data entity or the Query's
    one query entity."""
    profile = (event.get("meta") or {}).get("profile", [""])[0]
    if not profile:
        return []
    out = []
    client = next(a for a in event["agent"] if not a["requestor"])  # the client comes first
    if "address" not in client.get("network", {}):
        out.append("agent[client].network 1..1")
    if event["outcome"] != "0":
        out.append("outcome = 0")
    objects = [e for e in event["entity"] if e["type"].get("code") == "2"]
    if profile == BALP + "PatientRead" and (
        len(objects) != 1 or "what" not in objects[0] or event["action"] != "R"
    ):
        out.append(f"entity[data] 1..1 with what (has {len(objects)}), action R")
    if profile == BALP + "PatientQuery" and (
        len(objects) != 1
        or objects[0]["role"]["code"] != "24"
        or "query" not in objects[0]
        or "what" in objects[0]
        or event["action"] != "E"
    ):
        out.append(f"entity[query] 1..1 with query, no what (has {len(objects)}), action E")
    patients = [e for e in event["entity"] if e["type"].get("code") == "1"]
    if len(patients) != 1 or not patients[0].get("what"):
        out.append("entity[patient] 1..1")
    return out


def test_fhir_export_is_a_valid_bundle_of_balp_audit_events(engine: Engine, db_url: str):
    _fill(engine)
    doc = orjson.loads(_export(db_url, "--format", "fhir"))
    Bundle.model_validate(doc)
    events = [e["resource"] for e in doc["entry"]]
    assert len(events) == 5
    for event in events:
        AuditEvent.model_validate(event)
        assert unmet_balp(event) == []
        user = next(a for a in event["agent"] if a["requestor"])
        assert user["role"][0]["coding"][0]["code"] == "R8000"
        assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
        patients = [e for e in event["entity"] if e.get("role", {}).get("code") == "1"]
        # No Patient in this store is the person's: named by number, the person id beside it
        # (a reference the API answers 404 would not do: tests/ig/test_api.py resolves one).
        assert len(patients) == 1 and "reference" not in patients[0]["what"]
        assert patients[0]["what"]["identifier"]["value"].startswith("999")
        person = [d["valueString"] for d in patients[0]["detail"] if d["type"] == "person-id"]
        assert len(person) == 1 and person[0].startswith("patient-")
    read, whole, search, refused, glass = events
    assert read["meta"]["profile"] == [BALP + "PatientRead"]
    assert read["action"] == "R" and read["outcome"] == "0"
    assert {"reference": "Observation/o1"} in [e.get("what") for e in read["entity"]]
    # A whole record is a query: the request as asked, and what it released only as counts.
    assert whole["meta"]["profile"] == [BALP + "PatientQuery"] and whole["action"] == "E"
    assert whole["subtype"][0]["code"] == "operation"
    (asked,) = [e for e in whole["entity"] if e["type"]["code"] == "2"]
    assert base64.b64decode(asked["query"]).decode() == entry(2).query
    patient = next(e for e in whole["entity"] if e["type"]["code"] == "1")
    assert {"type": "disclosed:Observation", "valueString": "2"} in patient["detail"]
    assert search["meta"]["profile"] == [BALP + "PatientQuery"] and search["action"] == "E"
    assert any("query" in e for e in search["entity"])
    assert "meta" not in refused and refused["outcome"] == "4"
    assert "basis.none" in refused["outcomeDesc"]
    assert glass["subtype"] == [
        {"system": "https://fhir.scr.example/CodeSystem/audit-action", "code": "break-glass"}
    ]
    assert "meta" not in glass, "break-glass is not a read: no BALP profile is claimed"
    assert "BTG" in [
        c["coding"][0]["code"] for a in glass["agent"] for c in a.get("purposeOfUse", [])
    ]


def test_a_profile_is_claimed_only_where_the_event_meets_it(engine: Engine) -> None:
    """A large whole record (no references kept) is still a conformant PatientQuery; an
    entry without the query (kept before requests were), without the client's address, an
    ``explain``, or a read naming more than one resource claims none, and names what left."""
    refs = ("Observation/o1", "Provenance/p1")
    append_batch(
        engine,
        [
            entry(1, action="everything", refs=(), disclosed={"Observation": 60}),
            entry(2, action="everything", query=None, refs=refs),
            entry(3, action="read", client_address=None, refs=refs[:1]),
            entry(4, action="explain", refs=()),
            entry(5, action="read", refs=refs),
        ],
    )
    large, unasked, nowhere, explained, two = (
        audit_event(doc, "https://fhir.scr.example/") for doc in stream(engine)
    )
    for event in (large, unasked, nowhere, explained, two):
        AuditEvent.model_validate(event)
        assert unmet_balp(event) == []
    assert large["meta"]["profile"] == [BALP + "PatientQuery"]
    for event in (unasked, nowhere, explained, two):
        assert "meta" not in event, event["entity"]
    assert [e["what"] for e in two["entity"] if e["type"]["code"] == "2"] == [
        {"reference": r} for r in refs
    ]


def test_a_refused_token_and_a_nameless_user_export_as_valid_audit_events(
    engine: Engine, db_url: str
):
    """A refused token's entry names no one (as deps.refuse writes it), and a token may
    carry no name: both still export as valid R4, with nothing empty in them."""
    append_batch(
        engine,
        [
            entry(1, action="token-refused", outcome="deny", user_id="", user_name="",
                  role_code="", profile=None, org="", purpose=None, patient_id=None,
                  nhs_number=None, rules=("auth.token-missing",)),
            entry(2, action="login", user_name=""),
        ],
    )  # fmt: skip
    doc = orjson.loads(_export(db_url, "--format", "fhir"))
    Bundle.model_validate(doc)
    refused, login = (AuditEvent.model_validate(e["resource"]) for e in doc["entry"])
    user = next(a for a in refused.agent if a.requestor)
    assert user.who.display == "unauthenticated user" and user.name is None and not user.role
    assert len(refused.agent) == 3  # no organisation agent
    assert next(a for a in login.agent if a.requestor).name is None


def test_an_entry_naming_only_an_nhs_number_exports_the_person_by_that_number(
    engine: Engine, db_url: str
):
    """An attempt on a number nobody (or several people) hold keeps the number with no person
    id: its AuditEvent still names the person, by NHS number, with its details."""
    nhs = entry(1).nhs_number
    append_batch(
        engine,
        [
            entry(1, action="break-glass", outcome="deny", patient_id=None, disclosed={},
                  rules=("patient.unknown",), break_glass_code="5", break_glass_text="unconscious"),
            entry(2, action="search", patient_id=None, nhs_number=nhs, disclosed={}),
        ],
    )  # fmt: skip
    doc = orjson.loads(_export(db_url, "--format", "fhir"))
    Bundle.model_validate(doc)
    glass, searched = (e["resource"] for e in doc["entry"])
    for event in (glass, searched):
        AuditEvent.model_validate(event)
        (patient,) = [e for e in event["entity"] if e.get("role", {}).get("code") == "1"]
        assert patient["what"] == {"identifier": {"system": NHS_NUMBER, "value": nhs}}
    (patient,) = [e for e in glass["entity"] if e.get("role", {}).get("code") == "1"]
    assert {"type": "break-glass-reason", "valueString": "5"} in patient["detail"]
    assert searched["meta"]["profile"] == [BALP + "PatientQuery"]


def test_a_stored_purpose_or_role_that_is_not_a_code_exports_as_text(engine: Engine, db_url: str):
    """Purposes are checked where they enter, but entries already stored (and a token's own
    claims) may hold one FHIR's ``code`` refuses: it is exported as the concept's text."""
    append_batch(
        engine,
        [entry(1, purpose="TREAT  X"), entry(2, purpose=" TREAT", role_code="S1:G1:R 1 ")],
    )
    doc = orjson.loads(_export(db_url, "--format", "fhir"))
    Bundle.model_validate(doc)
    first, second = (e["resource"] for e in doc["entry"])
    for event, purpose in ((first, "TREAT  X"), (second, " TREAT")):
        AuditEvent.model_validate(event)
        user = next(a for a in event["agent"] if a["requestor"])
        assert user["purposeOfUse"] == [{"text": purpose}]
        assert event["meta"]["profile"] == [BALP + "PatientQuery"]
    assert next(a for a in second["agent"] if a["requestor"])["role"] == [{"text": "R 1 "}]


@pytest.mark.parametrize("blank", ["\xa0", "\x85", "\u2028", "\x0b"])
def test_a_stored_blank_purpose_role_or_name_exports_as_a_valid_bundle(
    engine: Engine, db_url: str, blank: str
):
    """R4B's ``string`` needs a character other than Unicode whitespace (bar space, CR, LF,
    TAB): a value of only such whitespace is exported as its code points."""
    append_batch(
        engine,
        [entry(1, purpose=blank), entry(2, role_code=f"S1:G1:{blank}", user_name=blank * 2)],
    )
    doc = orjson.loads(_export(db_url, "--format", "fhir"))
    Bundle.model_validate(doc)
    first, second = (
        next(a for a in e["resource"]["agent"] if a["requestor"]) for e in doc["entry"]
    )
    shown = f"U+{ord(blank):04X}"
    assert first["purposeOfUse"] == [{"text": shown}]
    assert second["role"] == [{"text": shown}] and second["name"] == f"{shown} {shown}"


def test_export_since_leaves_out_earlier_entries(engine: Engine, db_url: str):
    for n in range(1, 5):
        append(engine, entry(n))
    third = search(engine, Filters(), limit=2).entries[1]["time"]  # newest first: entry 3
    since = datetime.fromisoformat(third).strftime("%Y-%m-%dT%H:%M:%S")
    doc = orjson.loads(_export(db_url, "--since", since))
    ids = [e["resource"]["id"] for e in doc["entry"]]
    # --since is to the second, so entries 1 and 2 may share entry 3's second; 3 and 4 may not
    # be left out, and what is included is a tail of the trail.
    assert len(ids) >= 2 and ids == [f"scr-audit-{n}" for n in range(5 - len(ids), 5)]
    assert orjson.loads(_export(db_url, "--since", "2999-01-01"))["entry"] == []


def test_csv_export_has_a_row_per_entry_and_defuses_formulas(engine: Engine, db_url: str):
    append_batch(engine, [entry(1), entry(2, user_agent='=HYPERLINK("http://x")')])
    rows = list(csv.DictReader(io.StringIO(_export(db_url, "--format", "csv").decode())))
    assert [r["seq"] for r in rows] == ["1", "2"]
    assert rows[1]["user_agent"].startswith("'=")
    assert rows[0]["nhs_number"].startswith("999") and rows[0]["outcome"] == "permit"
