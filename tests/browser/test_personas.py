"""Each demo persona in a real browser (Playwright driving Debian's chromium) over a synthetic
region: what each profile sees of one known person, the receptionist's empty clinical view, the
A&E doctor's refusal then break-glass, and a sensitive item that no persona ever sees.

Screenshots go to ``test-artifacts/browser/``. Skipped, saying why, where chromium is absent
(the README's test command installs it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine, Table, select, text

from adapters.codes import load_all
from adapters.synth import synthesise
from consent import load
from engine.api import create_app
from engine.db import make_engine, scratch_store
from engine.directory import read_directory, replace_directory
from engine.identity import patients_of, person_of
from engine.identity.tables import PatientNumber
from engine.ingest import ingest
from engine.migrate import upgrade
from engine.registry import adapter_for
from engine.settings import Settings
from tests.conftest import BACKEND

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PRACTICE, CARE_HOME = "Y90011", "VXA01"
SENSITIVE = "Syphilis"

NUMBERS: Table = PatientNumber.__table__  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@dataclass(frozen=True)
class Region:
    url: str
    resident: str  # NHS number: registered at the practice, living at the care home
    sensitive: str  # NHS number of a person with a sensitive item held by the GP's practice


def _nhs(engine: Engine, patient_id: str) -> str:
    with engine.connect() as conn:
        person = person_of(conn, patient_id)
        assert person is not None
        members = patients_of(conn, person)
        numbers = conn.execute(
            select(NUMBERS.c.nhs_number).where(NUMBERS.c.patient_id.in_(members))
        ).scalars()
        return min(numbers)


def _patients(engine: Engine, sql: str, **params: str) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(sql), params)}


def _find_people(engine: Engine) -> tuple[str, str]:
    placed = set()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT patient_id, body FROM resource WHERE resource_type = 'EpisodeOfCare'")
        ).all()
    for r in rows:
        body = orjson.loads(r.body)
        codes = {c.get("code") for cc in body.get("type", []) for c in cc.get("coding", [])}
        org = body.get("managingOrganization", {}).get("identifier", {}).get("value")
        if "care-home-placement" in codes and org == CARE_HOME and "end" not in body["period"]:
            placed.add(r.patient_id)
    registered = _patients(
        engine,
        "SELECT patient_id FROM resource WHERE resource_type = 'EpisodeOfCare' "
        "AND source_org = :org AND status = 'active'",
        org=PRACTICE,
    )
    with engine.connect() as conn:
        people_placed = {person_of(conn, p) for p in placed}
        people_registered = {person_of(conn, p) for p in registered}
        both = sorted(p for p in people_placed & people_registered if p)
        assert both, "the synthetic region has no resident registered at the practice"
        resident = patients_of(conn, both[0])[0]
    sensitive = _patients(
        engine,
        "SELECT patient_id FROM resource WHERE labels LIKE '%sensitive-%' AND source_org = :org",
        org=PRACTICE,
    )
    assert sensitive, "the synthetic region has no sensitive item at the GP persona's practice"
    return _nhs(engine, resident), _nhs(engine, min(sensitive))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("region")
    with scratch_store(BACKEND, work) as url:
        settings = Settings(database_url=url, data_dir=work, auth_mode="dev")
        engine = make_engine(url)
        upgrade(engine)
        synthesise(60, 5, work / "sources")
        version, entries = read_directory(work / "sources" / "organisations.json", load().org_kinds)
        with engine.begin() as conn:
            replace_directory(conn, version, entries, datetime.now(UTC))
        codes = load_all()
        for kind in ("systmone", "emis", "council"):
            ingest(engine, settings, codes, adapter_for(kind), str(work / "sources" / kind))
        resident, sensitive = _find_people(engine)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield Region(f"http://127.0.0.1:{port}", resident, sensitive)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def open_as(browser: Browser, region: Region, persona: str) -> Page:
    """A fresh browser context signed in as ``persona``, past the confidentiality notice."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(region.url + "/")
    page.click(f"#persona-{persona}")
    page.wait_for_url("**/ig" if persona == "ig-officer" else "**/record")
    page.goto(f"{region.url}/record/{region.resident}")
    page.click("#acknowledge")
    page.wait_for_load_state()
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{BACKEND.split(':')[0]}.png"), full_page=True)


def headings(page: Page) -> set[str]:
    return set(page.locator("h3").all_inner_texts())


@pytest.mark.parametrize(
    ("persona", "must", "never"),
    [
        ("gp", {"Allergies and adverse reactions", "Observations and investigations"}, set()),
        (
            "social-worker",
            {"Care home placements"},
            {"Observations and investigations", "Past problems"},
        ),
        (
            "care-home-nurse",
            {"Care home placements"},
            {"Observations and investigations", "Assessments"},
        ),
        (
            "receptionist",
            set(),
            {
                "Observations and investigations",
                "Allergies and adverse reactions",
                "Active problems",
                "Current medications",
            },
        ),
    ],
)
def test_each_persona_sees_what_its_profile_allows(
    browser: Browser, region: Region, persona: str, must: set[str], never: set[str]
) -> None:
    page = open_as(browser, region, persona)
    shot(page, persona)
    text_shown = page.content()
    assert "Some information may be withheld" in text_shown
    seen = headings(page)
    assert must <= seen, (persona, seen)
    assert not (never & seen), (persona, seen & never)
    assert SENSITIVE not in text_shown


def test_ig_officer_sees_no_record(browser: Browser, region: Region) -> None:
    page = open_as(browser, region, "ig-officer")
    shot(page, "ig-officer")
    assert page.locator("h1").inner_text() == "You cannot see this record"
    assert page.locator("#break-glass").count() == 0


def test_ae_doctor_is_refused_then_breaks_the_glass(browser: Browser, region: Region) -> None:
    page = open_as(browser, region, "ae-doctor")
    assert page.locator("h1").inner_text() == "You cannot see this record"
    shot(page, "ae-doctor-refused")
    page.fill("#reason_text", "Unconscious in resus, no history available")
    page.click("#break-glass")
    page.wait_for_load_state()
    shot(page, "ae-doctor-break-glass")
    assert "emergency access" in page.content()
    assert "Allergies and adverse reactions" in headings(page) or "Active problems" in headings(
        page
    )


def test_a_sensitive_item_appears_for_no_persona(browser: Browser, region: Region) -> None:
    """Held by the GP persona's own practice, where the person is registered: the GP and the
    A&E doctor (by break-glass) are shown the record, and the item appears for no one."""
    shown = []
    for persona in ("gp", "social-worker", "care-home-nurse", "receptionist", "ae-doctor"):
        page = open_as(browser, region, persona)
        page.goto(f"{region.url}/record/{region.sensitive}")
        if persona == "ae-doctor" and page.locator("#break-glass").count():
            page.fill("#reason_text", "Collapsed in the waiting room, no history")
            page.click("#break-glass")
            page.wait_for_load_state()
        if page.locator("h1").inner_text() != "You cannot see this record":
            shown.append(persona)
        assert SENSITIVE not in page.content(), persona
    assert {"gp", "ae-doctor"} <= set(shown), shown
