"""``organisations.json``: the synthetic region's directory of organisations and their kinds.

``scr directory load`` reads it. A deployment builds its own from ODS data; this one names
every organisation whose staff the demo signs in as, so each gets the kind its access profile
depends on.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from adapters.synth import catalogue as cat

_KINDS = (
    ("gp-practice", (cat.SYSTMONE_PRACTICE, cat.EMIS_PRACTICE)),
    ("hospital", (cat.HOSPITAL,)),
    ("council", (cat.COUNCIL,)),
    ("care-home", cat.CARE_HOMES),
    ("ig-office", (cat.IG_OFFICE,)),
)


def write_directory(path: Path) -> None:
    organisations = [
        {"code": org.ods, "name": org.name, "kind": kind} for kind, orgs in _KINDS for org in orgs
    ]
    doc = {
        "version": "synthetic.1",
        "description": "Synthetic organisations of the scr demo region; not real ODS codes.",
        "organisations": organisations,
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
