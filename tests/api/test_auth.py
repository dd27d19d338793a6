"""``jwt`` mode: tokens from an identity provider, checked against a PEM key or a JWKS, with
the algorithm pinned, and issuer, audience and expiry required."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.api import auth
from engine.api.auth import TokenRefused, user_from_claims, verifier_for
from engine.settings import Settings, SettingsError

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


def settings(**over: str) -> Settings:
    values = {"auth_mode": "jwt", "jwt_issuer": ISSUER, "jwt_public_key": PUBLIC_PEM}
    return Settings(**(values | over))  # type: ignore[arg-type]


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
    ],
    ids=["other-key", "other-alg", "audience", "issuer", "expired", "no-exp", "none", "no-role"],
)
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


def _serve(monkeypatch: pytest.MonkeyPatch, jwks: dict[str, Any]) -> list[str]:
    """Serve ``jwks`` (as it stands at each fetch) to the verifier; the URLs fetched."""
    fetched: list[str] = []

    def fake_get(url: str, timeout: float) -> httpx.Response:
        fetched.append(url)
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
    assert verifier.verify(new).user_id == "u-1"
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
        clock = SimpleNamespace(time=lambda s=seconds: now.timestamp() + s)
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
