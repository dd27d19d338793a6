"""An app over a small ingested store: one person registered at practice Y00001, with plain,
confidential and sensitive observations, and a directory naming every organisation used."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, update

from adapters.base import SourceRef
from adapters.codes import CodeMaps
from adapters.systmone import SystmOneAdapter
from engine.api import create_app
from engine.api.auth import mint
from engine.db import make_engine, scratch_store
from engine.directory import read_directory, replace_directory
from engine.identity.tables import LinkEvent, Person, PersonLink
from engine.ingest import ingest
from engine.settings import Settings
from tests.conftest import BACKEND
from tests.factories import nhs_numbers, s1_code, s1_patient, s1_registration, write_systmone
from tests.stores import KeptStores, forget_statistics

NHS = next(nhs_numbers(999_400_000))
PATIENT = SourceRef("systmone", "Y00001", "SRPatient", "1").resource_id("Patient")
ROLES = {
    "gp": ("Y00001", "S8000:G8000:R8000"),
    "other-gp": ("Y00002", "S8000:G8000:R8000"),
    "receptionist": ("Y00001", "S8001:G8003:R8009"),
    "ae-doctor": ("R9Z", "S8000:G8000:R8000"),
}
PEOPLE = Person.__table__
LINKS = PersonLink.__table__
EVENTS = LinkEvent.__table__
DIRECTORY = [
    {"code": "Y00001", "name": "Riverside Surgery", "kind": "gp-practice"},
    {"code": "Y00002", "name": "Hillside Surgery", "kind": "gp-practice"},
    {"code": "R9Z", "name": "Borchester General Hospital", "kind": "hospital"},
]


class Store:
    """The store and a way to load (more of) the extract into it."""

    def __init__(self, engine: Engine, settings: Settings, codes: CodeMaps, folder: Path):
        self.engine, self.settings, self.codes, self.folder = engine, settings, codes, folder

    def load(self, extra_sensitive: int = 0) -> None:
        rows = [
            s1_code("10", "1"),
            s1_code("11", "1", NumericValue="130"),
            s1_code("12", "1", IDOrganisationVisibleTo="5001"),
            *(
                s1_code(str(20 + i), "1", SNOMEDCode="76272004", SNOMEDText="Syphilis")
                for i in range(1 + extra_sensitive)
            ),
        ]
        folder = write_systmone(
            self.folder, [s1_patient("1", NHS)], rows,
            organisations=[
                {"ID": "5001", "Name": "Riverside Surgery", "NationalId": "Y00001"},
                {"ID": "5002", "Name": "Hillside Surgery", "NationalId": "Y00002"},
            ],
            registrations=[s1_registration("90", "5001"), s1_registration("91", "5002")],
        )  # fmt: skip
        ingest(self.engine, self.settings, self.codes, SystmOneAdapter(), str(folder))

    def merge(self) -> None:
        """Identity merges the person of ``PATIENT`` into a new person, as a duplicate found
        does: the links move, the old id points on, and the Patient's history records it."""
        with self.engine.begin() as conn:
            (old,) = conn.execute(
                select(LINKS.c.person_id).where(LINKS.c.patient_id == PATIENT)
            ).scalars()
            created = conn.execute(select(PEOPLE.c.created_at).where(PEOPLE.c.id == old)).scalar()
            conn.execute(insert(PEOPLE).values(id="survivor-0001", created_at=created))
            conn.execute(
                update(LINKS).where(LINKS.c.person_id == old).values(person_id="survivor-0001")
            )
            conn.execute(
                update(PEOPLE).where(PEOPLE.c.id == old).values(merged_into="survivor-0001")
            )
            conn.execute(
                insert(EVENTS).values(
                    at=datetime.now(UTC), action="link", patient_id=PATIENT,
                    person_id="survivor-0001", from_person_id=old, manual=False, who="system",
                    reason="a duplicate", detail={},
                )
            )  # fmt: skip


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, auth_mode="dev", ingest_batch_size=50)


@pytest.fixture(scope="session")
def loaded(
    migrated: str,
    codes: CodeMaps,
    tmp_path_factory: pytest.TempPathFactory,
    kept_stores: KeptStores | None,
) -> Iterator[str]:
    """The store every ``store`` starts as (the root ``db_url`` copies it): the directory and
    the extract, taken in once per run rather than once per test."""
    work = tmp_path_factory.mktemp("loaded")
    with scratch_store(BACKEND, work, template=migrated) as url:
        engine = make_engine(url)
        path = work / "organisations.json"
        path.write_bytes(orjson.dumps({"version": "test.1", "organisations": DIRECTORY}))
        version, entries = read_directory(path, frozenset({"gp-practice", "hospital"}))
        with engine.begin() as conn:
            replace_directory(conn, version, entries, datetime.now(UTC))
        settings = Settings(database_url=url, data_dir=work, ingest_batch_size=50)
        Store(engine, settings, codes, work / "extract").load()
        engine.dispose()
        if kept_stores is not None:
            forget_statistics(url)
        yield url


@pytest.fixture
def store(
    engine: Engine, api_settings: Settings, codes: CodeMaps, tmp_path: Path, loaded: str
) -> Store:
    """The store as ``loaded`` left it: asking for ``loaded`` is what has ``db_url`` copy it."""
    return Store(engine, api_settings, codes, tmp_path / "extract")


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, store.engine)) as c:
        yield c


Token = Callable[..., str]


@pytest.fixture
def token(api_settings: Settings) -> Token:
    def make(persona: str = "gp", **over: Any) -> str:
        org, role = ROLES[persona]
        args: dict[str, Any] = {
            "user_id": f"u-{persona}", "name": f"Synthetic {persona}", "role_code": role,
            "org": org, "ig_training": date.today() - timedelta(days=30),
        }  # fmt: skip
        return mint(api_settings, **(args | over))

    return make


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
