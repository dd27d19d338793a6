"""The web pages are tested over the same store and tokens as the API, through one client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from tests.api.conftest import Store, api_settings, loaded, store, token

__all__ = ["api_settings", "loaded", "store", "token"]


@pytest.fixture
def web(store: Store) -> Iterator[TestClient]:
    """A browser's view of the app: HTTPS (the session cookie is Secure), redirects not followed."""
    app = create_app(store.settings, store.engine)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        yield c
