"""CSV tables written row by row, so a large population streams to disk in constant memory.

Each source style opens all its files at once and appends a person's rows as the person is
generated; nothing is collected per file. The writer checks every row's columns against the
header, so a typo in a generator fails loudly instead of writing a silently blank column.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

Row = Mapping[str, str]


class TableWriter:
    """One CSV file: fixed header, encoding and dialect; counts the rows written."""

    def __init__(
        self,
        stack: ExitStack,
        path: Path,
        columns: Sequence[str],
        *,
        encoding: str,
        quote_all: bool = False,
        line_end: str = "\r\n",
    ) -> None:
        self.columns = tuple(columns)
        self._known = frozenset(self.columns)
        handle = stack.enter_context(path.open("w", encoding=encoding, newline=""))
        if quote_all:
            self._writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator=line_end)
        else:
            self._writer = csv.writer(handle, lineterminator=line_end)
        self._writer.writerow(self.columns)
        self.rows = 0

    def write(self, row: Row) -> None:
        unknown = row.keys() - self._known
        if unknown:
            raise KeyError(f"columns not in the header: {', '.join(sorted(unknown))}")
        self._writer.writerow([row.get(c, "") for c in self.columns])
        self.rows += 1


class Tables:
    """The open files of one source style, by table name (the file stem)."""

    def __init__(
        self,
        stack: ExitStack,
        folder: Path,
        schema: Mapping[str, Sequence[str]],
        *,
        encoding: str,
        bom: Sequence[str] = (),
        quote_all: bool = False,
        line_end: str = "\r\n",
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._tables = {
            name: TableWriter(
                stack,
                folder / f"{name}.csv",
                columns,
                encoding="utf-8-sig" if name in bom else encoding,
                quote_all=quote_all,
                line_end=line_end,
            )
            for name, columns in schema.items()
        }

    def write(self, table: str, row: Row) -> None:
        self._tables[table].write(row)

    def counts(self) -> dict[str, int]:
        """Rows written per file, keyed ``<folder name>/<file name>``."""
        return {f"{self.folder.name}/{name}.csv": t.rows for name, t in self._tables.items()}


def guid(rng: random.Random) -> str:
    """An EMIS-style GUID from the seeded RNG: upper case, in braces."""
    return "{" + str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper() + "}"
