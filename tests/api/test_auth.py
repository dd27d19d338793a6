"""``jwt`` mode: tokens from an identity provider, checked against a PEM key or a JWKS, with
the algorithm pinned, and issuer, audience and expiry required."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.synth.personas import PERSONAS
from audit.query import stream
from engine.api import auth, create_app
from engine.api.auth import TokenRefused, user_from_claims, verifier_for
from engine.settings import Settings, SettingsError
from tests.api.conftest import NHS, Store, Token
from tests.api.conftest import auth as bearer

ISSUER = "https://idp.example/cis2"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def claims(**over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "iss": ISSUER, "aud": "scr", "sub": "u-1", "name": "Dr Synthetic",
        "iat": now, "exp": now + timedelta(minutes=10),
        "nhsid_nrbac_roles": [
            {"person_roleid": "r1", "org_code": "Y00001", "role_code": "S8000:G8000:R8000"},
            {"person_roleid": "r2", "org_code": "R9Z", "role_code": "S8000:G8000:R8001"},
        ],
        "selected_roleid": "r2", "purpose_of_use": "TREAT", "ig_training_date": "2026-06-01",
    } | over  # fmt: skip


def settings(**over: Any) -> Settings:
    values = {"auth_mode": "jwt", "jwt_issuer": ISSUER, "jwt_public_key": PUBLIC_PEM}
    return Settings(**(values | over))


#: Two hours ahead: past the leeway on every time claim.
LATER = datetime.now(UTC) + timedelta(hours=2)


def test_a_token_signed_by_the_configured_key_gives_the_selected_role() -> None:
    user = verifier_for(settings()).verify(jwt.encode(claims(), KEY, algorithm="RS256"))
    assert (user.user_id, user.org, user.role_code) == ("u-1", "R9Z", "S8000:G8000:R8001")
    assert user.ig_training is not None and user.ig_training.isoformat() == "2026-06-01"


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(), OTHER, algorithm="RS256"),
        jwt.encode(claims(), KEY, algorithm="RS512"),
        jwt.encode(claims(aud="someone-else"), KEY, algorithm="RS256"),
        jwt.encode(claims(iss="https://evil.example"), KEY, algorithm="RS256"),
        jwt.encode(claims(exp=datetime.now(UTC) - timedelta(minutes=5)), KEY, algorithm="RS256"),
        jwt.encode({k: v for k, v in claims().items() if k != "exp"}, KEY, algorithm="RS256"),
        jwt.encode(claims(), None, algorithm="none"),
        jwt.encode(claims(selected_roleid="r9"), KEY, algorithm="RS256"),
        jwt.encode(claims(aud=["other"]), KEY, algorithm="RS256"),
        jwt.encode({k: v for k, v in claims().items() if k != "iat"}, KEY, algorithm="RS256"),
        jwt.encode(claims(iat=LATER, exp=LATER + timedelta(hours=1)), KEY, algorithm="RS256"),
        jwt.encode(claims(nbf=LATER), KEY, algorithm="RS256"),
        jwt.encode(claims(sub=123), KEY, algorithm="RS256"),
        jwt.encode(claims(), KEY, algorithm="RS256", headers={"crit": ["b64"], "b64": False}),
    ],
    ids=[
        "other-key", "other-alg", "audience", "issuer", "expired", "no-exp", "none", "no-role",
        "audiences-without-us", "no-iat", "issued-later", "not-yet-valid", "sub-not-a-string",
        "crit-header",
    ],
)  # fmt: skip
def test_untrusted_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenRefused):
        verifier_for(settings()).verify(token)


def test_the_public_key_cannot_be_used_as_an_hmac_secret() -> None:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = jwt.utils.base64url_encode(json.dumps(claims(iat=0, exp=2**31)).encode())
    signature = hmac.new(PUBLIC_PEM.encode(), header + b"." + body, hashlib.sha256).digest()
    forged = b".".join([header, body, jwt.utils.base64url_encode(signature)]).decode()
    with pytest.raises(TokenRefused):
        verifier_for(settings()).verify(forged)


def test_jwks_keys_are_chosen_by_kid(monkeypatch: pytest.MonkeyPatch) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwks = {"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}

    def fake_get(url: str, timeout: float) -> httpx.Response:
        return httpx.Response(200, json=jwks, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    verifier = verifier_for(settings(jwt_public_key="", jwks_url="https://idp.example/jwks"))
    good = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(good).user_id == "u-1"
    with pytest.raises(TokenRefused, match="kid"):
        verifier.verify(jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k2"}))


EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _serve(
    monkeypatch: pytest.MonkeyPatch, jwks: dict[str, Any], gate: threading.Event | None = None
) -> list[str]:
    """Serve ``jwks`` (as it stands at each fetch) to the verifier, each answer once ``gate``
    is open; the URLs fetched."""
    fetched: list[str] = []

    def fake_get(url: str, timeout: float) -> httpx.Response:
        fetched.append(url)
        if gate is not None:
            gate.wait(5)
        return httpx.Response(200, json=jwks, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    return fetched


def test_a_token_naming_a_key_of_another_type_is_refused_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An identity provider may publish RSA and EC keys side by side: a token that says RS256
    but names the EC key's kid is refused (401, audited), where the library would raise."""
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    _serve(monkeypatch, {"keys": [rsa_jwk | {"kid": "rsa1"}, ec_jwk | {"kid": "ec1"}]})
    verifier = verifier_for(settings(jwt_public_key="", jwks_url="https://idp.example/jwks"))
    body = jwt.utils.base64url_encode(json.dumps(claims(iat=0, exp=2**31)).encode())
    for kid in ("ec1", "rsa1"):
        header = jwt.utils.base64url_encode(json.dumps({"alg": "RS256", "kid": kid}).encode())
        forged = b".".join([header, body, jwt.utils.base64url_encode(b"x" * 256)]).decode()
        with pytest.raises(TokenRefused):
            verifier.verify(forged)


def test_a_pem_key_of_another_type_than_the_algorithm_stops_start_up() -> None:
    pem = EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SettingsError, match="SCR_JWT_ALGORITHM"):
        verifier_for(settings(jwt_public_key=pem.decode()))


def test_a_rotated_key_is_fetched_once_its_kid_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The identity provider adds a key and signs with it: the JWKS is fetched again for the
    new kid (not more often than REFRESH_SECONDS), rather than refusing everyone until a
    restart."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    other = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER.public_key()))
    jwks: dict[str, Any] = {"keys": [jwk | {"kid": "k1"}]}
    fetched = _serve(monkeypatch, jwks)
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 0.0)
    verifier = verifier_for(settings(jwt_public_key="", jwks_url="https://idp.example/jwks"))
    jwks["keys"] = [*jwks["keys"], other | {"kid": "k2"}]
    new = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})
    with pytest.raises(auth.KeysStale):
        verifier.verify(new)  # the event loop's path: never a fetch
    assert len(fetched) == 1
    assert verifier.verify_blocking(new).user_id == "u-1"
    assert len(fetched) == 2
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 3600.0)
    with pytest.raises(TokenRefused, match="kid"):
        verifier.verify(jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k3"}))
    assert len(fetched) == 2  # too soon to fetch again


@pytest.mark.parametrize(
    ("over", "named"),
    [
        ({"jwt_issuer": ""}, "SCR_JWT_ISSUER"),
        ({"jwt_public_key": ""}, "SCR_JWT_PUBLIC_KEY or SCR_JWKS_URL"),
        ({"jwt_public_key": "/no/such/key.pem"}, "SCR_JWT_PUBLIC_KEY"),
    ],
)
def test_jwt_mode_without_what_it_needs_stops_start_up(over: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        verifier_for(settings(**over))


def test_only_asymmetric_algorithms_may_be_configured() -> None:
    with pytest.raises(SettingsError, match="SCR_JWT_ALGORITHM"):
        Settings.load({"SCR_JWT_ALGORITHM": "HS256"})


def test_an_audience_list_naming_us_is_accepted() -> None:
    token = jwt.encode(claims(aud=["other", "scr"]), KEY, algorithm="RS256")
    assert verifier_for(settings()).verify(token).user_id == "u-1"


@pytest.mark.parametrize("mode", ["DEV", "Dev", " dev", "jwt ", "", "none"])
def test_a_mistyped_auth_mode_stops_start_up_rather_than_pick_one(mode: str) -> None:
    with pytest.raises(SettingsError, match="SCR_AUTH_MODE"):
        Settings.load({"SCR_AUTH_MODE": mode})
    assert Settings.load({}).auth_mode == "jwt"


def test_claims_without_a_usable_role_are_refused() -> None:
    for bad in ({"nhsid_nrbac_roles": []}, {"nhsid_nrbac_roles": ["not-a-role"]}):
        with pytest.raises(TokenRefused):
            user_from_claims(claims(**bad))


def test_several_roles_need_a_selected_one_and_activities_must_be_a_list() -> None:
    with pytest.raises(TokenRefused, match="selected_roleid"):
        user_from_claims({k: v for k, v in claims().items() if k != "selected_roleid"})
    role = {"person_roleid": "r1", "org_code": "Y00001", "role_code": "S8000:G8000:R8000"}
    with pytest.raises(TokenRefused, match="activity_codes"):
        user_from_claims(
            claims(nhsid_nrbac_roles=[role | {"activity_codes": "B0264"}], selected_roleid="r1")
        )


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens the library is asked to check, in order."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_token_that_passed_is_checked_afresh_only_outside_its_window(
    monkeypatch: pytest.MonkeyPatch, decoded: list[str]
) -> None:
    """Answered from memory while every time check it passed still holds; before its issue
    time or past its expiry (each with the leeway) the library checks it again."""
    verifier = verifier_for(settings())
    now = datetime.now(UTC)
    token = jwt.encode(claims(iat=now, exp=now + timedelta(minutes=10)), KEY, algorithm="RS256")
    assert verifier.verify(token) == verifier.verify(token)
    assert len(decoded) == 1
    for seconds in (-31, 10 * 60 + 31):
        clock = SimpleNamespace(
            time=lambda s=seconds: now.timestamp() + s, monotonic=time.monotonic
        )
        monkeypatch.setattr(auth, "time", clock)
        verifier.verify(token)  # the library, on the real clock, still accepts it
    assert len(decoded) == 3


def test_a_refused_token_is_never_remembered_and_memory_is_bounded(decoded: list[str]) -> None:
    verifier = auth.Verifier([KEY.public_key()], "RS256", ISSUER, "scr", remember=2)
    refused = jwt.encode(claims(selected_roleid="r9"), KEY, algorithm="RS256")
    for _ in range(2):
        with pytest.raises(TokenRefused):
            verifier.verify(refused)
    first, second, third = (
        jwt.encode(claims(sub=f"u-{n}"), KEY, algorithm="RS256") for n in range(3)
    )
    for token in (first, second, third, third, first):
        verifier.verify(token)
    assert decoded == [refused, refused, first, second, third, first]


@pytest.mark.parametrize("sub", ["", "   "])
def test_a_token_with_an_empty_subject_is_refused(sub: str) -> None:
    """The trail would record the user as nobody."""
    with pytest.raises(TokenRefused, match="sub"):
        verifier_for(settings()).verify(jwt.encode(claims(sub=sub), KEY, algorithm="RS256"))


def test_a_jwk_published_for_encryption_or_another_algorithm_verifies_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    _serve(monkeypatch, {"keys": [
        jwk | {"kid": "sig", "use": "sig", "alg": "RS256"},
        jwk | {"kid": "enc", "use": "enc"},
        jwk | {"kid": "rs512", "alg": "RS512"},
    ]})  # fmt: skip
    verifier = verifier_for(settings(jwt_public_key="", jwks_url="https://idp.example/jwks"))
    assert verifier.verify(jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "sig"}))
    for kid in ("enc", "rs512"):
        with pytest.raises(TokenRefused, match="kid"):
            verifier.verify(jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": kid}))


def test_a_jwks_url_over_plain_http_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys fetched over http:// can be swapped by anyone on the path, who then mints tokens."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    fetched = _serve(monkeypatch, {"keys": [jwk | {"kid": "k1"}]})
    for url in ("http://idp.example/jwks", "http://127.0.0.1/jwks", "HTTP://idp.example/jwks"):
        with pytest.raises(SettingsError, match="SCR_JWKS_URL: must be an https"):
            verifier_for(settings(jwt_public_key="", jwks_url=url))
    assert fetched == []


def test_a_jwks_url_and_a_public_key_together_stop_start_up() -> None:
    """Which of the two is trusted would otherwise be a guess."""
    with pytest.raises(SettingsError, match="SCR_JWT_PUBLIC_KEY and SCR_JWKS_URL"):
        verifier_for(settings(jwks_url="https://idp.example/jwks"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The verifier's monotonic clock, moved by the test (``clock[0] += seconds``); whole
    seconds, so that moving it 299 s and then 1 s is exactly 300 s."""
    now = [1_000_000.0]
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=time.time, monotonic=lambda: now[0]))
    return now


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid}


JWKS_SETTINGS = {"jwt_public_key": "", "jwks_url": "https://idp.example/jwks"}


def test_a_key_withdrawn_from_the_jwks_is_not_trusted_once_the_set_is_past_its_max_age(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    """Past its age the set is fetched again in the background; the token is checked with the
    keys held meanwhile, and the new set, once it lands, replaces the old wholly and forgets
    every token it had passed."""
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1"), _jwk(OTHER, "k2")]}
    answer = threading.Event()
    answer.set()
    fetched = _serve(monkeypatch, jwks, answer)
    verifier = verifier_for(settings(**JWKS_SETTINGS, jwks_max_age_seconds=300))
    withdrawn = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(withdrawn).user_id == "u-1"
    jwks["keys"] = [_jwk(OTHER, "k2")]
    clock[0] += 299
    assert verifier.verify(withdrawn).user_id == "u-1"  # within the max age: no fetch
    assert len(fetched) == 1
    clock[0] += 1
    answer.clear()  # the provider answers only once the token has been checked
    assert verifier.verify(withdrawn).user_id == "u-1"  # starts the fetch, waits for nothing
    answer.set()
    verifier.refreshed().result(5)
    assert len(fetched) == 2
    with pytest.raises(TokenRefused, match="kid 'k1'"):
        verifier.verify(withdrawn)
    kept = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})
    assert verifier.verify(kept).user_id == "u-1"


def test_a_failed_refresh_keeps_the_keys_it_had_and_logs_it(
    monkeypatch: pytest.MonkeyPatch, clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """An identity provider that is down does not sign everyone out; the trade-off (a
    withdrawn key trusted until the provider answers again) is in the README."""
    _serve(monkeypatch, {"keys": [_jwk(KEY, "k1")]})
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    tries: list[str] = []

    def down(url: str, timeout: float) -> httpx.Response:
        tries.append(url)
        raise httpx.ConnectError("unreachable")

    monkeypatch.setattr(httpx, "get", down)
    clock[0] += 300
    token = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(token).user_id == "u-1"
    verifier.refreshed().result(5)
    assert verifier.verify(token).user_id == "u-1"  # not tried again before REFRESH_SECONDS
    assert len(tries) == 1
    assert "JWKS" in caplog.text and "kept" in caplog.text


def test_callers_waiting_for_new_keys_share_one_fetch(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1")]}
    fetched = _serve(monkeypatch, jwks)
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    serve, release = httpx.get, threading.Event()

    def slow(url: str, timeout: float) -> httpx.Response:
        release.wait(5)
        return serve(url, timeout)

    monkeypatch.setattr(httpx, "get", slow)
    jwks["keys"] = [*jwks["keys"], _jwk(OTHER, "k2")]
    clock[0] += auth.REFRESH_SECONDS
    rotated = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})
    users: list[str] = []
    waiters = [
        threading.Thread(target=lambda: users.append(verifier.verify_blocking(rotated).user_id))
        for _ in range(4)
    ]
    for waiter in waiters:
        waiter.start()
    release.set()
    for waiter in waiters:
        waiter.join(5)
    assert users == ["u-1"] * 4
    assert len(fetched) == 2  # at start-up, then once for all four


def test_a_caller_that_read_the_keys_just_before_new_ones_came_looks_again(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    """A caller reads the keys, a fetch brings the new kid, then the caller finds its kid
    missing: it must look again (KeysStale), not be refused because no fetch is due now
    (one of four waiters was refused this way under load)."""
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1")]}
    _serve(monkeypatch, jwks)
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    old_keys, old_generation = verifier._keys, verifier._generation
    jwks["keys"] = [*jwks["keys"], _jwk(OTHER, "k2")]
    clock[0] += auth.REFRESH_SECONDS
    verifier.refreshed().result(5)
    rotated = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})
    with pytest.raises(auth.KeysStale):
        verifier._key(rotated, old_keys, old_generation)
    assert verifier.verify_blocking(rotated).user_id == "u-1"


def test_new_keys_are_fetched_off_the_event_loop_while_other_requests_are_answered(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Anyone can send a token naming an unknown kid: the fetch it causes (up to 10 s against
    a slow identity provider) must not stop the worker answering everyone else. Deterministic:
    the fetch cannot finish until a signed-in user's request has been answered."""
    jwks = {"keys": [_jwk(KEY, "k1")]}
    fetched = _serve(monkeypatch, jwks)
    serve, entered, release = httpx.get, threading.Event(), threading.Event()
    on_loop: list[bool] = []

    def slow(url: str, timeout: float) -> httpx.Response:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        entered.set()
        release.wait(5)
        return serve(url, timeout)

    monkeypatch.setattr(auth, "REFRESH_SECONDS", 0.0)
    app = create_app(
        Settings(database_url=db_url, data_dir=tmp_path, jwt_issuer=ISSUER, **JWKS_SETTINGS),
        engine,
    )
    monkeypatch.setattr(httpx, "get", slow)
    unknown = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "nope"})
    known = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})

    async def run() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:

            async def ask(token: str) -> int:
                headers = {"Authorization": f"Bearer {token}"}
                search = "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"
                return (await client.get(search, headers=headers)).status_code

            attacker = asyncio.create_task(ask(unknown))
            await asyncio.to_thread(entered.wait, 5)
            answered = await ask(known)
            release.set()
            return await attacker, answered

    refused, answered = asyncio.run(run())
    assert (refused, answered) == (401, 200)
    assert on_loop == [False] and len(fetched) == 2  # at start-up, then off the loop


def _held(monkeypatch: pytest.MonkeyPatch, jwks: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """Fetches that each wait for ``release`` before serving ``jwks`` as it then stands;
    ``entered`` is set as one starts, and the names of the threads they ran on are kept."""
    entered, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def held(url: str, timeout: float) -> httpx.Response:
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(30)  # a backstop against hanging only: every test releases it
        return httpx.Response(200, json=jwks, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", held)
    return entered, release, threads


def test_tokens_are_checked_with_the_keys_held_while_a_refresh_hangs(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    """Past its age the set is refreshed in the background: a fetch that hangs holds its own
    thread, never a request. Every call below returns while the fetch is still held."""
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1")]}
    _serve(monkeypatch, jwks)
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    remembered = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(remembered).user_id == "u-1"
    entered, release, threads = _held(monkeypatch, jwks)
    clock[0] += 301
    try:
        assert verifier.verify(remembered).user_id == "u-1"
        assert entered.wait(5)
        fresh = jwt.encode(claims(sub="u-2"), KEY, algorithm="RS256", headers={"kid": "k1"})
        assert verifier.verify_blocking(fresh).user_id == "u-2"
        assert asyncio.run(verifier.averify(remembered)).user_id == "u-1"
        assert not verifier.refreshed().done()  # the fetch is still held
    finally:
        release.set()
    verifier.refreshed().result(5)
    assert threads == ["scr-jwks"]


def test_an_unknown_kid_waits_only_until_the_fetch_deadline_and_a_late_result_is_ignored(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    """A fetch that hangs counts as failed after FETCH_SECONDS: its waiters are refused (401)
    rather than held, and the keys it brings back late do not replace newer ones."""
    newer: dict[str, Any] = {"keys": [_jwk(KEY, "k1")]}
    _serve(monkeypatch, newer)
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(auth, "FETCH_SECONDS", 0.01)  # the waiters' own wait, made short
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    entered, release, _ = _held(monkeypatch, {"keys": [_jwk(OTHER, "k2")]})
    rotated = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})
    try:
        with pytest.raises(TokenRefused):
            verifier.verify_blocking(rotated)
        with pytest.raises(TokenRefused):
            asyncio.run(verifier.averify(rotated))
        assert entered.is_set()
        (late,) = [t for t in threading.enumerate() if t.name == "scr-jwks"]
        hanging = verifier.refreshed()
        clock[0] += 1  # past the fetch's deadline: abandoned, and a new fetch may start
        _serve(monkeypatch, newer)
        verifier.refreshed().result(5)
        assert hanging.done()
    finally:
        release.set()
    late.join(5)  # the abandoned fetch brings back its keys, and they are ignored
    assert not late.is_alive()
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 3600.0)
    known = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(known).user_id == "u-1"
    with pytest.raises(TokenRefused, match="kid 'k2'"):
        verifier.verify(rotated)


def test_a_cancelled_waiter_does_not_cancel_the_fetch_others_wait_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1")]}
    _serve(monkeypatch, jwks)
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 0.0)
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    entered, release, _ = _held(monkeypatch, jwks)
    jwks["keys"] = [*jwks["keys"], _jwk(OTHER, "k2")]
    rotated = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "k2"})

    async def scenario() -> str:
        first = asyncio.create_task(verifier.averify(rotated))
        await asyncio.sleep(0)  # the first waiter is waiting, perhaps before the fetch starts
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        shared = verifier.refreshed()
        assert not shared.cancel() and not shared.cancelled()
        second = asyncio.create_task(verifier.averify(rotated))
        await asyncio.to_thread(entered.wait, 5)
        release.set()
        return (await second).user_id

    try:
        assert asyncio.run(scenario()) == "u-1"
    finally:
        release.set()


def test_a_verdict_reached_with_keys_replaced_meanwhile_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refresh that withdraws the token's key lands while the token is being checked with
    the old set: the verdict stands for that request, but is not remembered under the new."""
    jwks: dict[str, Any] = {"keys": [_jwk(KEY, "k1"), _jwk(OTHER, "k2")]}
    _serve(monkeypatch, jwks)
    verifier = verifier_for(settings(**JWKS_SETTINGS))
    withdrawn = jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"})
    real = auth.user_from_claims

    def refresh_lands_meanwhile(found: Any) -> Any:
        jwks["keys"] = [_jwk(OTHER, "k2")]
        monkeypatch.setattr(auth, "REFRESH_SECONDS", 0.0)
        verifier.refreshed().result(5)
        return real(found)

    monkeypatch.setattr(auth, "user_from_claims", refresh_lands_meanwhile)
    assert verifier.verify(withdrawn).user_id == "u-1"
    monkeypatch.setattr(auth, "user_from_claims", real)
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 3600.0)
    with pytest.raises(TokenRefused, match="kid 'k1'"):
        verifier.verify(withdrawn)


def test_a_provider_that_never_answers_holds_one_fetch_thread_at_most(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    """Abandoned fetches are not replaced while their thread still hangs: without this, one
    thread more a minute, for ever."""
    never = threading.Event()
    monkeypatch.setattr(auth, "REFRESH_SECONDS", 1.0)
    _serve(monkeypatch, {"keys": [_jwk(KEY, "k1")]})
    verifier = verifier_for(settings(**JWKS_SETTINGS))

    def hang(url: str, timeout: float) -> httpx.Response:
        never.wait(30)
        raise httpx.ConnectError("the provider went away")

    monkeypatch.setattr(httpx, "get", hang)
    unknown = jwt.encode(claims(), OTHER, algorithm="RS256", headers={"kid": "nope"})
    try:
        for _ in range(5):
            clock[0] += auth.FETCH_SECONDS + 1  # the last fetch is abandoned; another is due
            verifier.refreshed()
            with pytest.raises(TokenRefused):
                verifier.verify(unknown)
        hanging = [t for t in threading.enumerate() if t.name == "scr-jwks"]
        assert len(hanging) == 1
    finally:
        never.set()
    hanging[0].join(5)


def test_a_provider_that_never_answers_stops_start_up_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx's timeout is per read: a provider answering a byte at a time held start-up."""
    never = threading.Event()

    def hang(url: str, timeout: float) -> httpx.Response:
        never.wait(30)
        raise httpx.ConnectError("the provider went away")

    monkeypatch.setattr(httpx, "get", hang)
    monkeypatch.setattr(auth, "FETCH_SECONDS", 0.05)
    try:
        with pytest.raises(SettingsError, match="did not answer"):
            verifier_for(settings(**JWKS_SETTINGS))
    finally:
        never.set()


#: Characters no claim the trail keeps may carry: NUL and other controls, a lone surrogate.
NOT_PLAIN = ["\x00", "\x1b", "\n", "\x7f", "\x85", "\ud800", "\udfff"]


@pytest.mark.parametrize("bad", NOT_PLAIN)
def test_a_kept_claim_with_a_control_or_lone_surrogate_is_refused(bad: str) -> None:
    role = {"person_roleid": "r1", "org_code": "Y00001", "role_code": "S8000:G8000:R8000"}
    for over, named in (
        ({"sub": f"u-1{bad}"}, "sub"),
        ({"name": f"Dr{bad}"}, "name"),
        ({"nhsid_nrbac_roles": [role | {"org_code": f"Y{bad}"}]}, "org_code"),
        ({"nhsid_nrbac_roles": [role | {"role_code": f"S8000:G8000:R{bad}"}]}, "role_code"),
        ({"nhsid_nrbac_roles": [role | {"activity_codes": [f"B{bad}"]}]}, "activity_codes"),
    ):
        with pytest.raises(TokenRefused, match=named):
            user_from_claims(claims(**over, selected_roleid="r1"))
    # The purpose is not refused: it is decided as an unknown one (test_access.py), the
    # character that cannot be shown kept as U+FFFD.
    exp = int(LATER.timestamp())
    assert user_from_claims(claims(purpose_of_use=f"T{bad}", exp=exp)).purpose == "T\ufffd"
    assert user_from_claims(claims(name="Renée Ōkubo ✓ 🚑", exp=exp)).name == "Renée Ōkubo ✓ 🚑"


def test_a_token_with_a_lone_surrogate_in_its_name_is_refused_and_audited(
    client: TestClient, store: Store, token: Token
) -> None:
    response = client.get("/fhir/Patient", headers=bearer(token("gp", name="Dr \ud800")))
    assert response.status_code == 401
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["rules"]) == (
        "token-refused",
        ["auth.token-invalid", "auth.claims"],
    )


READ = f"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}"


#: Not CIS2 ``Sxxxx:Gxxxx:Rxxxx`` triples: a job role alone, one after junk, no role at all.
NOT_TRIPLES = ["R8000", "junk:R8000", "nonsense", "S8000:G8000:R8000:R8000", "s8000:g8000:r8000"]


@pytest.mark.parametrize("role_code", NOT_TRIPLES)
def test_a_role_code_that_is_not_a_cis2_triple_is_refused(
    api_settings: Settings, role_code: str
) -> None:
    role = {"person_roleid": "r1", "org_code": "Y00001", "role_code": role_code}
    with pytest.raises(TokenRefused, match="role_code"):
        user_from_claims(claims(nhsid_nrbac_roles=[role], selected_roleid="r1"))
    with pytest.raises(ValueError, match="triple"):  # nor does `scr token` mint one
        auth.mint(api_settings, user_id="u", name="n", role_code=role_code, org="Y00001")


@pytest.mark.parametrize("role_code", NOT_TRIPLES[:3])
def test_a_token_whose_role_code_is_not_a_triple_is_refused_401_and_audited(
    client: TestClient, store: Store, token: Token, role_code: str
) -> None:
    """``junk:R8000`` would otherwise read as a clinician (the job role is what follows the
    last colon), and ``nonsense`` as a signed-in user with no profile, answered 404."""
    body = jwt.decode(token(), options={"verify_signature": False})
    role = {"person_roleid": "r1", "org_code": "Y00001", "role_code": role_code}
    body |= {"nhsid_nrbac_roles": [role], "selected_roleid": "r1"}
    forged = jwt.encode(body, auth.dev_key(store.settings), algorithm=auth.DEV_ALGORITHM)
    response = client.get(READ, headers=bearer(forged))
    assert response.status_code == 401
    last = list(stream(store.engine))[-1]
    assert (last["action"], last["outcome"]) == ("token-refused", "deny")
    assert "auth.claims" in last["rules"]


def test_every_demo_persona_holds_a_cis2_triple() -> None:
    assert all(auth.ROLE_CODE.fullmatch(p.role_code) for p in PERSONAS)


def _signed_out(client: TestClient, tok: str) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    session = svc.verifier.verify_blocking(tok).session
    svc.signouts.sign_out(session, datetime.now(UTC) + timedelta(hours=1))


def test_a_signed_out_token_with_a_bad_purpose_header_is_refused_and_audited(
    store: Store, token: Token
) -> None:
    """The sign-out is judged before anything else the request asks: a replay with a
    malformed purpose header is still refused as signed out, and in the trail."""
    with TestClient(create_app(store.settings, store.engine)) as client:
        gp = token("gp")
        _signed_out(client, gp)
        before = len(list(stream(store.engine)))
        answer = client.get(READ, headers={**bearer(gp), "X-Purpose-Of-Use": "TREAT  TWICE"})
        entries = list(stream(store.engine))[before:]
    assert answer.status_code == 401, answer.text
    assert [e["rules"] for e in entries] == [["auth.signed-out"]]


def test_signed_out_replays_are_named_and_throttled(store: Store, token: Token) -> None:
    """A signed-out token's refusal names whose session it was, and is still counted per
    client as any refused token is: replays cannot write entries without bound."""
    settings = replace(store.settings, refusal_limit=3, refusal_window_seconds=3600)
    with TestClient(create_app(settings, store.engine)) as client:
        gp = token("gp")
        _signed_out(client, gp)
        answers = [client.get(READ, headers=bearer(gp)).status_code for _ in range(6)]
    assert answers[0] == 401 and 429 in answers
    refused = [e for e in stream(store.engine) if e["rules"] == ["auth.signed-out"]]
    assert refused and all(e["user_id"] for e in refused) and len(refused) < 6
