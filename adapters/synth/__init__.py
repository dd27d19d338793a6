"""``scr synth``: deterministic synthetic sources for one overlapping population.

The same people appear in a SystmOne-style extract, an EMIS-style extract and a council
extract, with real-world noise at controlled rates (``rates.py``), and ``truth.json`` says
which records are whom, so matching can be measured. Generation is person by person and every
file stays open for appending, so memory does not grow with the population; all randomness
comes from one ``random.Random(seed)``, so a seed always gives byte-identical output.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from adapters.synth.clinical import build_record
from adapters.synth.council import CouncilExtract
from adapters.synth.directory import write_directory
from adapters.synth.emis import EmisExtract
from adapters.synth.nhs import NhsNumbers
from adapters.synth.people import Population
from adapters.synth.systmone import SystmOneExtract
from adapters.synth.truth import TruthWriter

__all__ = ["synthesise"]


def synthesise(
    patients: int, seed: int, out: Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Write ``out/systmone/``, ``out/emis/``, ``out/council/``, ``out/truth.json`` and the
    region's ``out/organisations.json``.

    Returns the rows written per file (``"<style>/<file>.csv"``) and ``"people"``. Calls
    ``progress`` with the number of people written so far after each person.
    """
    if patients < 0:
        raise ValueError("patients must not be negative")
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    write_directory(out / "organisations.json")
    with ExitStack() as stack:
        systmone = SystmOneExtract(stack, out / "systmone", rng)
        emis = EmisExtract(stack, out / "emis", rng)
        council = CouncilExtract(stack, out / "council", rng)
        truth = TruthWriter(stack, out / "truth.json", seed, patients)
        for unit in Population(rng, patients, NhsNumbers(rng)):
            for person in unit.people:
                record = build_record(rng, person)
                keys = []
                if "systmone" in person.gp_styles:
                    keys.append(systmone.add(person, record))
                if "emis" in person.gp_styles:
                    keys.append(emis.add(person, record))
                if person.council:
                    keys.append(council.add(person, record))
                truth.person(person, keys)
                if progress:
                    progress(truth.people)
            for case, members in unit.groups:
                truth.group(case, members)
        truth.close()
        return {
            **systmone.tables.counts(),
            **emis.tables.counts(),
            **council.tables.counts(),
            "people": truth.people,
        }
