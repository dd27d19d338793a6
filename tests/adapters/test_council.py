"""The council-style adapter: a CSV folder and a paginated JSON API, mapped by one set of maps."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from adapters import extract, labels
from adapters.base import CorrectionRefused, ExtractError, MapContext, SourceRecord
from adapters.codes import CodeMaps
from adapters.council import CouncilAdapter
from adapters.council.api import CouncilApiError, pull
from engine.ingest import RunSummary, ingest
from engine.models import Resource
from engine.quarantine import list_items, replay
from engine.settings import Settings
from engine.validate import validate_resource
from tests.factories import nhs_numbers, write_csv

ORG = "E06000999"
BASE = "https://council.example/api"
NHS = nhs_numbers()

HEADERS: dict[str, list[str]] = {
    "organisation": ["code", "name"],
    "persons": [
        "person_id", "first_name", "last_name", "date_of_birth", "date_of_death", "gender",
        "nhs_number", "address", "postcode", "restricted", "allocated_team",
    ],
    "events": [
        "event_id", "person_id", "event_type", "event_start_date", "event_end_date",
        "service_type", "service_component", "delivery_mechanism", "primary_support_reason",
        "event_outcome", "provider_name", "planned_units_per_week",
    ],
    "warnings": [
        "warning_id", "person_id", "category", "code", "start_date", "review_date", "end_date",
        "narrative",
    ],
    "contacts": [
        "contact_id", "person_id", "name", "relationship", "is_unpaid_carer", "is_key_worker",
        "role", "team", "phone",
    ],
    "legal": ["person_id", "kind", "status", "start_date", "end_date"],
    "placements": ["person_id", "care_home_ods", "start_date", "end_date"],
}  # fmt: skip

Rows = dict[str, list[dict[str, str]]]


def person(pid: str, restricted: bool = False, **kw: str) -> dict[str, str]:
    return {
        "person_id": pid, "first_name": "Ada", "last_name": f"Archer{pid}",
        "date_of_birth": "1940-03-02", "gender": "F", "nhs_number": next(NHS),
        "address": "1 Mill Lane, Ambridge", "postcode": "AB1 2CD",
        "restricted": "true" if restricted else "false", "allocated_team": "Older People North",
    } | kw  # fmt: skip


def event(eid: str, pid: str, kind: str, **kw: str) -> dict[str, str]:
    return {
        "event_id": eid, "person_id": pid, "event_type": kind, "event_start_date": "2024-01-10",
        "primary_support_reason": "Physical Support: Personal care support",
    } | kw  # fmt: skip


SERVICE = {
    "service_type": "Long Term Support: Community", "service_component": "Home Support",
    "delivery_mechanism": "CASSR Commissioned support", "provider_name": "Borsetshire Home Care",
    "planned_units_per_week": "10.5", "event_outcome": "Provision of service",
}  # fmt: skip


def standard() -> Rows:
    """Three people (one restricted) with one row of every kind the maps know, and a Holiday."""
    return {
        "organisation": [{"code": ORG, "name": "Borsetshire Council"}],
        "persons": [
            person("1"),
            person("2", restricted=True),
            person("3", nhs_number="", date_of_death="2024-06-01", allocated_team=""),
        ],
        "events": [
            event("10", "1", "Request", event_end_date="2024-01-10",
                  event_outcome="Progress to Assessment"),
            event("11", "1", "Assessment", event_end_date="2024-01-20",
                  event_outcome="Progress to Support Planning / Services"),
            event("12", "1", "Service", **SERVICE),
            event("13", "1", "Review", event_start_date="2024-07-01"),
            event("14", "2", "Service", **SERVICE),
            event("15", "3", "Holiday"),
        ],
        "warnings": [
            {"warning_id": "20", "person_id": "1", "category": "SGC", "code": "MARAC",
             "start_date": "2024-02-01", "review_date": "2024-08-01",
             "narrative": "MARAC referral made."},
            {"warning_id": "21", "person_id": "3", "category": "OTH", "code": "MANHAN",
             "start_date": "2024-02-01", "narrative": "Two carers for transfers."},
        ],
        "contacts": [
            {"contact_id": "30", "person_id": "1", "name": "Pat Archer",
             "relationship": "Daughter", "is_unpaid_carer": "true", "is_key_worker": "false",
             "phone": "07700 900123"},
            {"contact_id": "31", "person_id": "1", "name": "Usha Franks", "is_key_worker": "true",
             "role": "Social Worker", "team": "Older People North", "phone": "01632 960001"},
        ],
        "legal": [
            {"person_id": "1", "kind": "DoLS", "status": "requested", "start_date": "2024-03-01"},
            {"person_id": "1", "kind": "LPA-health-welfare", "status": "registered",
             "start_date": "2020-05-05"},
            {"person_id": "2", "kind": "MHA-s117", "status": "active", "start_date": "2023-09-09"},
            {"person_id": "3", "kind": "Court-deputy", "status": "appointed",
             "start_date": "2022-01-01", "end_date": "2024-06-01"},
        ],
        "placements": [
            {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2024-04-01"},
        ],
    }  # fmt: skip


#: What ``standard()`` becomes: 1 + 3 patients + 2 allocated teams + events (1 + 2 + 2 + 1 + 2)
#: + 2 warnings + 2 contacts + 4 legal + 1 placement; the Holiday event is quarantined.
CREATED = 1 + 3 + 2 + 8 + 2 + 2 + 4 + 1


def write_extract(folder: Path, rows: Rows) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, table_rows in rows.items():
        write_csv(folder / f"{table}.csv", HEADERS[table], table_rows, "utf-8")
    return folder


def run(
    engine: Engine, settings: Settings, codes: CodeMaps, location: str, **kw: Any
) -> RunSummary:
    return ingest(engine, settings, codes, CouncilAdapter(**kw), location)


def stored(engine: Engine, rtype: str | None = None) -> list[dict[str, Any]]:
    query = select(Resource.body)
    if rtype:
        query = query.where(Resource.resource_type == rtype)
    with engine.connect() as conn:
        return [orjson.loads(b) for b in conn.execute(query).scalars()]


def scr_labels(resource: dict[str, Any]) -> set[str]:
    return labels.label_codes(resource)


def mapped(records: list[SourceRecord], codes: CodeMaps) -> dict[str, list[dict[str, Any]]]:
    """Every record's resources (or issues), keyed by source key."""
    adapter, ctx = CouncilAdapter(), MapContext(codes=codes)
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        outcome = adapter.map(record, ctx)
        out[record.ref.key] = [m.resource for m in outcome.resources] or [
            {"issues": [str(i) for i in outcome.issues]}
        ]
    return out


def test_csv_extract_loads_valid_resources_idempotently(engine, settings, codes, tmp_path):
    folder = write_extract(tmp_path / "council", standard())
    first = run(engine, settings, codes, str(folder))
    assert (first.read, first.created, first.quarantined) == (19, CREATED, 1)
    bodies = stored(engine)
    assert [b for b in bodies if validate_resource(b)] == []
    types = sorted(b["resourceType"] for b in bodies)
    assert types.count("EpisodeOfCare") == 3 and types.count("Condition") == 3
    assert types.count("Flag") == 4 and types.count("Consent") == 2
    again = run(engine, settings, codes, str(folder))
    assert (again.created, again.updated, again.unchanged) == (0, 0, CREATED)


def test_unknown_event_type_is_quarantined_naming_the_field(engine, settings, codes, tmp_path):
    run(engine, settings, codes, str(write_extract(tmp_path / "council", standard())))
    [item] = list_items(engine)
    assert (item.field, item.file, item.line) == ("event_type", "events.csv", 7)
    assert "Holiday" in item.reason


def test_restricted_person_and_safeguarding_are_labelled(engine, settings, codes, tmp_path):
    run(engine, settings, codes, str(write_extract(tmp_path / "council", standard())))
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for body in stored(engine):
        who = body.get("subject") or body.get("patient") or body.get("for") or {}
        by_subject.setdefault(who.get("reference", body["id"]), []).append(body)
    patients = {p["identifier"][0]["value"]: p for p in stored(engine, "Patient")}
    restricted = patients["2"]
    assert scr_labels(restricted) == {labels.SOURCE_CONFIDENTIAL, labels.RESTRICTED_PERSON}
    assert labels.restricted() in restricted["meta"]["security"]
    for body in by_subject[f"Patient/{restricted['id']}"]:
        assert labels.SOURCE_CONFIDENTIAL in scr_labels(body), body["resourceType"]
    assert scr_labels(patients["1"]) == set()
    flags = {f["code"]["coding"][-1]["code"]: f for f in stored(engine, "Flag")}
    assert scr_labels(flags["MARAC"]) == {labels.SOURCE_CONFIDENTIAL}
    assert scr_labels(flags["MANHAN"]) == set()


def test_resources_carry_source_and_interweave_codes(engine, settings, codes, tmp_path):
    run(engine, settings, codes, str(write_extract(tmp_path / "council", standard())))
    patient = next(p for p in stored(engine, "Patient") if p["identifier"][0]["value"] == "1")
    council_id, nhs = patient["identifier"][:2]
    assert council_id["system"] == f"https://fhir.scr.example/Id/council-person/{ORG}"
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "02"
    care = next(e for e in stored(engine, "EpisodeOfCare") if "extension" in e)
    assert [c["code"] for c in care["type"][0]["coding"]] == ["Home Support", "HS"]
    assert care["extension"][0]["valueCodeableConcept"]["coding"][1]["code"] == "LTS-C"
    assert care["managingOrganization"]["identifier"]["value"] == ORG
    home = next(e for e in stored(engine, "EpisodeOfCare") if "extension" not in e)
    assert home["managingOrganization"]["identifier"] == {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "VXA01",
    }  # fmt: skip
    reasons = stored(engine, "Condition")
    assert {r["code"]["coding"][1]["code"] for r in reasons} == {"PS-PCS"}
    assert {r["clinicalStatus"]["coding"][0]["code"] for r in reasons} == {"active", "inactive"}


def test_what_ends_in_the_future_is_still_running(engine, settings, codes, tmp_path):
    """A care package, its support reason, a placement and a warning with a planned end date
    are current until that date passes; with a past one they are over."""
    rows = standard()
    rows["events"] = [
        event("12", "1", "Service", event_end_date="2099-12-31", **SERVICE),
        event("14", "2", "Service", event_end_date="2024-06-30", **SERVICE),
    ]
    rows["warnings"] = [
        {"warning_id": "20", "person_id": "1", "category": "OTH", "code": "MANHAN",
         "start_date": "2024-02-01", "end_date": "2099-01-01", "narrative": "Two carers."},
        {"warning_id": "21", "person_id": "3", "category": "OTH", "code": "MANHAN",
         "start_date": "2024-02-01", "end_date": "2024-03-01", "narrative": "Two carers."},
    ]  # fmt: skip
    rows["placements"] = [
        {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2024-01-01",
         "end_date": "2099-01-01"},
    ]  # fmt: skip
    run(engine, settings, codes, str(write_extract(tmp_path / "council", rows)))
    packages = {e["period"].get("end"): e["status"] for e in stored(engine, "EpisodeOfCare")}
    assert packages == {"2099-12-31": "active", "2024-06-30": "finished", "2099-01-01": "active"}
    reasons = {
        c["abatementDateTime"]: c["clinicalStatus"]["coding"][0]["code"]
        for c in stored(engine, "Condition")
    }
    assert reasons == {"2099-12-31": "active", "2024-06-30": "inactive"}
    flags = {f["period"].get("end"): f["status"] for f in stored(engine, "Flag")}
    assert {"2099-01-01": "active", "2024-03-01": "inactive"}.items() <= flags.items()


def test_an_unpaid_carer_with_a_role_is_a_carer_not_the_allocated_worker(codes, tmp_path):
    """'Main carer' is a daughter's role, not a council team's."""
    rows = standard()
    rows["contacts"] = [
        {"contact_id": "30", "person_id": "1", "name": "Pat Archer", "relationship": "Daughter",
         "is_unpaid_carer": "true", "is_key_worker": "false", "role": "Main carer", "team": "",
         "phone": "07700 900123"},
    ]  # fmt: skip
    folder = write_extract(tmp_path / "council", rows)
    found = mapped(list(CouncilAdapter().read(str(folder))), codes)
    (carer,) = next(v for k, v in found.items() if k.endswith("|contacts|30"))
    assert carer["resourceType"] == "RelatedPerson"
    assert carer["relationship"][-1]["coding"][0]["code"] == "IC"


@pytest.mark.parametrize(
    ("table", "change", "field"),
    [
        ("events", {"service_type": "Long Term Support: Moon Base"}, "service_type"),
        ("events", {"service_component": "Jet Pack"}, "service_component"),
        ("events", {"service_component": ""}, "service_component"),
        ("events", {"primary_support_reason": "Tired"}, "primary_support_reason"),
        ("events", {"event_outcome": "Went well"}, "event_outcome"),
        ("warnings", {"code": "GRUMPY"}, "code"),
        ("warnings", {"category": "XYZ"}, "category"),
        ("legal", {"kind": "Guardianship"}, "kind"),
        ("legal", {"status": "pending"}, "status"),
        ("persons", {"gender": "Q"}, "gender"),
    ],
)
def test_unknown_defined_values_are_refused_naming_the_field(codes, tmp_path, table, change, field):
    rows = standard()
    target = {"events": 2, "warnings": 0, "legal": 0, "persons": 0}[table]
    rows[table][target] |= change
    records = list(CouncilAdapter().read(str(write_extract(tmp_path, rows))))
    record = [r for r in records if r.ref.table == table][target]
    outcome = CouncilAdapter().map(record, MapContext(codes=codes))
    assert not outcome.ok
    assert outcome.issues[0].field == field


def test_missing_required_column_names_file_and_column(tmp_path):
    rows = standard()
    for row in rows["events"]:
        del row["event_type"]
    folder = write_extract(tmp_path, rows)
    write_csv(folder / "events.csv", [h for h in HEADERS["events"] if h != "event_type"],
              rows["events"], "utf-8")  # fmt: skip
    with pytest.raises(ExtractError, match=r"events\.csv: missing required column event_type"):
        list(CouncilAdapter().read(str(folder)))


def test_council_code_comes_from_the_file_else_the_caller(tmp_path):
    rows = standard()
    del rows["organisation"]
    folder = write_extract(tmp_path, rows)
    records = list(CouncilAdapter(org="E09000001").read(str(folder)))
    assert {r.ref.org for r in records} == {"E09000001"}
    with pytest.raises(ExtractError, match=r"no organisation\.csv and no council code"):
        list(CouncilAdapter().read(str(folder)))
    with pytest.raises(ExtractError, match=r"required file persons\.csv"):
        list(CouncilAdapter(org=ORG).read(str(tmp_path / "empty")))


def test_unknown_files_and_extra_columns_are_noted(tmp_path):
    rows = standard()
    rows["persons"][0]["shoe_size"] = "9"
    folder = write_extract(tmp_path, rows)
    write_csv(folder / "persons.csv", [*HEADERS["persons"], "shoe_size"], rows["persons"], "utf-8")
    (folder / "pets.csv").write_text("name\nRex\n", encoding="utf-8")
    adapter = CouncilAdapter()
    list(adapter.read(str(folder)))
    assert any("pets.csv" in n for n in adapter.notes)
    assert any("shoe_size" in n for n in adapter.notes)


# --- the JSON API -------------------------------------------------------------------------


def as_json(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as an API would send it: typed values, nulls for blanks."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value in ("true", "false"):
            out[key] = value == "true"
        elif key == "planned_units_per_week":
            out[key] = float(value)
        else:
            out[key] = value or None
    return out


class FakeCouncil:
    """An API over ``rows``: two people per page; ``faults`` answers queued per path."""

    def __init__(self, rows: Rows, faults: dict[str, list[Any]] | None = None) -> None:
        self.rows = rows
        self.faults = faults or {}
        self.calls: list[str] = []
        self.tokens: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, page = request.url.path, int(request.url.params.get("page", "1"))
        self.calls.append(f"{path}?page={page}")
        self.tokens.add(request.headers.get("Authorization", ""))
        queued = self.faults.get(f"{path}?page={page}")
        if queued:
            fault = queued.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        if path == "/api/people":
            items = [as_json(p) for p in self.rows["persons"]][(page - 1) * 2 : page * 2]
            more = page * 2 < len(self.rows["persons"])
            return httpx.Response(
                200, json={"items": items, "next_page": page + 1 if more else None}
            )
        pid = path.split("/")[-2]
        events = [as_json(e) for e in self.rows["events"] if e["person_id"] == pid]
        for e in events:
            del e["person_id"]
        return httpx.Response(200, json={"items": events, "next_page": None})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def pulled(council: FakeCouncil, sleeps: list[float] | None = None) -> list[SourceRecord]:
    record_sleep: Callable[[float], None] = (sleeps if sleeps is not None else []).append
    return list(pull(BASE, "s3cret", org=ORG, client=council.client(), sleep=record_sleep))


def test_api_pull_pages_through_people_and_events():
    rows = standard()
    council = FakeCouncil(rows)
    records = pulled(council)
    assert council.tokens == {"Bearer s3cret"}
    assert council.calls[:2] == ["/api/people?page=1", "/api/people/1/events?page=1"]
    assert "/api/people?page=2" in council.calls
    assert [r.ref.table for r in records].count("persons") == 3
    assert len([r for r in records if r.ref.table == "events"]) == len(rows["events"])
    first = records[0]
    assert (first.file, first.line) == (f"{BASE}/people?page=1", 1)


def test_api_records_map_like_the_csv_rows(codes, tmp_path):
    rows = {k: v for k, v in standard().items() if k in ("persons", "events")}
    from_csv = list(CouncilAdapter(org=ORG).read(str(write_extract(tmp_path, rows))))
    from_api = pulled(FakeCouncil(rows))
    assert {r.ref.key for r in from_api} == {r.ref.key for r in from_csv}
    assert mapped(from_api, codes) == mapped(from_csv, codes)


def test_api_retries_429_honouring_retry_after_and_5xx_with_backoff():
    faults = {
        "/api/people?page=1": [httpx.Response(429, headers={"Retry-After": "2"})],
        "/api/people/1/events?page=1": [httpx.Response(500), httpx.Response(503)],
        "/api/people/2/events?page=1": [httpx.ConnectError("connection refused")],
        "/api/people?page=2": [httpx.Response(429, headers={"Retry-After": "3600"})],
        "/api/people/3/events?page=1": [
            httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        ],
    }
    council, sleeps = FakeCouncil(standard(), faults), []
    records = pulled(council, sleeps)
    assert len(records) == 3 + 6
    assert council.calls.count("/api/people?page=1") == 2
    assert council.calls.count("/api/people/1/events?page=1") == 3
    # Retry-After as asked (capped at a minute; a date already past means now), else backoff.
    assert sleeps == [2.0, 0.5, 1.0, 0.5, 60.0, 0.0]


def test_api_gives_up_after_bounded_retries():
    faults = {"/api/people?page=1": [httpx.Response(502) for _ in range(3)]}
    with pytest.raises(CouncilApiError, match="HTTP 502 after 3 attempts"):
        list(pull(BASE, "t", org=ORG, client=FakeCouncil(standard(), faults).client(),
                  max_retries=2, sleep=lambda _s: None))  # fmt: skip


def test_api_refusal_raises_without_retrying_or_leaking_the_token():
    council = FakeCouncil(standard(), {"/api/people?page=1": [httpx.Response(401)]})
    with pytest.raises(CouncilApiError, match="HTTP 401 Unauthorized") as err:
        pulled(council)
    assert "s3cret" not in str(err.value)
    assert council.calls == ["/api/people?page=1"]


def test_ingest_from_an_api_url(engine, settings, codes, monkeypatch):
    monkeypatch.setenv("SCR_COUNCIL_TOKEN", "from-env")
    council = FakeCouncil({k: v for k, v in standard().items() if k in ("persons", "events")})
    summary = run(engine, settings, codes, BASE, org=ORG, client=council.client())
    assert (summary.created, summary.quarantined) == (3 + 2 + 8, 1)
    assert council.tokens == {"Bearer from-env"}
    monkeypatch.delenv("SCR_COUNCIL_TOKEN")
    with pytest.raises(ExtractError, match="no API token"):
        CouncilAdapter(org=ORG).read(BASE)


def _placements(engine) -> list[dict[str, Any]]:
    return [
        r
        for r in stored(engine, "EpisodeOfCare")
        if r["type"][0]["coding"][0]["code"] == "care-home-placement"
    ]


def _one_open(engine, table: str):
    items = [i for i in list_items(engine) if i.source_key.split("|")[2] == table]
    assert len(items) == 1, [i.brief() for i in items]
    return items[0]


def test_a_placement_ended_in_a_past_month_is_finished(engine, settings, codes, tmp_path):
    """An end given to the month (iso_date takes YYYY-MM) has passed once the month has."""
    rows = {
        "organisation": standard()["organisation"],
        "persons": [person("1")],
        "placements": [
            {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2020-01-01",
             "end_date": "2023-06"},
        ],
    }  # fmt: skip
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    [placement] = _placements(engine)
    assert placement["period"]["end"] == "2023-06"
    assert placement["status"] == "finished", placement["status"]


def test_an_api_event_replayed_from_quarantine_keeps_its_persons_restriction(
    engine, settings, codes
):
    """An API event with a read issue keeps the reader's joined fields in quarantine, as a CSV
    row does: replayed with the fix, a restricted person's care package stays confidential."""
    rows = {
        "persons": [person("2", restricted=True)],
        "events": [event("14", "2", "Service", **SERVICE)],
    }
    base = FakeCouncil(rows)

    class Odd(FakeCouncil):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            response = base(request)
            if request.url.path.endswith("/events"):
                body = response.json()
                body["items"][0]["provider_name"] = ["Borsetshire Home Care"]
                return httpx.Response(200, json=body)
            return response

    odd = Odd(rows)
    run(engine, settings, codes, BASE, org=ORG, client=odd.client(), token="t")
    item = _one_open(engine, "events")
    assert item.field == "provider_name"
    summary = replay(engine, settings, codes, [item.id], {"provider_name": "Borsetshire Home Care"})
    assert summary.quarantined == 0
    package = [
        r for r in stored(engine, "EpisodeOfCare")
        if "source-confidential" not in scr_labels(r)
    ]  # fmt: skip
    assert package == [], "restricted person's care package stored without source-confidential"


def test_an_api_person_with_a_read_issue_still_has_their_events_pulled(engine, settings, codes):
    """A person item with one bad value is quarantined; their events are still pulled and wait
    in quarantine (nothing is lost), to be replayed once the person is taken in."""
    rows = {
        "persons": [person("1")],
        "events": [
            event("12", "1", "Service", **SERVICE),
            event("13", "1", "Review", event_start_date="2024-07-01"),
        ],
    }
    base = FakeCouncil(rows)

    class Odd(FakeCouncil):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            response = base(request)
            if request.url.path == "/api/people":
                body = response.json()
                body["items"][0]["address"] = {"line1": "1 Mill Lane"}
                return httpx.Response(200, json=body)
            return response

    odd = Odd(rows)
    summary = run(engine, settings, codes, BASE, org=ORG, client=odd.client(), token="t")
    item = _one_open(engine, "persons")
    replay(engine, settings, codes, [item.id], {"address": "1 Mill Lane"})
    events_kept = [
        r for r in stored(engine)
        if r["resourceType"] in ("EpisodeOfCare", "Task", "Condition")
    ] + [i for i in list_items(engine, status=None) if "|events|" in i.source_key]  # fmt: skip
    assert events_kept, (
        f"events of person 1 vanished: read={summary.read} notes={summary.notes} calls={base.calls}"
    )


#: The council every extract of the tests below comes from.
COUNCIL: Rows = {"organisation": [{"code": ORG, "name": "Borsetshire Council"}]}


def test_a_corrected_end_date_is_judged_again(engine, settings, codes, tmp_path):
    """A placement quarantined for its end date, corrected to a past date, is stored finished:
    whether it has ended is worked out from the corrected date, not kept from the bad one."""
    rows = {
        **COUNCIL,
        "persons": [person("1")],
        "placements": [
            {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2023-01-01",
             "end_date": "31/12/2023"},
        ],
    }  # fmt: skip
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    item = _one_open(engine, "placements")
    assert item.field == "end_date"
    replay(engine, settings, codes, [item.id], {"end_date": "2023-12-31"})
    [placement] = _placements(engine)
    assert placement["status"] == "finished", placement["status"]


def test_a_corrected_key_column_names_the_row_the_source_will_send(
    engine, settings, codes, tmp_path
):
    """A placement has no id column: its key is person and start date. Corrected on
    replay, the start date names the row as the source's own fix will, so that fix, when it
    comes, is the same placement (unchanged), not a second one."""
    placement = {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2024-13-01"}
    rows = {**COUNCIL, "persons": [person("1")], "placements": [placement]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    item = _one_open(engine, "placements")
    done = replay(engine, settings, codes, [item.id], {"start_date": "2024-12-01"})
    assert done.created == 1 and list_items(engine) == []
    fixed = {**rows, "placements": [{**placement, "start_date": "2024-12-01"}]}
    again = run(engine, settings, codes, str(write_extract(tmp_path / "c", fixed)))
    assert (again.created, again.quarantined) == (0, 0)
    assert len(_placements(engine)) == 1


def test_a_corrected_care_home_moves_the_placement_rather_than_adding_one(
    engine, settings, codes, tmp_path
):
    """The care home is not part of a placement's key (an id made from it gave a restricted
    person's home away): a care home code the council corrects is the same placement, now at
    the corrected home, not a second placement leaving the wrong home a relationship."""
    placement = {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2024-12-01"}
    rows = {**COUNCIL, "persons": [person("1")], "placements": [placement]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    fixed = {**rows, "placements": [{**placement, "care_home_ods": "VXA02"}]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", fixed)))
    [stored] = _placements(engine)
    assert stored["managingOrganization"]["identifier"]["value"] == "VXA02"
    both = {**rows, "placements": [placement, {**placement, "care_home_ods": "VXA02"}]}
    twice = run(engine, settings, codes, str(write_extract(tmp_path / "c", both)))
    assert (
        twice.quarantined == 1
        and "duplicate row identifier" in _one_open(engine, "placements").reason
    )


def test_a_placement_stored_under_its_old_key_is_withdrawn_when_the_row_is_taken_in(
    engine, settings, codes, tmp_path, monkeypatch
):
    """A store made before placements were keyed by person and start date holds them under
    person|care home|start, which no run meets again: when the council ended the placement,
    the old one stayed active and the home kept its relationship. The row now retires its old
    key as it is taken in."""
    placement = {"person_id": "1", "care_home_ods": "VXA01", "start_date": "2024-12-01"}
    rows = {**COUNCIL, "persons": [person("1")], "placements": [placement]}
    real = extract.key_columns
    monkeypatch.setattr(extract, "key_columns", lambda m: (
        ["person_id", "care_home_ods", "start_date"] if m.get("table") == "placements" else real(m)
    ))  # fmt: skip
    run(engine, settings, codes, str(write_extract(tmp_path / "before", rows)))
    monkeypatch.undo()
    ended = {**rows, "placements": [{**placement, "end_date": "2025-01-31"}]}
    done = run(engine, settings, codes, str(write_extract(tmp_path / "after", ended)))
    statuses = sorted(p["status"] for p in _placements(engine))
    assert statuses == ["entered-in-error", "finished"] and done.deleted == 1
    again = run(engine, settings, codes, str(write_extract(tmp_path / "after", ended)))
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_a_row_given_its_missing_id_is_stored_under_it(engine, settings, codes, tmp_path):
    """An event with no id waits under its line; given its id on replay it is stored under
    that id, its item is closed, and the source's row with the id changes nothing."""
    service = event("12", "1", "Service", **SERVICE)
    rows = {**COUNCIL, "persons": [person("1")], "events": [{**service, "event_id": ""}]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    item = _one_open(engine, "events")
    assert re.search(r"\|line-2-[0-9a-f]{12}$", item.source_key)
    done = replay(engine, settings, codes, [item.id], {"event_id": "12"})
    assert done.quarantined == 0 and list_items(engine) == []
    again = run(
        engine, settings, codes, str(write_extract(tmp_path / "c", {**rows, "events": [service]}))
    )
    assert (again.created, again.updated, again.quarantined) == (0, 0, 0)
    assert len(stored(engine, "EpisodeOfCare")) == 1


def test_a_corrected_key_that_still_fails_keeps_one_item(engine, settings, codes, tmp_path):
    """Given its id but still failing, the record's one item stays open under its new key."""
    service = event("12", "1", "Service", **SERVICE)
    bad = {**service, "event_id": "", "event_start_date": "soon"}
    run(
        engine,
        settings,
        codes,
        str(write_extract(tmp_path / "c", {**COUNCIL, "persons": [person("1")], "events": [bad]})),
    )
    item = _one_open(engine, "events")
    replay(engine, settings, codes, [item.id], {"event_id": "12"})
    [still] = list_items(engine)
    assert (still.id, still.field) == (item.id, "event_start_date")
    assert still.source_key.endswith("|events|12")


@pytest.mark.parametrize(
    ("fix", "named"),
    [
        ({"person_id": "2"}, "person_id: the reader joins persons.csv"),
        ({"_person_restricted": "false"}, "_person_restricted: joined by the reader"),
        ({"provider_nmae": "Home Care"}, "provider_nmae: not a column the events map reads"),
    ],
)
def test_a_correction_replay_cannot_take_is_refused(engine, settings, codes, tmp_path, fix, named):
    """A restricted person's event moved to another person would keep the first person's
    restriction (or lose it); a joined field is not the source's to correct; a misspelt column
    would change nothing. Each is refused, naming the item and the field, and nothing is run."""
    bad = event("14", "2", "Service", **{**SERVICE, "event_start_date": "soon"})
    rows = {**COUNCIL, "persons": [person("2", restricted=True)], "events": [bad]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    item = _one_open(engine, "events")
    with pytest.raises(CorrectionRefused, match=named) as refused:
        replay(engine, settings, codes, [item.id], {"event_start_date": "2024-01-10", **fix})
    assert f"item {item.id} (" in str(refused.value)
    assert _one_open(engine, "events").id == item.id
    assert stored(engine, "EpisodeOfCare") == []


def test_a_persons_restricted_flag_is_not_corrected_on_replay(engine, settings, codes, tmp_path):
    """The flag is joined into every row of the person as read: corrected on the person alone,
    their events would stay unrestricted while the person became restricted."""
    rows = {**COUNCIL, "persons": [person("1", date_of_birth="1940-02-31")]}
    run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    item = _one_open(engine, "persons")
    fix = {"date_of_birth": "1940-03-02", "restricted": "true"}
    with pytest.raises(CorrectionRefused, match="restricted: the reader joins this value"):
        replay(engine, settings, codes, [item.id], fix)


def test_a_persons_row_whose_quote_swallows_others_stops_the_read(
    engine, settings, codes, tmp_path
):
    """The restrictions of the persons swallowed by an open quote are not read: their events,
    people stored from an earlier extract, would be shared as unrestricted."""
    rows = {
        **COUNCIL,
        "persons": [person("1", address="OPEN"), person("2", restricted=True), person("3")],
        "events": [event("14", "2", "Service", **SERVICE)],
    }
    folder = write_extract(tmp_path / "c", rows)
    path = folder / "persons.csv"
    path.write_bytes(path.read_bytes().replace(b"OPEN", b'"1 Mill Lane'))
    with pytest.raises(ExtractError, match=r"persons\.csv, line 2: a quoted field opened"):
        run(engine, settings, codes, str(folder))
    assert stored(engine) == [] and list_items(engine) == []


@pytest.mark.parametrize("restricted_first", [True, False])
def test_a_person_listed_twice_is_restricted_if_either_copy_says_so(
    engine, settings, codes, tmp_path, restricted_first
):
    """persons.csv lists a person twice, once restricted: their care rows took the last copy's
    value and the Patient the first's, so which came first decided whether their address and
    care package were shown to other organisations. Either copy restricting restricts both."""
    restricted = person("2", restricted=True)
    plain = restricted | {"restricted": "false"}
    rows = {
        **COUNCIL,
        "persons": [restricted, plain] if restricted_first else [plain, restricted],
        "events": [event("14", "2", "Service", **SERVICE)],
    }
    done = run(engine, settings, codes, str(write_extract(tmp_path / "c", rows)))
    assert (
        done.quarantined == 1 and "duplicate row identifier" in _one_open(engine, "persons").reason
    )
    with engine.connect() as conn:
        bodies = [orjson.loads(b) for b in conn.execute(select(Resource.body)).scalars()]
    shown = {b["resourceType"]: labels.label_codes(b) for b in bodies}
    assert (
        labels.SOURCE_CONFIDENTIAL in shown["Patient"]
        and labels.SOURCE_CONFIDENTIAL in shown["EpisodeOfCare"]
    )
    assert "restricted-person" in shown["Patient"]
