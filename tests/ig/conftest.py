"""The IG console over the API tests' small store, with an IG officer's token."""

from __future__ import annotations

import pytest

from tests.api.conftest import Token, api_settings, client, store, token
from tests.web.conftest import web

__all__ = ["api_settings", "client", "store", "token", "web"]
IG_ROLE = "S8001:G8002:R8012"


@pytest.fixture
def ig_token(token: Token) -> str:
    return token("gp", user_id="u-ig", name="Synthetic IG officer", role_code=IG_ROLE)
