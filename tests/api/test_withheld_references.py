"""A released item names nothing the same decision withholds: a restriction of a section, a
dissent or an own-organisation limit is decided at read time, so an encounter's diagnosis, a
problem list's entries or a medicine's reason must not carry the withheld problem's name (or
its id) to the user it is withheld from, on any read path.

Each item carries a marker (``[c1]``) in its text and in every display naming it, so that the
test can say what left."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, insert, select, update

from engine.api import create_app
from engine.canonical import content_hash, dumps
from engine.facts import row_facts
from engine.models import Resource
from tests.api.conftest import NHS, PATIENT, Store, Token, auth
from tests.web.test_pages import acknowledged, signed_in

R = cast(Table, Resource.__table__)
MASKED = {"extension": [{
    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked",
}]}  # fmt: skip
SCT = "http://snomed.info/sct"
SUBJECT = {"reference": f"Patient/{PATIENT}"}
#: The withheld problem, and what names it.
PROBLEM = "c0ffee00-0000-4000-8000-00000000c001"
NAMED = "Hypertension [c1]"
VISIT, PROBLEMS, MEDICINE, PLAN, READING = (
    f"c0ffee00-0000-4000-8000-0000000000{n}" for n in ("e1", "11", "m1", "p1", "01")
)


def condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": PROBLEM, "subject": SUBJECT,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": SCT, "code": "38341003", "display": NAMED}]},
    }  # fmt: skip


def reading() -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": READING, "status": "final", "subject": SUBJECT,
        "code": {"text": "Blood pressure [o1]"}, "effectiveDateTime": "2026-01-05",
    }  # fmt: skip


def visit(rid: str = VISIT) -> dict[str, Any]:
    return {
        "resourceType": "Encounter", "id": rid, "status": "finished", "subject": SUBJECT,
        "class": {"code": "AMB"}, "type": [{"text": f"Surgery consultation [{rid[-2:]}]"}],
        "period": {"start": "2026-01-05"},
        "diagnosis": [{"condition": {"reference": f"Condition/{PROBLEM}", "display": NAMED},
                       "rank": 1}],
        "reasonReference": [{"reference": f"Observation/{READING}",
                             "display": "Blood pressure [o1]"}],
    }  # fmt: skip


def problem_list() -> dict[str, Any]:
    return {
        "resourceType": "List", "id": PROBLEMS, "status": "current", "mode": "working",
        "title": "Problem list [l1]", "subject": SUBJECT,
        "entry": [
            {"item": {"reference": f"Condition/{PROBLEM}", "display": NAMED}},
            {"item": {"reference": f"Observation/{READING}", "display": "Blood pressure [o1]"}},
        ],
    }  # fmt: skip


def medicine() -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement", "id": MEDICINE, "status": "active",
        "subject": SUBJECT, "medicationCodeableConcept": {"text": "Ramipril [m1]"},
        "reasonReference": [{"reference": f"urn:uuid:{PROBLEM}", "display": NAMED}],
    }  # fmt: skip


def plan() -> dict[str, Any]:
    absolute = f"https://fhir.scr.example/fhir/Condition/{PROBLEM}/_history/1"
    return {
        "resourceType": "CarePlan", "id": PLAN, "status": "active", "intent": "plan",
        "subject": SUBJECT, "title": "Blood pressure plan [p1]",
        "addresses": [{"reference": absolute, "display": NAMED}],
    }  # fmt: skip


def privacy(rid: str, **provision: Any) -> dict[str, Any]:
    """A patient-privacy Consent the person gave their practice."""
    return {
        "resourceType": "Consent", "id": rid, "status": "active", "patient": SUBJECT,
        "scope": {"coding": [{"code": "patient-privacy"}]}, "dateTime": "2026-01-01",
        "performer": [{"display": "Dr Synthetic, Riverside"}], "provision": provision,
    }  # fmt: skip


RESTRICTION = privacy("c0ffee00-0000-4000-8000-0000000000d1", type="deny", code=[{"coding": [
    {"system": "https://fhir.scr.example/CodeSystem/scr-record-section",
     "code": "problems-active"}]}])  # fmt: skip
DISSENT = privacy("c0ffee00-0000-4000-8000-0000000000d2", type="deny")


def put(store: Store, resource: dict[str, Any], org: str = "Y00001") -> None:
    """A row as ingest writes it for the store's person, its facts derived from its body; its
    references keep their displays, as a source may send them (GP Connect's are dropped at
    ingest, adapters/gpconnect/shape.py)."""
    with store.engine.begin() as conn:
        patient = conn.execute(select(R).where(R.c.id == PATIENT)).mappings().one()
        values = {
            "id": resource["id"], "resource_type": resource["resourceType"], "version_id": 1,
            "last_updated": datetime.now(UTC), "content_hash": content_hash(resource),
            "body": dumps(resource), "status": "active",
            "source_key": f"gpconnect|{org}|{resource['resourceType']}|{resource['id']}",
            "source_system": "gpconnect",
            "source_org": org, "patient_id": PATIENT, "labels": "",
            "run_id": patient["run_id"], **row_facts(resource, org, ""),
        }  # fmt: skip
        conn.execute(insert(R).values(values))


def recorded(store: Store, *directives: dict[str, Any]) -> None:
    """The record above, held by the person's practice, and their directives."""
    for resource in (condition(), reading(), visit(), problem_list(), medicine(), plan()):
        put(store, resource)
    for directive in directives:
        put(store, directive)


def everything(client: TestClient, token: str, **params: Any) -> dict[str, Any]:
    response = client.get(
        f"/fhir/Patient/{PATIENT}/$everything", params=params, headers=auth(token)
    )
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in doc.get("entry", [])}


def assert_masked(shown: dict[str, dict[str, Any]]) -> None:
    """What the user may not see of the problem is nowhere; what they may see is as stored."""
    text = orjson.dumps(shown).decode()
    assert "[c1]" not in text and PROBLEM not in text, "the withheld problem is named"
    assert shown[VISIT]["diagnosis"] == [{"condition": MASKED, "rank": 1}]
    assert shown[VISIT]["reasonReference"] == visit()["reasonReference"], "a shown item stays"
    assert shown[PROBLEMS]["entry"] == problem_list()["entry"][1:]
    assert shown[MEDICINE]["reasonReference"] == [MASKED]
    assert shown[PLAN]["addresses"] == [MASKED]
    assert all("versionId" not in shown[i].get("meta", {}) for i in (VISIT, PROBLEMS, PLAN))


def test_a_restricted_problem_is_named_by_nothing_everything_releases(
    client: TestClient, store: Store, token: Token
) -> None:
    """The person restricted their problems: another practice's GP gets the consultation, the
    problem list, the medicine and the plan, none of them naming (or pointing at) the problem,
    and the same count as before."""
    recorded(store, RESTRICTION)
    owner = by_id(everything(client, token("gp")))
    assert owner[VISIT]["diagnosis"][0]["condition"]["display"] == NAMED, "its practice sees it"
    doc = everything(client, token("other-gp"))
    shown = by_id(doc)
    assert PROBLEM not in shown and {VISIT, PROBLEMS, MEDICINE, PLAN, READING} <= set(shown)
    assert doc["total"] == len(shown)
    assert_masked(shown)
    included = everything(client, token("other-gp"), _revinclude="Provenance:target")
    targets = [t["reference"] for r in by_id(included).values()
               if r["resourceType"] == "Provenance" for t in r["target"]]  # fmt: skip
    assert f"Encounter/{VISIT}" in targets, "a masked item's Provenance names no version"


def test_every_page_masks_what_the_whole_record_withholds(
    client: TestClient, store: Store, token: Token
) -> None:
    """The problem (a Condition) sorts before the items naming it, so the page holding them
    never holds it; each page has the whole record's total."""
    recorded(store, RESTRICTION)
    t = token("other-gp")
    whole = everything(client, t)
    pages = [everything(client, t, _count=1, _offset=n) for n in range(whole["total"])]
    assert {p["total"] for p in pages} == {whole["total"]}
    shown = {i: r for p in pages for i, r in by_id(p).items()}
    assert shown == by_id(whole)
    assert_masked(shown)


def test_since_masks_what_an_item_unchanged_since_withholds(
    client: TestClient, store: Store, token: Token
) -> None:
    """``_since`` reads only what changed, but the problem, unchanged for years, is withheld
    all the same."""
    recorded(store, RESTRICTION)
    with store.engine.begin() as conn:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        conn.execute(update(R).where(R.c.id == PROBLEM).values(last_updated=old))
    t = token("other-gp")
    shown = by_id(everything(client, t, _since="2025-01-01T00:00:00Z"))
    assert {VISIT, PROBLEMS, MEDICINE, PLAN} <= set(shown)
    assert_masked(shown)


def search(client: TestClient, token: str, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def every_path(client: TestClient, token: str) -> list[dict[str, dict[str, Any]]]:
    """The items naming the problem as each read path other than the whole record gives them:
    a search of their type, a read by id, ``$everything`` narrowed by ``_type``."""
    typed = everything(client, token, _type="Encounter,List,MedicationStatement,CarePlan")
    searched = {
        **by_id(search(client, token, "Encounter", patient=PATIENT)),
        **by_id(search(client, token, "MedicationStatement", patient=PATIENT)),
        **by_id(search(client, token, "CarePlan", patient=PATIENT)),
        PROBLEMS: by_id(typed)[PROBLEMS],
    }
    read = {
        i: search(client, token, f"{t}/{i}")
        for t, i in (("Encounter", VISIT), ("List", PROBLEMS), ("MedicationStatement", MEDICINE),
                     ("CarePlan", PLAN))
    }  # fmt: skip
    return [by_id(typed), searched, read]


def test_a_search_a_read_by_id_and_a_typed_everything_mask_alike(
    client: TestClient, store: Store, token: Token
) -> None:
    """A read that asks for no Condition still withholds the problem from the user, and so
    masks whatever names it, as the whole record does."""
    recorded(store, RESTRICTION)
    t = token("other-gp")
    whole = by_id(everything(client, t))
    for shown in every_path(client, t):
        assert_masked(shown)
        assert all(shown[i] == whole[i] for i in (VISIT, PROBLEMS, MEDICINE, PLAN))


def test_a_reference_to_an_item_the_user_may_see_is_kept_whatever_was_asked(
    client: TestClient, store: Store, token: Token
) -> None:
    """Only what the decision withholds is masked: the practice's own GP, asking for encounters
    alone, still reads the diagnosis its practice recorded."""
    recorded(store, RESTRICTION)
    t = token("gp")
    for shown in every_path(client, t):
        assert shown[VISIT] == visit() and shown[PROBLEMS] == problem_list()
        assert shown[MEDICINE] == medicine() and shown[PLAN] == plan()


def test_a_problem_judged_on_its_body_is_masked_alike(
    client: TestClient, store: Store, token: Token
) -> None:
    """A problem whose stored facts were derived by other rules is judged on its body: when
    no read asks for its type, it is still withheld, and still masked; a reading stored so
    is still shown."""
    recorded(store, RESTRICTION)
    with store.engine.begin() as conn:
        stale = R.c.id.in_([PROBLEM, READING])
        conn.execute(update(R).where(stale).values(facts_version="other-rules", section=None))
    t = token("other-gp")
    for shown in every_path(client, t):
        assert_masked(shown)


def test_what_a_dissent_keeps_from_the_user_is_not_named_by_their_own_items(
    client: TestClient, store: Store, token: Token
) -> None:
    """Under a dissent another practice sees only its own items: its own consultation for the
    problem the person's practice recorded must not name it."""
    recorded(store, DISSENT)
    theirs = "c0ffee00-0000-4000-8000-0000000000e2"
    put(store, visit(theirs), org="Y00002")
    shown = by_id(everything(client, token("other-gp")))
    assert set(shown) == {theirs}, "only their own item"
    assert shown[theirs]["diagnosis"] == [{"condition": MASKED, "rank": 1}]
    assert shown[theirs]["reasonReference"] == [MASKED], "the practice's reading is withheld too"
    assert "[c1]" not in str(shown) and "[o1]" not in str(shown)


@pytest.fixture
def web(store: Store) -> Iterator[TestClient]:
    """A browser's view of the app, as the web pages' tests have it."""
    with TestClient(
        create_app(store.settings, store.engine), base_url="https://testserver",
        follow_redirects=False,
    ) as c:  # fmt: skip
        yield c


def test_the_record_page_names_no_withheld_problem(
    web: TestClient, store: Store, token: Token
) -> None:
    recorded(store, RESTRICTION)
    acknowledged(signed_in(web, token("other-gp")))
    page = web.get(f"/record/{NHS}")
    assert page.status_code == 200
    assert "Ramipril [m1]" in page.text and "[c1]" not in page.text


TOPIC, CONSULTATION = "c0ffee00-0000-4000-8000-0000000000t1", "c0ffee00-0000-4000-8000-0000000000t0"


def topic() -> dict[str, Any]:
    """A GP Connect consultation topic: titled with the problem it discussed, listing what was
    recorded under it, naming the problem nowhere else (nothing links it to the Condition)."""
    return {
        "resourceType": "List", "id": TOPIC, "status": "current", "mode": "snapshot",
        "title": NAMED, "subject": SUBJECT, "encounter": {"reference": f"Encounter/{VISIT}"},
        "code": {"coding": [{"system": SCT, "code": "25851000000105", "display": "Topic (EHR)"}]},
        "entry": [{"item": {"reference": f"Observation/{READING}"}}],
    }  # fmt: skip


def consultation() -> dict[str, Any]:
    """The consultation's own List, of its topics."""
    return {
        "resourceType": "List", "id": CONSULTATION, "status": "current", "mode": "snapshot",
        "title": "Surgery consultation", "subject": SUBJECT,
        "code": {"coding": [{"system": SCT, "code": "325851000000107",
                             "display": "Consultation encounter type"}]},
        "entry": [{"item": {"reference": f"List/{TOPIC}"}}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("restricted", "status"),
    [("problems-active", "active"), ("problems-past", "resolved"), ("lists", "active")],
)
def test_a_consultation_topic_titled_with_a_restricted_problem_is_withheld_with_it(
    client: TestClient, store: Store, token: Token, restricted: str, status: str
) -> None:
    """A topic's title is the problem's name, and nothing stored says which problem it names:
    a restriction of the problems (active, or past: a topic may be about either) covers the
    person's consultation topics, as a restriction of source lists does (topics were lists until
    they were split out), so another practice reads neither the topic nor its title;
    what was recorded under it is shown as before, and the consultation's List keeps no entry
    for it. The practice sees both."""
    directive = privacy("c0ffee00-0000-4000-8000-0000000000d3", type="deny", code=[{"coding": [
        {"system": "https://fhir.scr.example/CodeSystem/scr-record-section",
         "code": restricted}]}])  # fmt: skip
    put(store, condition() | {"clinicalStatus": {"coding": [{"code": status}]}})
    for resource in (reading(), visit(), directive, topic()):
        put(store, resource)
    put(store, consultation())
    owner = by_id(everything(client, token("gp")))
    assert owner[TOPIC] == topic() and owner[CONSULTATION] == consultation()
    doc = everything(client, token("other-gp"))
    shown = by_id(doc)
    assert TOPIC not in shown and TOPIC not in str(shown)
    if restricted == "lists":  # the consultation's own List is a list: withheld too
        assert CONSULTATION not in shown and shown[PROBLEM]["code"] == condition()["code"]
    else:
        assert "[c1]" not in orjson.dumps(shown).decode()
        assert "entry" not in shown[CONSULTATION], "no count of what the list held is left"
    assert doc["total"] == len(shown)
    assert shown[READING] == reading()
