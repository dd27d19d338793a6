"""``truth.json``: which source records are the same person, and which hard cases they show.

Written as people are generated (one person per line inside ``people``), so memory holds only
the case groups, not the population. Shape::

    {"seed": S, "patients": N,
     "people": [{"person": "P000001", "nhs_number": "...", "records": ["<key>", ...],
                 "cases": ["twin", ...]}, ...],
     "cases": {"twin": [["P000010", "P000011"]], "name_variant": [["P000004"]], ...}}

A record key is ``system|org|table|row_id``: ``systmone|<ODS>|SRPatient|<RowIdentifier>``,
``emis|<ODS>|Admin_Patient|<PatientGuid>`` (braces included), ``council|<code>|persons|<id>``.
``nhs_number`` is the person's true number, even where a source holds none or a wrong one.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from adapters.synth.people import Person


class TruthWriter:
    """Streams ``truth.json``; only the case groups are held until the end."""

    def __init__(self, stack: ExitStack, path: Path, seed: int, patients: int) -> None:
        self._out = stack.enter_context(path.open("w", encoding="utf-8", newline="\n"))
        self._out.write(f'{{"seed": {json.dumps(seed)}, "patients": {patients},\n"people": [\n')
        self._first = True
        self._groups: dict[str, list[list[str]]] = {}
        self.people = 0

    def person(self, person: Person, records: list[str]) -> None:
        entry = {
            "person": person.pid,
            "nhs_number": person.truth.nhs,
            "records": records,
            "cases": person.cases,
        }
        self._out.write(("" if self._first else ",\n") + json.dumps(entry, ensure_ascii=False))
        self._first = False
        self.people += 1
        for case in person.cases:
            if case not in ("twin", "father_son_same_name"):
                self._groups.setdefault(case, []).append([person.pid])

    def group(self, case: str, members: list[str]) -> None:
        self._groups.setdefault(case, []).append(members)

    def close(self) -> None:
        cases = json.dumps(dict(sorted(self._groups.items())), ensure_ascii=False)
        self._out.write(f'\n],\n"cases": {cases}}}\n')
