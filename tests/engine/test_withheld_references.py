"""The read path names nothing the decision withholds: what the whole record withholds is known
on every page and every narrowed read, only an item whose stored body names some of it is
parsed and written again, and what is counted stays as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, insert, select, update

from consent import Decision, Request, decide, mask
from engine.canonical import content_hash, dumps
from engine.facts import row_facts
from engine.gate import _naming, _standing
from engine.models import Resource
from tests.consent.personas import GP, NOW, POLICY, directive, facts, typical, who
from tests.engine.test_gate import PATIENT_ID, read, store, user

__all__ = ["store"]
R = cast(Table, Resource.__table__)
MASKED = "data-absent-reason"


def _observations(engine: Engine) -> dict[int, str]:
    """The person's observations by value (see ``test_gate``: 120 and 130 shown to every
    practice, the confidential one only to its own, the sensitive one to none)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.c.id, R.c.body).where(R.c.resource_type == "Observation")
        ).all()
    return {orjson.loads(b).get("valueQuantity", {}).get("value", 0): i for i, b in rows}


def _confidential(engine: Engine) -> str:
    """The reading its practice sees and no other does."""
    with engine.connect() as conn:
        found = select(R.c.id).where(R.c.labels.contains("source-confidential"))
        return str(conn.execute(found).scalar_one())


def _put(engine: Engine, resource: dict[str, Any]) -> None:
    """A row of the person from their practice, its facts derived from its body."""
    with engine.begin() as conn:
        patient = conn.execute(select(R).where(R.c.id == PATIENT_ID)).mappings().one()
        values = {
            "id": resource["id"], "resource_type": resource["resourceType"], "version_id": 1,
            "last_updated": datetime.now(UTC), "content_hash": content_hash(resource),
            "body": dumps(resource), "status": "active", "source_system": "gpconnect",
            "source_key": f"gpconnect|Y00001|Observation|{resource['id']}",
            "source_org": "Y00001", "patient_id": PATIENT_ID,
            "labels": "", "run_id": patient["run_id"], **row_facts(resource, "Y00001", ""),
        }  # fmt: skip
        conn.execute(insert(R).values(values))


def _panel(rid: str, *members: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid, "status": "final",
        "subject": {"reference": f"Patient/{PATIENT_ID}"}, "code": {"text": "Panel"},
        "hasMember": [{"reference": f"Observation/{m}", "display": "named"} for m in members],
    }  # fmt: skip


def test_only_an_item_naming_a_withheld_one_is_written_again(store):  # type: ignore[no-untyped-def]
    """Another practice: the panel naming the confidential reading is masked, every other item
    is still its stored JSON, and the counts are those of the record without the panel's
    names (one more shown, none more withheld)."""
    engine, _ = store
    before = read(engine, user("Y00002"))
    shown = _observations(engine)[120]
    _put(engine, _panel("panel-1", _confidential(engine), shown))
    after = read(engine, user("Y00002"))
    assert after.total == before.total + 1 and after.withheld == before.withheld
    with engine.connect() as conn:
        stored = {i: b for i, b in conn.execute(select(R.c.id, R.c.body))}
    (panel,) = [orjson.loads(i.json) for i in after.items if i.id == "panel-1"]
    assert [m.get("reference") for m in panel["hasMember"]] == [None, f"Observation/{shown}"]
    assert MASKED in str(panel["hasMember"][0]) and "named" in str(panel["hasMember"][1])
    assert all(i.json == stored[i.id] for i in after.items if i.id != "panel-1")
    assert [i.versioned for i in after.items if i.id == "panel-1"] == [False]


def test_a_read_by_id_or_since_masks_alike_and_counts_only_what_it_asked(store):  # type: ignore[no-untyped-def]
    """The confidential reading is not asked for by a read of the panel, nor changed since
    it: it is withheld all the same, and counted by neither."""
    engine, _ = store
    confidential = _confidential(engine)
    _put(engine, _panel("panel-2", confidential))
    with engine.begin() as conn:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        conn.execute(update(R).where(R.c.id == confidential).values(last_updated=old))
    other = user("Y00002")
    by_id = read(engine, other, frozenset({"Observation"}), ids=("panel-2",))
    since = read(engine, other, since=datetime(2025, 1, 1, tzinfo=UTC))
    for released in (by_id, since):
        (panel,) = [orjson.loads(i.json) for i in released.items if i.id == "panel-2"]
        assert MASKED in str(panel["hasMember"]) and "named" not in str(panel), released
    assert by_id.total == 1 and by_id.withheld == {}
    assert since.withheld == {"labels.excluded": 1}, "the sensitive reading, changed since"
    assert read(engine, user("Y00001"), ids=("panel-2",)).items[0].versioned, "its owner's"


def test_a_read_of_another_row_counts_as_before(store):  # type: ignore[no-untyped-def]
    engine, _ = store
    confidential = read(engine, user("Y00002"), ids=(_confidential(engine),))
    assert confidential.items == () and confidential.withheld == {"labels.excluded": 1}


def _decision(**kw: Any) -> Decision:
    gp, asked = who("clinical"), Request("search", frozenset({"Encounter"}))
    return decide(gp, facts(typical(gp), **kw), "TREAT", asked, NOW, POLICY)


def test_a_row_read_without_its_body_stands_as_the_whole_record_has_it() -> None:
    """Asked for and of an allowed type, it was held back by its labels or organisation; not
    asked for, it is judged on its facts, or on its body when they are stale (unless its type
    alone withholds it)."""
    plain = _decision()
    restricted = _decision(directives=(directive("restrict-category", category="problems-active"),))
    version = POLICY.facts_version
    problem = ("Condition", "Y99999", "problems-active", "", version)
    assert (
        _standing(("Encounter", GP, "encounters", "", version, True), plain, POLICY) == "withheld"
    )
    assert _standing((*problem, False), plain, POLICY) == "shown"
    assert _standing((*problem, True), plain, POLICY) == "shown", "not a type asked for"
    assert _standing((*problem, False), restricted, POLICY) == "withheld"
    assert _standing(("Condition", GP, None, None, None, False), plain, POLICY) == "unknown"
    assert _standing(("Basic", GP, None, None, "old", False), plain, POLICY) == "withheld"


_ID = st.text("abcdef0123456789-", min_size=8, max_size=12)
_FORM = st.sampled_from(["{t}/{i}", "https://x.example/R4/{t}/{i}", "{t}/{i}/_history/2",
                         "urn:uuid:{i}", '{t}/{i}"x', "{t}/{i}\\u00e9"])  # fmt: skip


@st.composite
def _referring(draw: st.DrawFn) -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
    """A resource referring to some of a record's ids, in any of the ways a reference may be
    written, some of them withheld, and ids it never mentions."""
    ids = draw(st.lists(_ID, min_size=1, max_size=10, unique=True))
    refs = [
        {"reference": draw(_FORM).format(t="Condition", i=i), "display": "named"}
        for i in draw(st.lists(st.sampled_from(ids), max_size=6))
    ]
    resource = {"resourceType": "Encounter", "id": "e", "status": "finished",
                "diagnosis": [{"condition": r} for r in refs],
                "extension": [{"url": "u", "valueReference": r} for r in refs[:2]]}  # fmt: skip
    withheld = frozenset(draw(st.lists(st.sampled_from(ids), max_size=len(ids))))
    unseen = frozenset(i for i in draw(st.lists(_ID, max_size=8)) if i not in str(resource))
    return resource, withheld, unseen


@settings(max_examples=300, deadline=None)
@given(_referring())
def test_a_body_naming_a_withheld_item_is_always_found_and_others_never(
    case: tuple[dict[str, Any], frozenset[str], frozenset[str]],
) -> None:
    """Never a miss, whatever the number of ids (each searched for, or each reference read):
    a body whose mask names fewer things is found; one not holding any of the ids is not,
    unless a reference in it is written with an escape (then parsed, to be sure)."""
    resource, withheld, unseen = case
    d = decide(who("clinical"), facts(typical(who("clinical"))), "TREAT", Request("everything"),
               NOW, POLICY)  # fmt: skip
    body = dumps(resource)
    if mask(resource, d, POLICY, GP, withheld) != mask(resource, d, POLICY, GP):
        assert _naming(withheld)(body)
    assert b"\\" in body or not _naming(unseen)(body)
