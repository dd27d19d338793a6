"""Every GP Connect JSON file in the shared corpus through read + map, with a per-file report.

The corpus (``../shared/corpus``, never copied into the project) holds real EMIS GP Connect
output and the GP Connect specification examples. Some are WireMock response templates: they
are rendered here as the stub server would answer a request with no ``patient`` in its body
(the NHS number placeholder gets a valid 999-range test number, ``{{request.baseUrl}}`` a test
base URL, the ``{{^patient}}`` section is kept and the ``{{#patient}}`` section dropped; see the
corpus MANIFEST). Files that are not structured records (OperationOutcomes, Binary documents,
GP2GP messages) and files that do not parse must each come out as one quarantine record, never
as an exception or silence; every resource produced must be valid R4.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.base import MapContext
from adapters.codes import CodeMaps
from adapters.gpconnect.convert import map_record
from adapters.gpconnect.read import records_from_bytes

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FOLDERS = ("gp2gp-adaptor-gpc", "gpconnect-spec-examples")
TEST_NHS_NUMBER = "9990000018"
TEST_BASE_URL = "https://gpconnect.example"
CTX = MapContext(CodeMaps())

_NHS_PLACEHOLDER = re.compile(
    r"\{\{\s*(?:nhsNumber"
    r"|jsonPath request\.body '\$\.parameter\[0\]\.valueIdentifier\.value')\s*\}\}"
)
_WITH_PATIENT = re.compile(r"\{\{#patient\}\}.*?\{\{/patient\}\}", re.S)
_WITHOUT_PATIENT = re.compile(r"\{\{\^patient\}\}(.*?)\{\{/patient\}\}", re.S)
_ANY = re.compile(r"\{\{[^{}]*\}\}")


def render(text: str) -> str:
    text = _NHS_PLACEHOLDER.sub(TEST_NHS_NUMBER, text)
    text = text.replace("{{request.baseUrl}}", TEST_BASE_URL)
    text = _WITH_PATIENT.sub("", text)
    text = _WITHOUT_PATIENT.sub(r"\1", text)
    return _ANY.sub("", text)


@dataclass
class FileReport:
    name: str
    kind: str = "structured record"
    resources: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    warnings: int = 0
    invalid: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        made = ", ".join(f"{t} {n}" for t, n in sorted(self.resources.items())) or "-"
        out = [
            f"{self.name}: {self.kind}; {sum(self.resources.values())} resources; "
            f"{sum(self.quarantined.values())} quarantined; {self.warnings} warnings",
            f"    made: {made}",
        ]
        out += [f"    quarantined {n}x: {why}" for why, n in sorted(self.quarantined.items())]
        return out


def _kind(reason: str) -> str:
    if reason.startswith(("not valid JSON", "not UTF-8")):
        return "unparseable"
    if reason.startswith("not a structured record"):
        return "not a structured record"
    return "bundle quarantined"


def run_file(path: Path) -> FileReport:
    report = FileReport(str(path.relative_to(CORPUS)))
    text = render(path.read_bytes().decode("utf-8-sig", errors="replace"))
    for record in records_from_bytes(text.encode(), path.name):
        outcome = map_record(record, CTX)
        report.warnings += len(outcome.warnings)
        if record.ref.table == "Bundle" and record.read_issues:
            report.kind = _kind(record.read_issues[0].reason)
        for issue in outcome.issues:
            report.quarantined[f"{record.ref.table}: {issue}"] += 1
        for mapped in outcome.resources:
            rtype = mapped.resource["resourceType"]
            report.resources[rtype] += 1
            try:
                get_fhir_model_class(rtype).model_validate(mapped.resource)
            except ValidationError as exc:
                report.invalid.append(f"{record.ref.key}: {exc}")
    return report


def test_every_corpus_file_reads_and_maps_to_valid_r4(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(p for folder in FOLDERS for p in (CORPUS / folder).rglob("*.json"))
    if not files:
        pytest.skip("../shared/corpus has no GP Connect files here")
    reports = [run_file(path) for path in files]
    kinds = Counter(r.kind for r in reports)
    with capsys.disabled():
        print("\nGP Connect corpus report")
        for report in reports:
            print("\n".join(report.lines()))
        print(
            f"{len(reports)} files: {dict(kinds)}; "
            f"{sum(sum(r.resources.values()) for r in reports)} resources, "
            f"{sum(sum(r.quarantined.values()) for r in reports)} quarantined, "
            f"{sum(r.warnings for r in reports)} warnings"
        )
    assert [i for r in reports for i in r.invalid] == []
    assert kinds["structured record"] > 0
    for report in reports:
        if report.kind != "structured record":
            assert not report.resources and sum(report.quarantined.values()) == 1, report.name
    by_name = {Path(r.name).name: r for r in reports}
    if "consultations_response1.json" in by_name:
        assert by_name["consultations_response1.json"].kind == "unparseable"
