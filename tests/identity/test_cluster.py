"""From pair decisions to people: no chain past a refusal, pins honoured, deterministic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from engine.identity.batch import match_all
from engine.identity.cluster import Pins, cluster
from engine.identity.decide import MatchDecision, decide
from engine.identity.features import Demographics
from engine.identity.moves import Edge, Move, plan
from tests.identity.people import NHS_A, NHS_B, NHS_C, RULES, person


def _links(records: dict[str, Demographics]) -> list[tuple[str, str, MatchDecision]]:
    ids = sorted(records)
    out = []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            d = decide(records[a], records[b], RULES)
            if d.outcome == "link":
                out.append((a, b, d))
    return out


def _people(records: dict[str, Demographics], pins: Pins | None = None) -> list[list[str]]:
    def judge(a: str, b: str) -> MatchDecision:
        return decide(records[a], records[b], RULES)

    return cluster(records, _links(records), judge, pins)


def test_a_record_without_number_never_bridges_two_conflicting_numbers() -> None:
    """C (no NHS number) scores a link with both A and B, whose numbers differ; A's is stronger."""
    records = {
        "a": person(nhs=NHS_A),
        "b": person(nhs=NHS_B, postcode="BO2 2BB", line="2 Back Lane"),
        "c": person(council_style=True),
    }
    assert _people(records) == [["a", "c"], ["b"]]


def test_a_record_matching_two_known_different_people_equally_is_held_for_review() -> None:
    """Namesakes born the same day with different NHS numbers are certainly two people; a
    council record (no number) at a third address matches both equally: joining it to either
    would be a coin toss, so it joins neither and both pairs go to review."""
    records = {
        "gp1": person(nhs=NHS_A, line="1 Brook St", postcode="BO1 1AA"),
        "gp2": person(nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
        "council": person(line="5 Elm Way", postcode="BO5 5EE", council_style=True),
    }
    result = match_all(records, RULES)
    assert result.people == [["council"], ["gp1"], ["gp2"]]
    assert [(a, b) for a, b, _ in result.review] == [("council", "gp1"), ("council", "gp2")]


def test_a_pair_held_for_review_is_not_merged_through_a_third_record() -> None:
    """a and b (namesakes born a day apart, other homes) are only a question; c (no
    address) links to each. A chain through c must not answer it: a and b stay apart, and
    their pair stays in review."""
    records = {
        "a": person(born="1980-01-01", line="1 Brook St", postcode="BO1 1AA"),
        "b": person(born="1980-01-02", line="9 Hill Rd", postcode="BO2 2BB"),
        "c": replace(person(born="1980-01-01"), postcode=None, address_tokens=frozenset()),
    }
    assert decide(records["a"], records["b"], RULES).outcome == "review"
    assert decide(records["c"], records["a"], RULES).outcome == "link"
    assert decide(records["c"], records["b"], RULES).outcome == "link"
    result = match_all(records, RULES)
    assert ["a", "b", "c"] not in result.people
    assert ("a", "b") in [(a, b) for a, b, _ in result.review]


def test_a_record_refused_its_strongest_link_takes_no_weaker_one() -> None:
    """z (council, no number) lives at x's home with x's details; y, x's other GP record,
    records the wrong sex, so z may not join x and y. w is a namesake elsewhere with another
    number: z's weaker link to w would be a false merge, so z stays alone, both in review."""
    records = {
        "x": person(nhs=NHS_A),
        "y": person(nhs=NHS_A, sex="female", line="7 Oak Row", postcode="BO7 7GG"),
        "w": person(nhs=NHS_B, line="9 Hill Rd", postcode="BO2 2BB"),
        "z": person(council_style=True),
    }
    assert decide(records["z"], records["w"], RULES).outcome == "link"
    result = match_all(records, RULES)
    assert result.people == [["w"], ["x", "y"], ["z"]]
    assert {(a, b) for a, b, _ in result.review} == {("x", "z"), ("w", "z"), ("y", "z")}


def test_verified_links_are_joined_first() -> None:
    """A and B share a verified number; C links to B only through a weaker score."""
    records = {
        "a": person(nhs=NHS_A, given=("John",)),
        "b": person(nhs=NHS_A, given=("Jon",), postcode="BO2 2BB", line="9 Hill Rd"),
        "c": person(council_style=True, given=("John",)),
    }
    assert _people(records) == [["a", "b", "c"]]


def test_manual_apart_pin_splits_what_rules_would_join() -> None:
    records = {"a": person(nhs=NHS_A), "b": person(nhs=NHS_A)}
    assert _people(records, Pins(apart={("a", "b")})) == [["a"], ["b"]]


def test_manual_together_pin_joins_what_rules_keep_apart() -> None:
    records = {"a": person(nhs=NHS_A), "b": person(nhs=NHS_B, born="1980-01-01")}
    assert _people(records, Pins(together={("a", "b")})) == [["a", "b"]]


def test_together_pins_never_override_an_apart_pin() -> None:
    records = {"a": person(nhs=NHS_A), "b": person(nhs=NHS_B), "c": person(nhs=NHS_C)}
    pins = Pins(together={("a", "b"), ("b", "c")}, apart={("a", "c")})
    people = _people(records, pins)
    assert ["a", "b", "c"] not in people
    assert ["a", "b"] in people


def test_match_all_groups_people_and_queues_what_it_cannot_decide() -> None:
    records = {
        "gp": person(nhs=NHS_A, given=("Sean",)),
        "council": person(given=("Shaun",), council_style=True),
        "twin": person(nhs=NHS_B, given=("Pat",)),
        "moved": person(nhs=NHS_C, family="Grundy", born="1970-05-05"),
        "moved-council": person(family="Grundy", born="1970-05-05", postcode="BO3 3CC"),
    }
    result = match_all(records, RULES)
    assert ["moved", "moved-council"] in result.people
    assert [(a, b) for a, b, _ in result.review] == [("council", "gp")]
    assert result.pairs_compared >= 4 and not result.oversized_blocks


def test_regrouping_keeps_person_ids_and_names_the_edge_behind_each_move() -> None:
    """C leaves person P2 to join A in P1; B is split off A into a new person; P2 is merged."""
    link_ac = decide(person(), person(council_style=True), RULES)
    before = {"a": "P1", "b": "P1", "c": "P2"}
    changes = plan([["a", "c"], ["b"]], before, [("a", "c", link_ac)], set(), {"a", "b", "c"})
    assert changes.people == ["P1", None]
    assert changes.moves == [
        Move("c", 0, "link", Edge("a", link_ac)),
        Move("b", 1, "unlink", Edge("a", None)),
    ]
    assert changes.merged == {"P2": 0}


def test_regrouping_prefers_a_manual_pin_as_the_reason_for_a_move() -> None:
    changes = plan([["a", "b"]], {"a": "P1", "b": "P2"}, [], {("a", "b")}, {"a", "b"})
    assert changes.moves == [Move("b", 0, "link", Edge("a", None))]


def test_a_person_merged_away_earlier_is_taken_back_by_the_group_holding_its_records() -> None:
    """P2 was merged into P1; P1 now splits: b's group takes P2 back instead of a new id."""
    before = {"a": "P1", "b": "P1"}
    changes = plan([["a"], ["b"]], before, [], set(), {"a", "b"}, {"P2": {"b"}})
    assert changes.people == ["P1", "P2"]
    assert changes.merged == {}
    # The survivor's id stays with its own record, whichever group chooses first.
    changes = plan([["a"], ["b"]], before, [], set(), {"a", "b"}, {"P2": {"a"}})
    assert changes.people == ["P2", "P1"]


def test_a_person_merged_away_earlier_follows_its_records_not_the_survivor() -> None:
    """P3 gave up c when it was merged into P1; c has since moved to P2."""
    before = {"a": "P1", "c": "P2", "d": "P2"}
    changes = plan([["a"], ["c", "d"]], before, [], set(), {"a", "c", "d"}, {"P3": {"c"}})
    assert changes.people == ["P1", "P2"]
    assert changes.merged == {"P3": 1}


def test_a_persons_id_stays_with_its_own_records_when_more_merged_in_records_leave() -> None:
    """c1..c3 were merged into Z one by one; the larger group they now form does not take Z."""
    before = {"z1": "Z", "z2": "Z", "c1": "Z", "c2": "Z", "c3": "Z"}
    formerly = {"C1": {"c1"}, "C2": {"c2"}, "C3": {"c3"}}
    groups = [["c1", "c2", "c3"], ["z1", "z2"]]
    changes = plan(groups, before, [], set(), set(before), formerly)
    assert changes.people == ["C1", "Z"]


def test_between_equal_claims_the_older_person_keeps_its_id() -> None:
    """One record each from P1 and P2: the id that survives is the older person's, not the
    lower uuid's."""
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    before = {"a": "P2", "b": "P1"}
    for created, kept in (({"P1": early, "P2": late}, "P1"), ({"P1": late, "P2": early}, "P2")):
        changes = plan([["a", "b"]], before, [], set(), {"a", "b"}, None, created)
        assert changes.people == [kept]
