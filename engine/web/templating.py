"""The one Jinja2 environment every page is rendered with, and what every page may call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

from adapters.values import UK as _UK
from engine.transfer.form import written

#: How many characters of an ISO date a date given to the year or month is written with.
_WRITTEN = {"year": 4, "month": 7}

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def printed_at() -> str:
    """When a page was made, for its printed copy: paper outlives the screen it came from."""
    return datetime.now(_UK).strftime("%d %b %Y %H:%M %Z")


def uk_date(value: str | datetime, precision: str = "day") -> str:
    """The day a dateTime falls on as the people reading it keep the day: stored in UTC, local
    midnight in summer (``2018-08-15T00:00:00+01:00``, how EMIS sends a date) is 23:00 the day
    before. A date, or a time without an offset, is shown as written; a time read from a date
    given to the ``year`` or ``month`` is shown to that precision, not as its first day."""
    if isinstance(value, datetime):
        day = (value.astimezone(_UK) if value.tzinfo else value).date()
        return day.isoformat()[: _WRITTEN.get(precision, 10)]
    if len(value) <= 10:
        return value
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value[:10]
    return when.astimezone(_UK).date().isoformat() if when.tzinfo else value[:10]


def uk_time(value: str | datetime) -> str:
    """A stored instant (UTC; one without an offset is taken as UTC) to the minute, as the
    clocks on the ward and in the care home showed it: in summer UTC is an hour behind. In
    the hour the clocks go back, which shows twice, the clock's name says which."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return written(when if when.tzinfo else when.replace(tzinfo=UTC))


templates.env.globals["printed_at"] = printed_at
templates.env.filters["uk_date"] = uk_date
templates.env.filters["uk_time"] = uk_time
