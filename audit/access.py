"""The rule the read path follows: the entry is written, durably, before anything leaves.

``disclose`` is the last step of every access, granted or refused: it appends the entry and
only then hands back what may be returned. If the append fails, it raises
:class:`~audit.writer.AuditUnavailable` (the API answers 503) and the caller has nothing to
return, because the only reference it was given to the released data is this return value.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from audit.chain import Sealed
from audit.entry import AuditEntry
from audit.writer import AuditUnavailable

T = TypeVar("T")


class Appender(Protocol):
    """Anything that appends durably: :class:`audit.writer.Writer` in the server."""

    def append(self, entry: AuditEntry) -> Sealed: ...


def disclose(appender: Appender, entry: AuditEntry, released: T) -> T:
    """Append ``entry``, then return ``released``; a failed append releases nothing."""
    try:
        appender.append(entry)
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(f"the audit entry could not be written: {exc}") from exc
    return released
