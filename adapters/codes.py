"""Code maps and sensitive value sets, loaded once from reviewed files; lookups are pure.

Two file shapes are accepted for maps, both naming source and target systems and a version:
FHIR R4 ``ConceptMap`` JSON, and CSV whose first line is a ``# key=value`` header. Sensitive
categories come from FHIR ``ValueSet`` JSON listed in ``mappings/valuesets/categories.json``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from adapters.schema import check

SNOMED = "http://snomed.info/sct"
CTV3 = "http://read.info/ctv3"
READ2 = "http://read.info/readv2"
DMD = "https://dmd.nhs.uk"

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


class CodeMapError(ValueError):
    """A map or value-set file is malformed; names the file and what is wrong."""


@dataclass(frozen=True)
class Target:
    code: str
    display: str | None


#: SNOMED CT's OID, which some senders give as the system instead of the URI.
_SNOMED_OID = "urn:oid:2.16.840.1.113883.6.96"


def is_snomed(system: str) -> bool:
    """``http://snomed.info/sct`` however it is spelled: scheme, case, a trailing slash, an
    edition or version under it (``.../sct/999000041000000102``), or the OID."""
    folded = system.strip().lower()
    if folded == _SNOMED_OID:
        return True
    rest = folded.removeprefix("http://").removeprefix("https://")
    return rest == "snomed.info/sct" or rest.startswith("snomed.info/sct/")


#: A Read v2 code (5 characters, right-padded with dots) optionally followed by its 2-digit term
#: code, as EMIS writes it (``H33..00``). EMIS-local ids (``EMISNQAC724``) do not match.
_READ_V2_TERM = re.compile(r"^([A-Za-z0-9]{1,5}\.{0,4})(\d{2})?$")


def read_v2_code(written: str) -> str | None:
    """The 5-character Read v2 code in a code written with or without its term code, or with
    its padding dots left off (``A78``), or None for anything else (an EMIS-local id): maps
    are keyed by the 5 characters."""
    m = _READ_V2_TERM.match(written.strip())
    if not m:
        return None
    code = m.group(1)
    if len(code) == 5:
        return code
    return code.rstrip(".").ljust(5, ".") if m.group(2) is None else None


def _read_system(system: str) -> str | None:
    """The Read code system (v2 or CTV3) ``system`` names, however spelled, or ``None``."""
    folded = system.strip().lower().removeprefix("http://").removeprefix("https://").rstrip("/")
    return {"read.info/readv2": READ2, "read.info/ctv3": CTV3}.get(folded)


@dataclass
class CodeMaps:
    """Lookup tables: (source system, target system) → code → target; SNOMED code → category."""

    maps: dict[tuple[str, str], dict[str, Target]] = field(default_factory=dict)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    sensitive: dict[str, str] = field(default_factory=dict)

    def translate(self, source: str, code: str, target: str = SNOMED) -> Target | None:
        table = self.maps.get((source, target))
        return table.get(code) if table else None

    def sensitive_category(self, system: str, code: str) -> str | None:
        """The legally restricted category of a code, if its SNOMED concept is in one of the
        value sets.

        Senders spell SNOMED's system in more than one way (https, a trailing slash, an edition
        URI, the OID), and a sensitive code must be found under any of them; a Read v2 or CTV3
        code (GP Connect may send only that) is looked up through its map to SNOMED."""
        if is_snomed(system):
            return self.sensitive.get(code)
        read = _read_system(system)
        if read == READ2:
            code = read_v2_code(code) or code
        concept = self.translate(read, code) if read else None
        return self.sensitive.get(concept.code) if concept else None

    def add(
        self, source: str, target: str, version: str, rows: Iterable[tuple[str, Target]]
    ) -> int:
        table = self.maps.setdefault((source, target), {})
        n = 0
        for code, tgt in rows:
            table[code] = tgt
            n += 1
        self.versions[(source, target)] = version
        return n


def load_concept_map(path: Path, into: CodeMaps) -> int:
    """Load one R4 ConceptMap (``group[].element[].target[]``); equivalence must not be a denial."""
    doc = orjson.loads(path.read_bytes())
    check("conceptmap", doc, str(path))
    version = str(doc.get("version", ""))
    n = 0
    for group in doc["group"]:
        rows = [
            (el["code"], Target(t["code"], t.get("display")))
            for el in group["element"]
            for t in el.get("target", [])
            if t.get("equivalence") not in ("unmatched", "disjoint")
        ]
        n += into.add(group["source"], group["target"], version, rows)
    return n


def _csv_header(first_line: str, path: Path) -> dict[str, str]:
    if not first_line.startswith("#"):
        raise CodeMapError(f"{path}: first line must be '# source=... target=... version=...'")
    pairs = dict(p.split("=", 1) for p in first_line[1:].split() if "=" in p)
    for key in ("source", "target", "version"):
        if key not in pairs:
            raise CodeMapError(f"{path}: header is missing '{key}='")
    return pairs


def load_csv_map(path: Path, into: CodeMaps) -> int:
    """Load a CSV map: header line, then columns ``source_code,target_code[,target_display]``."""
    text = path.read_text(encoding="utf-8-sig")
    first, _, body = text.partition("\n")
    header = _csv_header(first, path)
    reader = csv.DictReader(io.StringIO(body))
    missing = {"source_code", "target_code"} - set(reader.fieldnames or ())
    if missing:
        raise CodeMapError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    rows = [
        (
            r["source_code"].strip(),
            Target(r["target_code"].strip(), r.get("target_display") or None),
        )
        for r in reader
        if r["source_code"] and r["target_code"]
    ]
    return into.add(header["source"], header["target"], header["version"], rows)


def load_trud_map(path: Path, source: str, into: CodeMaps) -> int:
    """Load a TRUD crossmap (``rcsctmap2_uk`` or ``ctv3sctmap2_uk``, tab-separated).

    Where one source code has several rows, prefer an active map, then an assured one, then the
    newest, as the published selection rule does (reference §3.4).
    """
    best: dict[str, tuple[tuple[int, int, str], str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        cols = {c.lower(): c for c in reader.fieldnames or ()}
        code_col = cols.get("readcode") or cols.get("ctv3_conceptid") or cols.get("ctv3conceptid")
        concept_col = cols.get("conceptid") or cols.get("sct_conceptid")
        if not code_col or not concept_col:
            raise CodeMapError(f"{path}: not a TRUD crossmap (no code or ConceptId column)")
        term_col = cols.get("termcode")
        for row in reader:
            if term_col and row.get(term_col) not in (None, "", "00"):
                continue
            rank = (
                int(row.get(cols.get("mapstatus", ""), "1") or 1),
                int(row.get(cols.get("is_assured", ""), "0") or 0),
                row.get(cols.get("effectivedate", ""), "") or "",
            )
            code = row[code_col].strip()
            if code not in best or rank > best[code][0]:
                best[code] = (rank, row[concept_col].strip())
    version = path.stem
    return into.add(source, SNOMED, version, ((c, Target(t, None)) for c, (_, t) in best.items()))


def load_sensitive_valuesets(
    paths: Iterable[Path], categories: dict[str, str], into: CodeMaps
) -> int:
    """Load ValueSets whose ``name`` is listed in ``categories`` (name → category)."""
    n = 0
    for path in paths:
        doc = orjson.loads(path.read_bytes())
        check("valueset", doc, str(path))
        category = categories.get(doc["name"])
        if category is None:
            raise CodeMapError(f"{path}: ValueSet '{doc['name']}' is not in categories.json")
        concepts = [
            c["code"]
            for inc in doc.get("compose", {}).get("include", [])
            if inc.get("system") == SNOMED
            for c in inc.get("concept", [])
        ]
        concepts += [
            c["code"]
            for c in doc.get("expansion", {}).get("contains", [])
            if c.get("system") == SNOMED
        ]
        for code in concepts:
            into.sensitive[code] = category
        n += len(concepts)
    return n


def _load_codes_dir(folder: Path, into: CodeMaps) -> None:
    for path in sorted(folder.glob("*")):
        if path.suffix == ".json":
            load_concept_map(path, into)
        elif path.suffix == ".csv":
            load_csv_map(path, into)


def load_all(
    root: Path = MAPPINGS_DIR, extra: Path | None = None, extra_valuesets: Iterable[Path] = ()
) -> CodeMaps:
    """Load the shipped maps and value sets, then a deployment's own (``extra``), then any others.

    Later files win for the same source code, so a deployment's full TRUD map overrides the
    shipped subset.
    """
    maps = CodeMaps()
    names = category_names(root)
    folders = [root] + ([extra] if extra is not None and extra.is_dir() else [])
    valuesets: list[Path] = []
    for folder in folders:
        if (folder / "codes").is_dir():
            _load_codes_dir(folder / "codes", maps)
        valuesets += sorted(
            p for p in (folder / "valuesets").glob("*.json") if p.name != "categories.json"
        )
    load_sensitive_valuesets([*valuesets, *extra_valuesets], names, maps)
    return maps


def category_names(root: Path = MAPPINGS_DIR) -> dict[str, str]:
    """ValueSet name → sensitive category, from the reviewed ``categories.json``."""
    index = orjson.loads((root / "valuesets" / "categories.json").read_bytes())
    check("categories", index, "categories.json")
    return {name: cat for cat, spec in index["categories"].items() for name in spec["valuesets"]}
