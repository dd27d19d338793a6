"""Code maps and sensitive value sets: the shipped files, the corpus value sets, TRUD maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.codes import (
    CTV3,
    READ2,
    SNOMED,
    CodeMapError,
    CodeMaps,
    Target,
    load_all,
    load_csv_map,
)
from adapters.schema import MapFileError
from engine.codes_admin import import_trud, import_valueset
from engine.settings import Settings


def test_shipped_maps_load_and_translate(codes):
    assert codes.maps[(CTV3, SNOMED)], "the CTV3 → SNOMED subset is shipped"
    assert codes.sensitive_category(SNOMED, "76272004") == "sti"
    assert codes.sensitive_category("http://read.info/ctv3", "76272004") is None


@pytest.mark.parametrize("system", [CTV3, "https://read.info/ctv3/", "HTTP://READ.INFO/CTV3"])
def test_a_sensitive_read_code_is_found_through_its_map_to_snomed(codes, system):
    """GP Connect may send a TPP code in CTV3 only: A97z. is mapped to 76272004 (syphilis)."""
    assert codes.sensitive_category(system, "A97z.") == "sti"
    assert codes.sensitive_category(system, "a97z.") is None, "Read codes are case-sensitive"


@pytest.mark.parametrize("written", ["A78..", "A78..00", " A78..00 ", "A78", "A78."])
def test_a_sensitive_read_v2_code_is_found_with_its_term_code(written):
    """GP Connect writes Read v2 with its 2-digit term code (``246..00``), some senders without
    its padding dots (``A78``); maps are keyed by the 5-character code, which must be found."""
    codes = CodeMaps()
    codes.add(READ2, SNOMED, "t", [("A78..", Target("76272004", "Syphilis"))])
    codes.sensitive["76272004"] = "sti"
    assert codes.sensitive_category(READ2, written) == "sti"
    assert codes.sensitive_category(READ2, "A78..01x") is None


@pytest.mark.parametrize(
    "system",
    [
        "https://snomed.info/sct", "http://snomed.info/sct/", "HTTP://SNOMED.INFO/SCT",
        "http://snomed.info/sct/999000041000000102", "urn:oid:2.16.840.1.113883.6.96",
        " http://snomed.info/sct ",
    ],
)  # fmt: skip
def test_a_sensitive_code_is_found_however_snomed_is_spelled(codes, system):
    """GP Connect keeps each system as the sender wrote it, and R4 takes any URI: a sensitive
    code under another spelling of SNOMED's must still be withheld."""
    assert codes.sensitive_category(system, "76272004") == "sti"


@pytest.mark.parametrize(
    "system", ["http://snomed.info/sctx", "http://example.org/snomed.info/sct"]
)
def test_only_snomed_is_taken_for_snomed(codes, system):
    assert codes.sensitive_category(system, "76272004") is None


def test_corpus_value_sets_load_every_category(corpus):
    folder = corpus / "sensitive-valuesets-olids"
    if not folder.is_dir():
        pytest.skip("sensitive value sets are not in the corpus")
    maps = load_all(extra_valuesets=sorted(folder.glob("*_vs.json")))
    counts = {
        cat: sum(1 for c in maps.sensitive.values() if c == cat)
        for cat in ("gender", "fertility", "termination", "sti")
    }
    assert counts["sti"] > 1000 and counts["fertility"] > 100
    assert all(n > 0 for n in counts.values())


def test_csv_map_without_header_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("source_code,target_code\nA,1\n", encoding="utf-8")
    with pytest.raises(CodeMapError, match="first line must be"):
        load_csv_map(path, CodeMaps())


def test_trud_crossmap_import_picks_active_assured_newest(tmp_path):
    trud = tmp_path / "ctv3sctmap2_uk_20200401000001.txt"
    trud.write_text(
        "MAPID\tCTV3_CONCEPTID\tCTV3_TERMID\tCTV3_TERMTYPE\tSCT_CONCEPTID\tSCT_DESCRIPTIONID\t"
        "MAPSTATUS\tEFFECTIVEDATE\tISASSURED\n"
        "1\tXa0lV\tY1\tP\t111\t1\t0\t20190101\t1\n"
        "2\tXa0lV\tY1\tP\t222\t2\t1\t20180101\t1\n"
        "3\tXa0lV\tY1\tP\t333\t3\t1\t20170101\t0\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path)
    n, dest = import_trud(settings, trud, "ctv3")
    assert n == 1 and dest.exists()
    maps = load_all(extra=tmp_path / "mappings")
    assert maps.translate(CTV3, "Xa0lV") is not None
    assert maps.translate(CTV3, "Xa0lV").code == "222"  # type: ignore[union-attr]


def test_valueset_import_requires_a_listed_category(tmp_path):
    vs = tmp_path / "other.json"
    vs.write_text('{"resourceType": "ValueSet", "name": "Unlisted"}', encoding="utf-8")
    with pytest.raises(MapFileError, match="not listed"):
        import_valueset(Settings(data_dir=tmp_path), vs)
    listed = (
        Path(__file__).resolve().parents[2] / "mappings" / "valuesets" / "scr-sensitive-sti.json"
    )
    n, dest = import_valueset(Settings(data_dir=tmp_path), listed)
    assert n >= 1 and dest.exists()
