"""Red-bag test parties: two care homes and a second hospital beside the API fixture's store,
their signing keys, the person's placement at a care home, and a valid transfer for the store's
one person."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from adapters.council import CouncilAdapter
from engine.directory import read_directory, replace_directory
from engine.ingest import ingest
from engine.transfer import signature
from engine.transfer.form import Medicine, Person, TransferForm, transfer_message
from engine.transfer.news2 import Vitals
from engine.transfer.store import register_key
from tests.api.conftest import DIRECTORY, NHS, Store, Token
from tests.factories import write_csv

CARE_HOME, OTHER_HOME, HOSPITAL, OTHER_HOSPITAL = "VCH01", "VCH02", "R9Z", "R9Y"
BASE = "https://fhir.scr.example/"
CARE_ROLE = "S8000:G8000:R8001"
PARTIES = [
    {"code": CARE_HOME, "name": "Grey Gables Care Home", "kind": "care-home"},
    {"code": OTHER_HOME, "name": "Lakey Hill Care Home", "kind": "care-home"},
    {"code": OTHER_HOSPITAL, "name": "Felpersham Hospital", "kind": "hospital"},
]
FORM = TransferForm(
    person=Person(NHS, "Smith", "Renée", "1950-03-01", "Y00001"),
    reason="Fall with suspected hip fracture; more confused than usual",
    vitals=Vitals(22, 94, False, 105, 98, "C", 37.9),
    completed_by="Dee Synthetic, nurse",
    medicines=[Medicine("Paracetamol 500mg tablets", datetime(2026, 12, 1, 8, tzinfo=UTC))],
    allergies=["Penicillin"],
    for_cpr=False,
    belongings=["Glasses", "Hearing aid"],
)


def add_parties(engine: Engine, folder: Path) -> dict[str, Ed25519PrivateKey]:
    """Directory entries and a registered key for each care home and hospital."""
    path = folder / "organisations-transfer.json"
    doc = {"version": "test.2", "organisations": [*DIRECTORY, *PARTIES]}
    path.write_bytes(orjson.dumps(doc))
    version, entries = read_directory(path, frozenset({"gp-practice", "hospital", "care-home"}))
    keys = {org: signature.new_key() for org in (CARE_HOME, OTHER_HOME, HOSPITAL, OTHER_HOSPITAL)}
    now = datetime.now(UTC)
    with engine.begin() as conn:
        replace_directory(conn, version, entries, now)
        for org, key in keys.items():
            register_key(conn, org, signature.public_pem(key), "test", now)
    return keys


def unsigned(header_id: str | None = None, **over: Any) -> dict[str, Any]:
    return transfer_message(
        FORM, sender=over.get("sender", CARE_HOME), destination=over.get("to", HOSPITAL),
        now=datetime.now(UTC), base=BASE, header_id=header_id,
    )  # fmt: skip


def signed(doc: dict[str, Any], key: Ed25519PrivateKey, org: str = CARE_HOME) -> dict[str, Any]:
    return signature.sign(doc, key, org, datetime.now(UTC))


def place(store: Store, home: str, start: str = "2024-04-01", end: str = "") -> None:
    """The council records the store's person (the same Renée Smith, so identity links them)
    living at care home ``home``: a placement, the care home's relationship with them."""
    folder = store.folder.parent / f"council-{home}-{start}-{end}"
    folder.mkdir()
    tables = {
        "organisation": [{"code": "E06000999", "name": "Borsetshire Council"}],
        "persons": [{
            "person_id": "1", "first_name": "Renée", "last_name": "Smith",
            "date_of_birth": "1950-03-01", "gender": "F", "nhs_number": NHS, "restricted": "false",
        }],
        "placements": [
            {"person_id": "1", "care_home_ods": home, "start_date": start, "end_date": end}
        ],
    }  # fmt: skip
    for table, rows in tables.items():
        write_csv(folder / f"{table}.csv", list(rows[0]), rows, "utf-8")
    ingest(store.engine, store.settings, store.codes, CouncilAdapter(), str(folder))


@pytest.fixture
def keys(store: Store, tmp_path: Any) -> dict[str, Ed25519PrivateKey]:
    """The care homes' and hospitals' signing keys, registered with the store."""
    return add_parties(store.engine, tmp_path)


@pytest.fixture
def home(store: Store, token: Token) -> str:
    """A nurse at the care home the store's person lives in."""
    place(store, CARE_HOME)
    return token("gp", org=CARE_HOME, role_code=CARE_ROLE, user_id="u-nurse")


T = TypeVar("T")


def at_once(n: int, attempt: Callable[[int], T]) -> list[T]:
    """What ``attempt(i)`` gives for each of ``n`` threads released together: a race to the
    store. An attempt returns its outcome rather than raising, so none is lost in its thread."""
    start = threading.Barrier(n)
    outcomes: list[T] = []

    def one(i: int) -> None:
        start.wait()
        outcomes.append(attempt(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
