"""The web pages over a small store: sign-in, CSRF, the notice, the record and break-glass."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from httpx import Response

import engine.api.records as records
from adapters.systmone import SystmOneAdapter
from audit import AuditUnavailable
from audit.query import stream
from consent import NOTICE
from consent.model import ConsentDirective
from engine.api import create_app
from engine.api.deps import SESSION_COOKIE
from engine.identity.index import people_with_nhs_number, relink_all
from engine.ingest import ingest
from engine.settings import SettingsError
from engine.web.session import CSRF_COOKIE, CSRF_KEY_FILE
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.api.test_access import UNKNOWN_NHS, statements
from tests.api.test_fhir import audit_actions
from tests.factories import s1_code, s1_patient, s1_registration, write_systmone

__all__ = ["Store"]


def csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def signed_in(client: TestClient, token: str) -> TestClient:
    """The session cookie for ``token``, held as if the server had set it (so a response
    can clear it, as it would in a browser)."""
    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local")
    return client


def acknowledged(client: TestClient) -> TestClient:
    response = client.post(
        "/acknowledge", data={"csrf_token": csrf(client, "/record"), "next_page": "/record"}
    )
    assert response.status_code == 303
    return client


def test_dev_sign_in_offers_personas_and_sets_a_strict_session_cookie(
    web: TestClient, store: Store
) -> None:
    page = web.get("/")
    assert "A&amp;E doctor" in page.text and "Demonstration only" in page.text
    refused = web.post("/session", data={"persona": "gp", "csrf_token": "forged"})
    assert refused.status_code == 403
    signed = web.post("/session", data={"persona": "gp", "csrf_token": csrf(web)})
    assert signed.status_code == 303 and signed.headers["location"] == "/record"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    for flag in ("Secure", "HttpOnly", "SameSite=strict"):
        assert flag.lower() in cookie.lower()
    assert audit_actions(store)[-1] == ("login", "permit")


def test_a_sign_in_without_a_token_or_with_one_too_long_to_keep_is_refused_and_audited(
    web: TestClient, store: Store, token: Token
) -> None:
    """A browser drops a cookie over 4 KB, which would sign the user out at once and silently,
    after the trail had recorded a login: such a token is refused at sign-in, saying why."""
    nothing = web.post("/session", data={"csrf_token": csrf(web)})
    assert nothing.status_code == 401
    assert audit_actions(store)[-1] == ("token-refused", "deny")
    huge = token("gp", name="Dr " + "Synthetic " * 500)
    refused = web.post("/session", data={"token": huge, "csrf_token": csrf(web)})
    assert refused.status_code == 401 and "too long" in refused.text
    assert audit_actions(store)[-1] == ("token-refused", "deny")
    assert not any(c.startswith(SESSION_COOKIE) for c in refused.headers.get_list("set-cookie"))


@pytest.mark.parametrize("pad", ["\r\n", " ", "\n\n"])
def test_a_pasted_token_with_surrounding_whitespace_signs_in(
    web: TestClient, token: Token, store: Store, pad: str
) -> None:
    """`scr token` prints a line end, which a pasted token keeps (CRLF from a textarea): it is
    stripped, as the API strips the bearer header, and the session holds the token alone."""
    t = token("gp")
    signed = web.post("/session", data={"token": pad + t + pad, "csrf_token": csrf(web)})
    assert signed.status_code == 303, audit_actions(store)[-1]
    assert audit_actions(store)[-1] == ("login", "permit")
    assert web.cookies.get(SESSION_COOKIE) == t
    web.cookies.clear()
    blank = web.post("/session", data={"token": pad, "csrf_token": csrf(web)})
    assert blank.status_code == 401
    assert audit_actions(store)[-1] == ("token-refused", "deny")


def test_a_session_signed_out_is_refused_to_the_pages_until_it_expires(
    web: TestClient, store: Store, token: Token
) -> None:
    """A copy of the cookie taken before sign-out (a shared workstation) signs no one in
    after it, nor does pasting its token; a new token does."""
    gp = token("gp")
    signed_in(web, gp)
    acknowledged(web)
    assert web.post("/signout", data={"csrf_token": csrf(web, "/record")}).status_code == 303
    web.cookies.clear()
    web.cookies.set(SESSION_COOKIE, gp, domain="testserver.local")
    replayed = web.get("/record")
    assert replayed.status_code == 303 and replayed.headers["location"] == "/"
    assert audit_actions(store)[-1] == ("token-refused", "deny")
    assert list(stream(store.engine))[-1]["rules"] == ["auth.signed-out"]
    web.cookies.clear()
    pasted = web.post("/session", data={"token": gp, "csrf_token": csrf(web)})
    assert pasted.status_code == 401 and "signed out" in pasted.text
    fresh = web.post(
        "/session", data={"token": token("gp", user_id="u-2"), "csrf_token": csrf(web)}
    )
    assert fresh.status_code == 303


def _padded(token: str) -> str:
    """The same token spelt otherwise: PyJWT takes '=' padding on the signature segment."""
    return token + "=" * (-len(token.rpartition(".")[2]) % 4)


@pytest.mark.parametrize("spelt", [str, _padded], ids=["as-issued", "padded"])
def test_a_signed_out_token_reads_neither_pages_nor_the_api(
    web: TestClient, store: Store, token: Token, spelt: object
) -> None:
    """What is signed out is the token, not its spelling; and a copy of the cookie is a bearer
    token for the API as well."""
    gp = token("gp")
    copied = spelt(gp)  # type: ignore[operator]
    assert copied != gp or spelt is str
    signed_in(web, gp)
    acknowledged(web)
    assert web.post("/signout", data={"csrf_token": csrf(web, "/record")}).status_code == 303
    web.cookies.clear()
    web.cookies.set(SESSION_COOKIE, copied, domain="testserver.local")
    assert web.get(f"/record/{NHS}").headers.get("location") == "/"
    web.cookies.clear()
    read = web.get(
        f"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}", headers=auth(copied)
    )
    assert read.status_code == 401
    replayed = list(stream(store.engine))[-1]
    assert replayed["rules"] == ["auth.signed-out"] and replayed["user_id"]  # whose session
    pasted = web.post("/session", data={"token": copied, "csrf_token": csrf(web)})
    assert pasted.status_code == 401
    assert list(stream(store.engine))[-1]["user_id"]  # whose session it was


def test_the_record_waits_for_the_confidentiality_notice(web: TestClient, token: Token) -> None:
    signed_in(web, token("gp"))
    first = web.get(f"/record/{NHS}")
    assert first.status_code == 200 and 'id="acknowledge"' in first.text
    acknowledged(web)
    page = web.get(f"/record/{NHS}")
    assert "Summary" in page.text and "Some information may be withheld" in page.text
    assert "Riverside Surgery (systmone)" in page.text


def test_other_organisations_see_no_confidential_or_sensitive_item(
    web: TestClient, token: Token
) -> None:
    acknowledged(signed_in(web, token("other-gp")))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 200 and "Syphilis" not in page.text and "76272004" not in page.text


def test_ae_doctor_is_refused_then_breaks_the_glass(
    web: TestClient, token: Token, store: Store
) -> None:
    acknowledged(signed_in(web, token("ae-doctor")))
    refused = web.get(f"/record/{NHS}")
    assert refused.status_code == 404 and 'id="break-glass"' in refused.text
    form = {
        "csrf_token": csrf(web, "/record"),
        "reason_code": "5",
        "reason_text": "Unconscious in resus, no history",
    }
    done = web.post(f"/record/{NHS}/break-glass", data=form)
    assert done.status_code == 303 and done.headers["location"].endswith("purpose=ETREAT")
    page = web.get(done.headers["location"])
    assert page.status_code == 200 and "emergency access" in page.text
    assert ("break-glass", "permit") in audit_actions(store)


def test_a_hidden_persons_page_costs_the_round_trips_of_a_number_no_one_holds(
    web: TestClient, token: Token, store: Store
) -> None:
    """The record page of a real person the user may not see must cost the statements the
    page of a number no one holds does, or its time tells a user which numbers are real."""
    acknowledged(signed_in(web, token("ae-doctor")))
    web.get(f"/record/{UNKNOWN_NHS}")  # every statement built and cached
    hidden = statements(store, lambda: web.get(f"/record/{NHS}"))
    unknown = statements(store, lambda: web.get(f"/record/{UNKNOWN_NHS}"))
    assert hidden == unknown, f"(status, statements) {hidden} against {unknown}"


def _a_second_person_with_the_same_number(store: Store) -> list[str]:
    """Another person at the same practice (identity keeps them apart: other name, other
    birth date) whose Patient carries the same NHS number; both people's ids."""
    folder = write_systmone(
        store.folder.parent / "twin",
        [s1_patient("2", NHS, FirstName="John", Surname="Jones", DateBirth="02 Feb 1980",
                    Gender="M")],
        [s1_code("30", "2", NumericValue="150")],
        registrations=[s1_registration("92", "5001", "2")],
    )  # fmt: skip
    ingest(store.engine, store.settings, store.codes, SystmOneAdapter(), str(folder))
    relink_all(store.engine)
    with store.engine.connect() as conn:
        return people_with_nhs_number(conn, NHS)


def test_the_page_for_a_number_two_people_hold_audits_neither_record_as_disclosed(
    web: TestClient, store: Store, token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that shows neither of two people's records must not audit either as read, or
    their access reports and IG review say this user read both whole records."""
    people = _a_second_person_with_the_same_number(store)
    assert len(people) == 2
    acknowledged(signed_in(web, token("gp")))
    before = len(list(stream(store.engine)))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 409 and "Jones" not in page.text and "Smith" not in page.text
    entries = list(stream(store.engine))[before:]
    assert [(e["action"], e["outcome"], e["patient_id"], e["nhs_number"]) for e in entries] == [
        ("everything", "deny", person, NHS) for person in people
    ]
    for entry in entries:
        assert "patient.ambiguous" in entry["rules"]
        assert not entry.get("disclosed") and not entry.get("refs")

    def broken(*args: object) -> object:
        raise AuditUnavailable("the audit entry could not be written: disk full")

    monkeypatch.setattr("engine.api.records.disclose", broken)
    failed = web.get(f"/record/{NHS}")
    assert failed.status_code == 503 and "More than one" not in failed.text


def test_a_purpose_that_is_not_a_code_is_refused_400_and_audited(
    web: TestClient, token: Token, store: Store
) -> None:
    """A purpose of use is a code: one with a NUL (which PostgreSQL cannot store) or doubled
    spaces is refused, and the attempt on the person is in the trail, with no purpose."""
    acknowledged(signed_in(web, token("other-gp")))
    for odd in ("TREAT\x00", "TREAT  X", " TREAT", "P" * 33):
        page = web.get(f"/record/{NHS}", params={"purpose": odd})
        assert page.status_code == 400 and "purpose" in page.text, odd
        last = list(stream(store.engine))[-1]
        assert (last["action"], last["outcome"], last["rules"]) == (
            "everything", "deny", ["purpose.invalid"]
        )  # fmt: skip
        assert (last["user_id"], last["nhs_number"], last["purpose"]) == ("u-other-gp", NHS, None)
    assert web.get(f"/record/{NHS}", params={"purpose": "TREAT"}).status_code == 200
    # The page's view keeps the request as asked: exported, it is a BALP PatientQuery.
    assert list(stream(store.engine))[-1]["query"] == f"/record/{NHS}?purpose=TREAT"


def test_break_glass_reasons_the_api_refuses_are_refused_before_anything_is_audited(
    web: TestClient, token: Token, store: Store
) -> None:
    """The form takes the API's checks (a NUL cannot be stored with the grant): a reason that
    fails them is a 400 with the form again, and no break-glass is recorded without its grant."""
    acknowledged(signed_in(web, token("ae-doctor")))
    before = audit_actions(store)
    for code, text in (("5", "unconscious\x00"), ("5", "x" * 2001), ("5" * 17, "unconscious")):
        form = {"csrf_token": csrf(web, "/record"), "reason_code": code, "reason_text": text}
        page = web.post(f"/record/{NHS}/break-glass", data=form)
        assert page.status_code == 400 and 'id="break-glass"' in page.text
    claim = {"csrf_token": csrf(web, "/record"), "reason": "caring\x00"}
    assert web.post(f"/record/{NHS}/relationship", data=claim).status_code == 400
    assert audit_actions(store) == before


def test_receptionist_sees_no_clinical_item(web: TestClient, token: Token) -> None:
    acknowledged(signed_in(web, token("receptionist")))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 200
    assert "Observations" not in page.text and "Blood pressure" not in page.text


def test_without_a_session_pages_send_you_to_sign_in(web: TestClient) -> None:
    assert web.get(f"/record/{NHS}").headers["location"] == "/"


def _break_glass(client: TestClient, csrf_token: str) -> int:
    form = {"csrf_token": csrf_token, "reason_code": "1", "reason_text": "forged by another site"}
    return client.post(f"/record/{NHS}/break-glass", data=form).status_code


def test_a_csrf_token_known_before_sign_in_forges_no_form_after_it(
    web: TestClient, token: Token
) -> None:
    """Whoever planted the pre-sign-in cookie (a sibling subdomain, a MITM on http://) knows
    the token the sign-in page showed: it must not carry over into the session."""
    known = csrf(web)
    assert (
        web.post("/session", data={"persona": "ae-doctor", "csrf_token": known}).status_code == 303
    )
    assert csrf(web, "/record") != known
    assert _break_glass(web, known) == 403


def test_a_planted_csrf_cookie_validates_no_form(web: TestClient, token: Token) -> None:
    signed_in(web, token("ae-doctor"))
    web.cookies.set(CSRF_COOKIE, "planted-by-attacker")
    assert _break_glass(web, "planted-by-attacker") == 403


def test_a_csrf_token_in_other_characters_is_refused_and_audited(
    web: TestClient, store: Store
) -> None:
    """'é' made the comparison raise (a 500, with nothing on the trail)."""
    web.get("/")
    before = len(audit_actions(store))
    answer = web.post("/session", data={"csrf_token": "\u00e9", "persona": "gp"})
    assert answer.status_code == 403
    assert audit_actions(store)[before:] == [("form-refused", "deny")]


def test_the_csrf_token_is_the_sessions_own(web: TestClient, token: Token) -> None:
    """Another session's token (another user's, or this user's before signing out) fails."""
    mine = csrf(signed_in(web, token("ae-doctor")), "/record")
    assert csrf(signed_in(web, token("gp")), "/record") != mine
    assert _break_glass(web, mine) == 403
    out = web.post("/signout", data={"csrf_token": csrf(web, "/record")})
    assert out.status_code == 303
    assert not any(c.startswith(SESSION_COOKIE + "=") and "Max-Age=0" not in c
                   for c in out.headers.get_list("set-cookie"))  # fmt: skip
    assert web.post("/session", data={"persona": "gp", "csrf_token": mine}).status_code == 403


def test_session_cookies_cannot_be_set_by_a_sibling_domain_or_over_http(web: TestClient) -> None:
    """``__Host-``: the browser takes the cookie only from a secure page of this very host."""
    signed = web.post("/session", data={"persona": "gp", "csrf_token": csrf(web)})
    for cookie in signed.headers.get_list("set-cookie"):
        assert cookie.startswith("__Host-") and "secure" in cookie.lower(), cookie
        assert "path=/" in cookie.lower() and "domain" not in cookie.lower(), cookie


def test_a_refused_csrf_check_is_audited_with_the_user_and_the_person(
    web: TestClient, token: Token, store: Store
) -> None:
    signed_in(web, token("ae-doctor"))
    assert _break_glass(web, "forged") == 403
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["outcome"], last["rules"]) == (
        "form-refused",
        "deny",
        ["web.csrf-invalid"],
    )
    assert (last["user_id"], last["nhs_number"]) == ("u-ae-doctor", NHS)
    web.cookies.clear()
    assert web.post("/session", data={"persona": "gp", "csrf_token": "forged"}).status_code == 403
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["user_id"], last["nhs_number"]) == ("form-refused", "", None)


def test_an_expired_session_is_cleared_and_audited_once(
    web: TestClient, token: Token, store: Store
) -> None:
    """Kept, the cookie would be refused, and audited, on every page the user opens."""
    signed_in(web, token("gp", minutes=60, now=datetime.now(UTC) - timedelta(hours=2)))
    before = len(audit_actions(store))
    first = web.get("/record")
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert any(c.startswith(SESSION_COOKIE + "=") and "Max-Age=0" in c
               for c in first.headers.get_list("set-cookie"))  # fmt: skip
    for page in ("/record", f"/record/{NHS}", "/inbox"):
        assert web.get(page).status_code == 303
    assert audit_actions(store)[before:] == [("token-refused", "deny")]


def _session_max_age(signed: Response) -> int:
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    found = re.search(r"Max-Age=(\d+)", cookie)
    assert found, cookie
    return int(found.group(1))


def test_the_session_cookie_lasts_as_long_as_its_token_is_accepted(
    web: TestClient, token: Token
) -> None:
    """Its ``exp`` and the verifier's 30 s leeway, as the API accepts it."""
    signed = web.post("/session", data={"token": token("gp", minutes=30), "csrf_token": csrf(web)})
    assert 30 * 60 - 60 <= _session_max_age(signed) <= 30 * 60 + 30


def test_a_token_taken_within_the_leeway_signs_in_to_the_rest_of_it(
    web: TestClient, token: Token, store: Store
) -> None:
    """Accepted 10 s past its ``exp`` and audited as a login, it is not given a cookie the
    browser drops at once: the session lasts the 20 s the API would still accept it."""
    stale = token("gp", now=datetime.now(UTC) - timedelta(seconds=70), minutes=1)
    signed = web.post("/session", data={"token": stale, "csrf_token": csrf(web)})
    assert signed.status_code == 303 and 1 <= _session_max_age(signed) <= 20
    assert audit_actions(store)[-1] == ("login", "permit")
    assert web.get("/record").headers.get("location") != "/"


def test_a_client_past_its_refusals_gets_a_plain_page(store: Store) -> None:
    settings = replace(store.settings, refusal_limit=2)
    app = create_app(settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        answers = [web.post("/session", data={"csrf_token": "forged"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [403, 403, 429]
    assert answers[-1].headers["content-type"].startswith("text/html")
    assert "Too many" in answers[-1].text


@pytest.mark.parametrize("held", [b"", b"short"])
def test_a_csrf_key_file_scr_did_not_make_stops_start_up(
    store: Store, tmp_path: Path, held: bytes
) -> None:
    """An empty or truncated key (a bad restore) would let anyone forge every form."""
    data_dir = tmp_path / "restored"
    data_dir.mkdir()
    (data_dir / CSRF_KEY_FILE).write_bytes(held)
    with pytest.raises(SettingsError, match=str(data_dir / CSRF_KEY_FILE)):
        create_app(replace(store.settings, data_dir=data_dir), store.engine)


def test_a_signed_in_users_refusals_are_each_audited_never_throttled(
    store: Store, token: Token
) -> None:
    """A valid token is never counted: a GP refused a care-home step and a forged form, past
    the limit, still gets 403 and an entry naming them and the person, every time; and a
    colleague behind the same address whose session expired is sent to sign in, not 429."""
    settings = replace(store.settings, refusal_limit=2, refusal_window_seconds=3600)
    app = create_app(settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        acknowledged(signed_in(web, token("gp")))
        starts = [web.get(f"/record/{NHS}/transfer").status_code for _ in range(4)]
        forged = [_break_glass(web, "forged") for _ in range(3)]
        web.cookies.clear()
        expired = token("ae-doctor", now=datetime.now(UTC) - timedelta(hours=3))
        colleague = signed_in(web, expired).get("/record")
    named = [
        (e["action"], e["user_id"], e["nhs_number"]) for e in stream(store.engine)
        if e["action"] in ("transfer-send", "form-refused")
    ]  # fmt: skip
    assert starts == [403] * 4 and forged == [403] * 3
    assert named == [("transfer-send", "u-gp", NHS)] * 4 + [("form-refused", "u-gp", NHS)] * 3
    assert colleague.status_code == 303 and colleague.headers["location"] == "/"


@pytest.mark.parametrize(
    "elsewhere",
    [
        "//evil.example/", "/record/\\\\evil.example", "https://evil.example/record/",
        "/record/../../\\evil.example", "/inbox@evil.example", "/record/%0d%0aSet-Cookie:x=1",
    ],
)  # fmt: skip
def test_the_notice_leads_on_only_to_a_page_of_this_site(
    web: TestClient, token: Token, elsewhere: str
) -> None:
    signed_in(web, token("gp"))
    moved = web.post(
        "/acknowledge", data={"csrf_token": csrf(web, "/record"), "next_page": elsewhere}
    )
    to = moved.headers["location"]
    assert to.startswith("/") and not to.startswith("//") and "\\" not in to[:3], to
    assert "\r" not in to and "\n" not in to, to


def test_redirects_and_errors_carry_the_security_headers(web: TestClient) -> None:
    for answer in (
        web.get("/record"), web.get("/"), web.get("/fhir/Patient"), web.post("/session", data={}),
    ):  # fmt: skip
        for header in ("cache-control", "x-frame-options", "content-security-policy",
                       "referrer-policy"):  # fmt: skip
            assert header in answer.headers, (answer.url, header)


def test_a_token_in_the_query_string_is_ignored(web: TestClient, token: Token) -> None:
    """Query strings end up in logs and Referer headers: a token is never taken from one."""
    t = token("gp")
    search = f"/fhir/Patient?access_token={t}&identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}"
    assert web.get(search).status_code == 401
    assert web.get(f"/record?token={t}").status_code == 303


def test_a_sign_in_posted_as_text_plain_is_refused(web: TestClient, token: Token) -> None:
    """A cross-site form may post text/plain without a preflight."""
    posted = web.post(
        "/session", content=f"csrf_token={csrf(web)}&token={token('gp')}",
        headers={"content-type": "text/plain"},
    )  # fmt: skip
    assert posted.status_code != 303


def test_the_session_cookie_does_not_authorise_an_api_call(web: TestClient, token: Token) -> None:
    signed_in(web, token("gp"))
    claimed = web.post("/access/relationship", json={"patient": NHS, "reason": "cookie only"})
    assert claimed.status_code == 401
    assert web.post("/transfers/x/acknowledge").status_code == 401


def test_jwt_mode_offers_no_personas(store: Store) -> None:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = replace(
        store.settings, auth_mode="jwt", jwt_issuer="https://idp", jwt_public_key=pem
    )
    app = create_app(settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        page = web.get("/").text
        assert 'name="persona"' not in page and "Demonstration only" not in page
        assert (
            web.post("/session", data={"persona": "gp", "csrf_token": csrf(web)}).status_code == 401
        )


@pytest.mark.parametrize("path", ["/record", f"/record/{NHS}"])
def test_a_page_under_a_token_purpose_with_a_lone_surrogate_is_written(
    web: TestClient, token: Token, path: str
) -> None:
    """The banner shows the purpose: one UTF-8 cannot encode failed every signed-in page."""
    web.cookies.set(SESSION_COOKIE, token("gp", purpose="TREAT\ud800"))
    assert web.get(path).status_code < 500


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/record/{NHS}/transfer", "GET, HEAD, POST"),
        (f"/record/{NHS}", "GET, HEAD"),
    ],
)
def test_a_405_names_every_method_the_page_answers(
    web: TestClient, path: str, expected: str
) -> None:
    """A page answered by two routes (the form's GET, its POST) names both: Starlette names
    the first only, telling a client its POST is not allowed."""
    response = web.request("PUT", path)
    assert response.status_code == 405
    assert response.headers["Allow"] == expected
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/signout", 405), ("GET", "/session", 405), ("GET", f"/record/{NHS}/break-glass", 405),
     ("GET", f"/record/{NHS}/relationship", 405), ("GET", "/ig/chain/verify", 405),
     ("PUT", "/ig", 405), ("GET", "/nope", 404), ("GET", f"/record/{NHS}/y/z", 404),
     ("POST", "/inbox/x/y/z", 404), ("GET", "/ig/nope", 404)],
)  # fmt: skip
def test_a_page_path_asked_with_the_wrong_method_or_no_such_page_answers_a_page(
    web: TestClient, token: Token, method: str, path: str, status: int
) -> None:
    """The URL a refused break-glass form leaves in the address bar, /signout typed, a
    mistyped address: a path under none of the API's first segments answers the plain error
    page, never an OperationOutcome; a 405 still says what is allowed."""
    web.cookies.set(SESSION_COOKIE, token("gp"))
    r = web.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html"), r.text
    assert "OperationOutcome" not in r.text and "<h1>" in r.text
    if status == 405:
        assert r.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/access/explain", 405), ("GET", "/access/break-glass", 405),
     ("PUT", "/transfers", 405), ("GET", "/access/nope", 404), ("GET", "/transfers/x/y", 404),
     ("GET", "/healthz/x", 404), ("POST", "/healthz", 405), ("DELETE", "/fhir/Patient", 405)],
)  # fmt: skip
def test_an_api_path_asked_with_the_wrong_method_or_no_such_route_answers_json(
    web: TestClient, token: Token, method: str, path: str, status: int
) -> None:
    web.cookies.set(SESSION_COOKIE, token("gp"))
    r = web.request(method, path)
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"
    if status == 405:
        assert r.headers["Allow"]


def test_a_page_whose_audit_write_fails_answers_a_page_disclosing_nothing(
    web: TestClient, token: Token, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503, nothing of the record shown, as a plain page; the API's is an OperationOutcome."""
    acknowledged(signed_in(web, token("gp")))

    def broken(*args: object) -> object:
        raise AuditUnavailable("the audit entry could not be written: disk full")

    monkeypatch.setattr("engine.api.records.disclose", broken)
    failed = web.get(f"/record/{NHS}")
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith("text/html"), failed.text
    assert "audit trail is unavailable" in failed.text and "disk full" not in failed.text
    assert "SMITH" not in failed.text.upper() and NHS not in failed.text
    api = web.get(f"/fhir/Patient/{PATIENT}/$everything", headers=auth(token("gp")))
    assert api.status_code == 503 and api.json()["resourceType"] == "OperationOutcome"


def test_a_permitted_view_with_nothing_to_show_is_the_record_not_a_refusal(
    web: TestClient, store: Store, token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person dissented, so another practice sees only its own items, and it holds none:
    the page said 'You cannot see this record' (404), without the withheld-information notice
    or the directive's author and date, and offered break-glass, which would set the
    objection aside. It is the record, empty, with both."""
    at = datetime.now(UTC) - timedelta(days=30)
    dissent = ConsentDirective(kind="dissent", recorded=at, author="Dr Dissent, Riverside",
                               start=at)  # fmt: skip
    gathered = records.gather_facts

    def with_dissent(*args: Any, **kw: Any) -> Any:
        facts = gathered(*args, **kw)
        return replace(facts, directives=(*facts.directives, dissent)) if facts.person_id else facts

    monkeypatch.setattr(records, "gather_facts", with_dissent)
    page = acknowledged(signed_in(web, token("other-gp"))).get(f"/record/{NHS}")
    assert page.status_code == 200 and "You cannot see this record" not in page.text
    assert NOTICE in page.text and "Dr Dissent, Riverside" in page.text
    assert 'id="break-glass"' not in page.text
    assert audit_actions(store)[-1] == ("everything", "permit")
