"""A deployment's own code maps: full TRUD crossmaps and value sets, kept beside its data.

They are converted into the same reviewed shapes the project ships (CSV maps with a header,
FHIR ValueSets) so one loader reads both.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson

from adapters.codes import CTV3, READ2, SNOMED, CodeMaps, category_names, load_trud_map
from adapters.schema import MapFileError, check
from engine.settings import Settings

_SOURCES = {"ctv3": CTV3, "readv2": READ2}


def deployment_dir(settings: Settings) -> Path:
    return settings.data_dir / "mappings"


def import_trud(settings: Settings, path: Path, source: str) -> tuple[int, Path]:
    if source not in _SOURCES:
        raise ValueError(f"--source must be one of {', '.join(_SOURCES)}")
    maps = CodeMaps()
    n = load_trud_map(path, _SOURCES[source], maps)
    dest = deployment_dir(settings) / "codes" / f"{source}-snomed-trud.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).date().isoformat()
    with dest.open("w", encoding="utf-8", newline="") as fh:
        fh.write(
            f"# source={_SOURCES[source]} target={SNOMED} version={path.stem} "
            f"name={source}-snomed-trud loaded={stamp}\n"
        )
        writer = csv.writer(fh)
        writer.writerow(["source_code", "target_code"])
        for code, target in sorted(maps.maps[(_SOURCES[source], SNOMED)].items()):
            writer.writerow([code, target.code])
    return n, dest


def import_valueset(settings: Settings, path: Path) -> tuple[int, Path]:
    doc = orjson.loads(path.read_bytes())
    check("valueset", doc, str(path))
    if doc["name"] not in category_names():
        raise MapFileError(f"{path}: ValueSet '{doc['name']}' is not listed in categories.json")
    dest = deployment_dir(settings) / "valuesets" / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    n = sum(len(inc.get("concept", [])) for inc in doc.get("compose", {}).get("include", []))
    return n, dest
