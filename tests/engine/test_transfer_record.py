"""Which of a person's transfers their combined record shows, by profile, directive and
relationship: the record's decision judges each as the admission it records (pure)."""

from __future__ import annotations

from consent import Request, decide
from engine.transfer.record import released
from engine.transfer.store import Stay
from tests.consent.personas import (
    CARE_HOME,
    NOW,
    POLICY,
    directive,
    facts,
    grant,
    relation,
    typical,
    who,
)

STAY = Stay("t-1", CARE_HOME, "R9Z", "received",
            (("sent", CARE_HOME, NOW), ("received", "R9Z", NOW)))  # fmt: skip


def shown(user, patient) -> tuple[tuple[Stay, ...], dict[str, int]]:  # type: ignore[no-untyped-def]
    decision = decide(user, patient, user.purpose, Request("everything"), NOW, POLICY)
    return released(decision, [STAY], POLICY)


def test_each_care_relationship_holder_with_admissions_in_its_profile_sees_it() -> None:
    for profile in ("clinical", "social-care", "care-home"):
        user = who(profile)
        assert shown(user, facts(typical(user))) == ((STAY,), {}), profile


def test_no_relationship_an_ended_one_or_no_admissions_section_shows_nothing() -> None:
    gp = who("clinical")
    assert shown(gp, facts()) == ((), {"refused": 1})
    assert shown(gp, facts(relation(gp.org, ended_days_ago=1))) == ((), {"refused": 1})
    receptionist = who("admin")
    assert shown(receptionist, facts(typical(receptionist))) == ((), {"profile.types": 1})
    for profile in ("ig-officer", "analyst"):
        user = who(profile)
        assert shown(user, facts(typical(user)))[0] == (), profile


def test_a_dissent_keeps_it_from_all_but_the_care_home_that_recorded_it() -> None:
    gp, home = who("clinical"), who("care-home")
    dissent = (directive("dissent"),)
    assert shown(gp, facts(typical(gp), directives=dissent)) == (
        (), {"consent.own-organisation-only": 1}
    )  # fmt: skip
    assert shown(home, facts(typical(home), directives=dissent))[0] == (STAY,)


def test_a_restricted_admissions_section_keeps_it_back_and_break_glass_opens_it() -> None:
    gp = who("clinical")
    restricted = (directive("restrict-category", category="admissions"),)
    assert shown(gp, facts(typical(gp), directives=restricted))[0] == ()
    stranger = who("clinical", org="R9Y", org_kind="hospital", purpose="ETREAT")
    assert shown(stranger, facts(grants=(grant(stranger),)))[0] == (STAY,)
