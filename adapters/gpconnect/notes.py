"""Warnings and blocking problems found while converting one record, each said once.

A repair (a UK local time given a UTC offset, an element R4 does not define dropped) is a
warning: the resource is still stored and the run summary counts it. A problem that cannot be
repaired safely (an unknown modifier extension) blocks the record: it goes to quarantine.
"""

from __future__ import annotations

from adapters.base import Issue


class Notes:
    def __init__(self) -> None:
        self._warnings: dict[tuple[str | None, str], None] = {}
        self._problems: dict[tuple[str | None, str], None] = {}

    def warn(self, field: str | None, reason: str) -> None:
        self._warnings.setdefault((field, reason), None)

    def block(self, field: str | None, reason: str) -> None:
        self._problems.setdefault((field, reason), None)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(Issue(f, r) for f, r in self._warnings)

    @property
    def problems(self) -> tuple[Issue, ...]:
        return tuple(Issue(f, r) for f, r in self._problems)
