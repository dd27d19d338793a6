"""The ASGI app uvicorn serves (``scr serve``): settings from the environment, read once."""

from __future__ import annotations

from engine.api.app import create_app, serving
from engine.settings import Settings

app = serving(create_app(Settings.load()))
