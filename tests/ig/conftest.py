"""The IG console over the API tests' small store, with an IG officer's token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from tests.api.conftest import Store, Token, api_settings, client, store, token

__all__ = ["api_settings", "client", "store", "token"]
IG_ROLE = "S8001:G8002:R8012"


@pytest.fixture
def ig_token(token: Token) -> str:
    return token("gp", user_id="u-ig", name="Synthetic IG officer", role_code=IG_ROLE)


@pytest.fixture
def web(store: Store) -> Iterator[TestClient]:
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        yield c
