"""``/access``: break-glass and self-claims for clinicians without a relationship, explained."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import event

from audit.query import stream
from consent.policy import load as load_policy
from engine.access import review
from engine.api.deps import purpose_valid
from engine.directory import Entry, replace_directory
from tests.api.conftest import DIRECTORY, NHS, PATIENT, Store, Token, auth
from tests.api.test_fhir import audit_actions

REASON = "Unconscious in A&E, no history available"
#: A Patient id and a valid NHS number no one holds.
UNKNOWN = "b0d8a6e5-df7c-5fe8-a5a0-000000000000"
UNKNOWN_NHS = "9990000018"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def post(client: TestClient, token: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"/access/{path}", json=body, headers=auth(token))


def everything(client: TestClient, token: str, purpose: str | None = None) -> Any:
    headers = auth(token) | ({"X-Purpose-Of-Use": purpose} if purpose else {})
    return client.get(f"/fhir/Patient/{PATIENT}/$everything", headers=headers)


def test_ae_doctor_breaks_the_glass_by_nhs_number_then_sees_the_record(
    client: TestClient, token: Token, store: Store
) -> None:
    t = token("ae-doctor")
    assert everything(client, t).status_code == 404
    made = post(
        client, t, "break-glass", {"patient": NHS, "reason_code": "5", "reason_text": REASON}
    )
    assert made.status_code == 201 and len(made.json()["review_items"]) == 1
    assert everything(client, t).status_code == 404  # plain treatment does not use the grant
    record = everything(client, t, "ETREAT")
    assert record.status_code == 200
    kinds = {e["resource"]["resourceType"] for e in record.json()["entry"]}
    assert "Observation" in kinds and "76272004" not in record.text
    assert ("break-glass", "permit") in audit_actions(store)
    assert (
        everything(client, token("ae-doctor", user_id="u-colleague"), "ETREAT").status_code == 404
    )

    entries = [Entry(**o) for o in DIRECTORY] + [Entry("R1A", "Felpersham Infirmary", "hospital")]
    with store.engine.begin() as conn:
        replace_directory(conn, "test.other-hospital", entries, datetime.now(UTC))
    elsewhere = token("ae-doctor", org="R1A")  # the same doctor, at another hospital
    assert everything(client, elsewhere, "ETREAT").status_code == 404


def test_break_glass_refusals_say_why_and_are_audited(
    client: TestClient, token: Token, store: Store
) -> None:
    short = post(
        client,
        token("ae-doctor"),
        "break-glass",
        {"patient": NHS, "reason_code": "5", "reason_text": "urgent"},
    )
    assert short.status_code == 403
    assert "break-glass.request" in {i["expression"][0] for i in short.json()["issue"]}
    assert audit_actions(store)[-1] == ("break-glass", "deny")
    receptionist = post(
        client, token("receptionist"), "break-glass",
        {"patient": PATIENT, "reason_code": "5", "reason_text": REASON},
    )  # fmt: skip
    assert receptionist.status_code == 403
    unknown = post(
        client,
        token("ae-doctor"),
        "break-glass",
        {"patient": "nobody", "reason_code": "5", "reason_text": REASON},
    )
    assert unknown.status_code == 404


def test_self_claim_opens_the_record_for_the_claimant(client: TestClient, token: Token) -> None:
    t = token("ae-doctor")
    made = post(
        client,
        t,
        "relationship",
        {"patient": NHS, "reason": "Seen in clinic today, letter pending"},
    )
    assert made.status_code == 201
    assert everything(client, t).status_code == 200


def test_a_claim_found_inappropriate_is_not_made_again_by_its_maker(
    client: TestClient, token: Token, store: Store
) -> None:
    """An inappropriate review ends a claim at once, but the next post made a new one and the
    record opened again: the review stopped nothing. The maker's claims for the person are
    refused (and audited); a colleague's and the maker's break-glass are not."""
    t, claim = token("ae-doctor"), {"patient": NHS, "reason": "Seen in clinic today, letter"}
    made = post(client, t, "relationship", claim)
    assert made.status_code == 201 and everything(client, t).status_code == 200
    with store.engine.begin() as conn:
        review(conn, "self-claim", made.json()["review_items"][0], "inappropriate",
               "not involved in her care", "u-ig", datetime.now(UTC))  # fmt: skip
    again = post(client, t, "relationship", claim)
    assert again.status_code == 403 and "found your earlier self-claim" in again.text
    assert everything(client, t).status_code == 404
    assert audit_actions(store)[-2] == ("self-claim", "deny")
    colleague = token("ae-doctor", user_id="u-colleague")
    assert post(client, colleague, "relationship", claim).status_code == 201
    glass = {"patient": NHS, "reason_code": "5", "reason_text": REASON}
    assert post(client, t, "break-glass", glass).status_code == 201


@pytest.mark.parametrize(
    ("path", "form", "purpose"),
    [
        ("break-glass", {"reason_code": "5", "reason_text": REASON}, "ETREAT"),
        ("relationship", {"reason": "Seen in clinic today, letter pending"}, None),
    ],
)
def test_a_grant_or_a_claim_follows_the_person_through_a_merge(
    client: TestClient, token: Token, store: Store, path: str, form: dict[str, str], purpose: Any
) -> None:
    """Made for the person, not for the id they had then: when identity finds a duplicate and
    merges the person into another, the doctor using the grant in an emergency keeps it, and
    a colleague who made none still sees nothing."""
    t = token("ae-doctor")
    assert post(client, t, path, {"patient": NHS} | form).status_code == 201
    assert everything(client, t, purpose).status_code == 200
    store.merge()
    assert everything(client, t, purpose).status_code == 200
    colleague = token("ae-doctor", user_id="u-colleague")
    assert everything(client, colleague, purpose).status_code == 404


def test_explain_names_sections_and_reasons_and_never_content(
    client: TestClient, token: Token
) -> None:
    gp = client.get(
        "/access/explain", params={"patient": PATIENT}, headers=auth(token("gp"))
    ).json()
    assert gp["permit"] and gp["notice"] == "Some information may be withheld"
    assert "76272004" not in str(gp) and "Syphilis" not in str(gp)
    outsider = client.get(
        "/access/explain", params={"patient": PATIENT}, headers=auth(token("ae-doctor"))
    ).json()
    missing = client.get(
        "/access/explain", params={"patient": "nobody"}, headers=auth(token("ae-doctor"))
    ).json()
    assert not outsider["permit"] and outsider["reasons"] == missing["reasons"]


def test_explain_takes_an_nhs_number_as_break_glass_does(
    client: TestClient, token: Token, store: Store
) -> None:
    """The patient's own GP asking by NHS number is told the truth (not 'no relationship'),
    audited under the person and the number; a number no one holds is explained as an
    unknown Patient id is, audited under the number asked."""
    gp = auth(token("gp"))
    by_id = client.get("/access/explain", params={"patient": PATIENT}, headers=gp).json()
    by_number = client.get("/access/explain", params={"patient": NHS}, headers=gp)
    assert by_number.status_code == 200 and by_number.json() == by_id
    entry = list(stream(store.engine))[-1]
    assert (entry["action"], entry["outcome"], entry["nhs_number"]) == ("explain", "permit", NHS)
    assert entry["patient_id"]
    doctor = auth(token("ae-doctor"))
    unknown = client.get("/access/explain", params={"patient": UNKNOWN_NHS}, headers=doctor)
    nobody = client.get("/access/explain", params={"patient": "nobody"}, headers=doctor)
    assert unknown.status_code == 200 and unknown.json() == nobody.json()
    entry = list(stream(store.engine))[-2]
    assert (entry["action"], entry["outcome"], entry["nhs_number"]) == (
        "explain", "deny", UNKNOWN_NHS
    )  # fmt: skip
    assert not entry.get("patient_id")


def test_explain_for_a_number_two_people_hold_asks_for_the_patient_id(
    client: TestClient, token: Token, store: Store
) -> None:
    """409 as break-glass answers, for a user the gates let through; a user they refuse gets
    the same refusal as for a number no one holds."""
    from tests.web.test_pages import _a_second_person_with_the_same_number  # imports this module

    assert len(_a_second_person_with_the_same_number(store)) == 2
    ambiguous = client.get("/access/explain", params={"patient": NHS}, headers=auth(token("gp")))
    assert ambiguous.status_code == 409 and "multiple-matches" in ambiguous.text
    assert audit_actions(store)[-1] == ("explain", "deny")
    stale = auth(token("gp", ig_training=date(2020, 1, 1)))
    two = client.get("/access/explain", params={"patient": NHS}, headers=stale)
    none = client.get("/access/explain", params={"patient": UNKNOWN_NHS}, headers=stale)
    assert two.status_code == none.status_code == 200 and two.json() == none.json()


def test_explain_on_a_number_no_one_or_several_hold_is_audited_as_break_glass_is(
    client: TestClient, token: Token, store: Store
) -> None:
    """Break-glass and self-claim name ``patient.unknown`` / ``patient.ambiguous`` in the entry
    of an attempt on a number no one or several people hold, so the IG officer finds those
    attempts by rule; explain by number names them too, and only in the entry: a user with no
    relationship is answered the same for a number someone holds and for one no one does."""
    from tests.web.test_pages import _a_second_person_with_the_same_number  # imports this module

    doctor = auth(token("ae-doctor"))
    known = client.get("/access/explain", params={"patient": NHS}, headers=doctor)
    held = list(stream(store.engine))[-1]
    unknown = client.get("/access/explain", params={"patient": UNKNOWN_NHS}, headers=doctor)
    nobody = list(stream(store.engine))[-1]
    assert known.status_code == unknown.status_code == 200 and known.json() == unknown.json()
    assert not {"patient.unknown", "patient.ambiguous"} & set(held["rules"])
    assert nobody["action"] == "explain" and "patient.unknown" in nobody["rules"]
    assert _a_second_person_with_the_same_number(store)
    for who in (token("gp"), token("gp", ig_training=date(2020, 1, 1))):
        client.get("/access/explain", params={"patient": NHS}, headers=auth(who))
        entry = list(stream(store.engine))[-1]
        assert entry["action"] == "explain" and "patient.ambiguous" in entry["rules"]
        assert entry["nhs_number"] == NHS


def test_a_refused_request_says_nothing_about_whether_the_person_exists(
    client: TestClient, token: Token, store: Store
) -> None:
    t = token("receptionist")
    body = {"reason_code": "5", "reason_text": REASON}
    known = post(client, t, "break-glass", body | {"patient": NHS})
    unknown = post(client, t, "break-glass", body | {"patient": "9990000018"})
    assert known.status_code == unknown.status_code == 403
    assert known.json() == unknown.json()
    assert audit_actions(store)[-2:] == [("break-glass", "deny"), ("break-glass", "deny")]
    claim = {"reason": "Seen in clinic today, letter pending"}
    refused = [
        post(client, token("receptionist"), "relationship", claim | {"patient": p})
        for p in (NHS, "nobody")
    ]
    assert [r.status_code for r in refused] == [403, 403] and refused[0].json() == refused[1].json()


def test_a_missing_person_is_audited_for_a_user_who_may_ask(
    client: TestClient, token: Token, store: Store
) -> None:
    missing = post(
        client,
        token("ae-doctor"),
        "break-glass",
        {"patient": "9990000018", "reason_code": "5", "reason_text": REASON},
    )
    assert missing.status_code == 404
    assert audit_actions(store)[-1] == ("break-glass", "deny")


def test_a_refused_explanation_is_the_same_whether_or_not_the_person_exists(
    client: TestClient, token: Token
) -> None:
    """Stale training: the explanation says so, and nothing about the person or a relationship."""
    t = token("gp", ig_training=date(2020, 1, 1))
    known = client.get("/access/explain", params={"patient": PATIENT}, headers=auth(t)).json()
    missing = client.get("/access/explain", params={"patient": "nobody"}, headers=auth(t)).json()
    assert not known["permit"] and not missing["permit"]
    assert known["reasons"] == missing["reasons"]


def test_an_nhs_number_in_non_ascii_digits_is_refused_400(
    client: TestClient, token: Token, store: Store
) -> None:
    arabic = NHS.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    before = audit_actions(store)
    body = {"patient": arabic, "reason_code": "5", "reason_text": REASON}
    glass = post(client, token("ae-doctor"), "break-glass", body)
    claim = post(client, token("ae-doctor"), "relationship", {"patient": arabic, "reason": REASON})
    search = client.get(
        "/fhir/Patient",
        params={"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{arabic}"},
        headers=auth(token("ae-doctor")),
    )
    for refused in (glass, claim, search):
        assert refused.status_code == 400
        assert refused.json()["resourceType"] == "OperationOutcome"
    assert audit_actions(store) == before


def test_a_purpose_header_that_is_not_a_code_is_refused_400(
    client: TestClient, token: Token, store: Store
) -> None:
    """``X-Purpose-Of-Use`` is a code (FHIR ``code``: no control characters, single spaces,
    at most the trail's 32 characters): anything else is a malformed request, refused before
    any decision as other malformed parameters are, so it never reaches the trail."""
    before = audit_actions(store)
    for odd in ("TREAT\x01", "TREAT  X", "TREAT\tX", "P" * 33):
        refused = everything(client, token("gp"), odd)
        assert refused.status_code == 400, odd
        assert refused.json()["issue"][0]["expression"] == ["X-Purpose-Of-Use"]
    assert audit_actions(store) == before
    assert everything(client, token("gp"), "TREAT").status_code == 200


@pytest.mark.parametrize("odd", ["TREAT\x00", "TREAT\ud800", "\xa0", " TREAT", "T" * 33])
def test_a_token_purpose_that_is_not_a_code_is_decided_as_unknown_and_audited(
    client: TestClient, token: Token, store: Store, odd: str
) -> None:
    """The header's purpose is a 400; the token's is the user's standing claim, so a request
    under one that is not a code is decided, like any purpose the policy does not know, and
    denied (``purpose.known``) with its entry, which the writer makes storable: a lone
    surrogate can fail neither this entry nor any batched beside it (no 503)."""
    before = len(audit_actions(store))
    refused = client.get(f"/fhir/Patient/{PATIENT}/$everything",
                         headers=auth(token("gp", purpose=odd)))  # fmt: skip
    assert refused.status_code == 404, refused.text
    assert audit_actions(store)[before:] == [("everything", "deny")]
    last = list(stream(store.engine))[-1]
    assert "purpose.known" in last["rules"]
    assert last["purpose"] == odd.replace("\x00", "\ufffd").replace("\ud800", "\ufffd")[:32]


def test_an_explanation_under_a_token_purpose_with_a_lone_surrogate_is_written(
    client: TestClient, token: Token, store: Store
) -> None:
    """The explanation echoes the purpose: one JSON cannot encode was a 500 after its entry."""
    before = len(audit_actions(store))
    answer = client.get(f"/access/explain?patient={PATIENT}",
                        headers=auth(token("gp", purpose="TREAT\ud800")))  # fmt: skip
    assert audit_actions(store)[before:] == [("explain", "deny")]
    assert answer.status_code == 200, answer.text[:200]


def test_no_policy_purpose_could_match_a_token_purpose_that_is_not_a_code() -> None:
    """Why a token's purpose that fails ``purpose_valid`` is only ever an unknown purpose."""
    policy = load_policy()
    assert policy.purposes and all(
        purpose_valid(code) and code.isascii() and code.isalpha() for code in policy.purposes
    )


def statements(store: Store, call: Callable[[], Response]) -> tuple[int, int]:
    """The status ``call`` answers and the database statements it ran (never its time)."""
    ran: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        ran.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        status = call().status_code
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return status, len(ran)


def test_a_hidden_person_costs_the_database_round_trips_an_unknown_id_does(
    client: TestClient, token: Token, store: Store
) -> None:
    """A read of a real person the user may not see must cost the statements a read of an id
    no one holds does, or response time tells a caller which ids and numbers are real."""
    doctor = auth(token("ae-doctor"))
    observation = client.get(
        "/fhir/Observation", params={"patient": PATIENT}, headers=auth(token())
    ).json()["entry"][0]["resource"]["id"]
    glass = {"reason_code": "5", "reason_text": REASON}
    # Each read of (a Patient id, the id of one of its resources, an NHS number).
    reads: dict[str, Callable[[str, str, str], Response]] = {
        "$everything": lambda p, r, n: client.get(f"/fhir/Patient/{p}/$everything", headers=doctor),
        "read": lambda p, r, n: client.get(f"/fhir/Observation/{r}", headers=doctor),
        "search": lambda p, r, n: client.get(
            "/fhir/Patient", params={"identifier": f"{NHS_SYSTEM}|{n}"}, headers=doctor
        ),
        "explain": lambda p, r, n: client.get(
            "/access/explain", params={"patient": p}, headers=doctor
        ),
        "refused break-glass": lambda p, r, n: post(
            client, token("receptionist"), "break-glass", glass | {"patient": n}
        ),
    }
    for name, read in reads.items():
        read(UNKNOWN, UNKNOWN, UNKNOWN_NHS)  # every statement built and cached
        hidden = statements(store, lambda read=read: read(PATIENT, observation, NHS))
        unknown = statements(store, lambda read=read: read(UNKNOWN, UNKNOWN, UNKNOWN_NHS))
        assert hidden == unknown, f"{name}: (status, statements) {hidden} against {unknown}"


@pytest.mark.parametrize("purpose", ["ZZZ", "POPHLTH", "HOPERAT"])
@pytest.mark.parametrize("path", ["break-glass", "relationship"])
def test_break_glass_and_self_claim_are_refused_under_a_purpose_every_read_refuses(
    client: TestClient, token: Token, store: Store, purpose: str, path: str
) -> None:
    """Caldicott 1: an unknown purpose, or one not allowed for the profile or not direct
    care, refuses the request for a way in as it refuses every read."""
    headers = auth(token("ae-doctor")) | {"X-Purpose-Of-Use": purpose}
    explained = client.get("/access/explain", params={"patient": PATIENT}, headers=headers)
    refused = [r["rule"] for r in explained.json()["reasons"] if r["refusal"]]
    assert any(rule.startswith("purpose.") for rule in refused)
    body = (
        {"patient": NHS, "reason_code": "5", "reason_text": REASON}
        if path == "break-glass"
        else {"patient": NHS, "reason": "Seen in clinic today, letter pending"}
    )
    made = client.post(f"/access/{path}", json=body, headers=headers)
    assert made.status_code == 403, made.text
    said = [e for i in made.json()["issue"] for e in i.get("expression", [])]
    assert any(rule.startswith("purpose.") for rule in said), said


def test_a_token_purpose_the_policy_does_not_know_gets_no_self_claim(
    client: TestClient, token: Token
) -> None:
    claim = {"patient": NHS, "reason": "Seen in clinic today, letter pending"}
    made = post(client, token("ae-doctor", purpose="NOPE"), "relationship", claim)
    assert made.status_code == 403
    assert everything(client, token("ae-doctor")).status_code == 404  # no claim to use
