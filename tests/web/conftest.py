"""The web pages are tested over the same store and tokens as the API."""

from tests.api.conftest import api_settings, store, token

__all__ = ["api_settings", "store", "token"]
