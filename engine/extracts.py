"""Which extract of each source was taken in last, so an older one cannot roll the record back.

A source that stamps its extracts (a SystmOne manifest's ``DateExtractTo``) has the stamp kept
in its run's summary; an extract of the same practice that runs to an earlier date than the
newest completed run is refused, unless the operator says it is meant (restoring after a bad
extract). Re-running the same extract is allowed: it changes nothing.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, select

from adapters.base import ExtractError, ExtractStamp
from engine.models import IngestRun

RUNS = cast(Table, IngestRun.__table__)


class OlderExtract(ExtractError):
    """The extract runs to an earlier date than one already taken in from the same source."""


def newest(conn: Connection, source: str) -> str | None:
    """The latest date a completed run of ``source`` ran to, if any stamped one."""
    found = conn.execute(
        select(RUNS.c.summary).where(
            RUNS.c.status == "completed",
            RUNS.c.summary["extract"]["source"].as_string() == source,
        )
    ).scalars()
    return max((str(s["extract"]["runs_to"]) for s in found), default=None)


def check(conn: Connection, stamp: ExtractStamp, allow_older: bool) -> None:
    """Refuse an extract older than the newest taken in from its source."""
    latest = newest(conn, stamp.source)
    if latest is not None and stamp.runs_to < latest and not allow_older:
        raise OlderExtract(
            f"{stamp.source}: this extract runs to {stamp.runs_to}, but one running to "
            f"{latest} has been taken in; loading it would roll the record back (to load it "
            "anyway, for example to restore after a bad extract, pass --allow-older)"
        )
