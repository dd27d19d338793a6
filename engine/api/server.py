"""The ASGI app uvicorn serves (``scr serve``): settings from the environment, read once."""

from __future__ import annotations

from engine.api.app import create_app
from engine.settings import Settings

app = create_app(Settings.load())
