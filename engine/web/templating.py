"""The one Jinja2 environment every page is rendered with, and what every page may call."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

#: Printed pages carry the time as the people reading them keep it.
_UK = ZoneInfo("Europe/London")

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def printed_at() -> str:
    """When a page was made, for its printed copy: paper outlives the screen it came from."""
    return datetime.now(_UK).strftime("%d %b %Y %H:%M %Z")


templates.env.globals["printed_at"] = printed_at
