"""The IG console over the API tests' small store, with an IG officer's token."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.api.deps import SESSION_COOKIE
from tests.api.conftest import Token, api_settings, client, loaded, store, token
from tests.web.conftest import web
from tests.web.test_pages import acknowledged

__all__ = ["api_settings", "client", "loaded", "store", "token", "web"]
IG_ROLE = "S8001:G8002:R8012"


@pytest.fixture
def ig_token(token: Token) -> str:
    return token("gp", user_id="u-ig", name="Synthetic IG officer", role_code=IG_ROLE)


def officer(web: TestClient, token: str) -> TestClient:
    """Signed in with ``token`` and past the confidentiality notice, which the console shows
    an officer first, as the record pages do."""
    web.cookies.set(SESSION_COOKIE, token)
    return acknowledged(web)
