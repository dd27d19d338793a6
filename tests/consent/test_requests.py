"""Asking for break-glass or a self-claim: who may, with what reason, and what comes back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from consent import Request, ask_break_glass, ask_self_claim, decide
from consent.model import PatientFacts
from tests.consent.personas import NOW, PERSON, POLICY, hospital_clinician, who

EVERYTHING = Request("everything")
REASON = "Unconscious in A&E, no history available"


def refused_by(answer) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.rule_id for r in answer.refusals}


def test_clinician_gets_a_grant_for_the_configured_minutes_that_decide_accepts() -> None:
    user = hospital_clinician()
    answer = ask_break_glass(user, PERSON, "5", REASON, NOW, POLICY, minutes=240)
    assert answer.granted is not None and not answer.refusals
    assert answer.granted.expiry - answer.granted.start == timedelta(minutes=240)
    assert answer.granted.user_id == user.user_id and answer.granted.patient == PERSON
    facts = PatientFacts(PERSON, grants=(answer.granted,))
    assert decide(user, facts, "ETREAT", EVERYTHING, NOW, POLICY).basis == "break-glass"
    later = NOW + timedelta(minutes=240)
    assert not decide(user, facts, "ETREAT", EVERYTHING, later, POLICY).permit


@pytest.mark.parametrize("profile", ["social-care", "care-home", "admin", "ig-officer"])
def test_break_glass_is_refused_to_every_profile_but_clinical(profile: str) -> None:
    answer = ask_break_glass(who(profile), PERSON, "5", REASON, NOW, POLICY, minutes=240)
    assert answer.granted is None
    assert "break-glass.request" in refused_by(answer)


@pytest.mark.parametrize(
    ("code", "text"),
    [("9", REASON), ("5", "urgent"), ("5", "          x"), ("", REASON)],
    ids=["unknown-code", "short-text", "blank-text", "no-code"],
)
def test_break_glass_needs_a_known_code_and_a_reason(code: str, text: str) -> None:
    answer = ask_break_glass(hospital_clinician(), PERSON, code, text, NOW, POLICY, 240)
    assert answer.granted is None and "break-glass.request" in refused_by(answer)


def test_break_glass_with_stale_training_or_a_mismatched_profile_is_refused() -> None:
    stale = hospital_clinician(trained=date(2025, 1, 1))
    assert "training.current" in refused_by(
        ask_break_glass(stale, PERSON, "5", REASON, NOW, POLICY, 240)
    )
    pretender = replace(who("admin"), profile="clinical")
    assert "profile.known" in refused_by(
        ask_break_glass(pretender, PERSON, "5", REASON, NOW, POLICY, 240)
    )


@pytest.mark.parametrize(
    ("purpose", "rule"),
    [
        (None, "purpose.known"),
        ("ZZZ", "purpose.known"),
        ("POPHLTH", "purpose.direct-care"),
        ("HOPERAT", "purpose.profile"),
    ],
)
def test_break_glass_and_self_claim_pass_the_purpose_gates_every_read_does(
    purpose: str | None, rule: str
) -> None:
    user = replace(hospital_clinician(), purpose=purpose)
    glass = ask_break_glass(user, PERSON, "5", REASON, NOW, POLICY, 240)
    claim = ask_self_claim(user, PERSON, "Seen in outpatients today", NOW, POLICY)
    read = decide(user, PatientFacts(PERSON), purpose, EVERYTHING, NOW, POLICY)
    assert glass.granted is None and claim.granted is None
    assert rule in refused_by(glass) and rule in refused_by(claim) and rule in refused_by(read)


def test_self_claim_is_the_users_own_and_lasts_the_policy_maximum() -> None:
    user = hospital_clinician()
    answer = ask_self_claim(user, PERSON, "Seen in outpatients today, letter pending", NOW, POLICY)
    claim = answer.granted
    assert claim is not None and claim.claimed_by == user.user_id and claim.org == user.org
    assert claim.end == NOW + timedelta(days=POLICY.self_claim_max_days)
    facts = PatientFacts(PERSON, relationships=(claim,))
    assert decide(user, facts, "TREAT", EVERYTHING, NOW, POLICY).basis == "self-claim"
    colleague = hospital_clinician(user_id="user-2")
    assert not decide(colleague, facts, "TREAT", EVERYTHING, NOW, POLICY).permit


def test_self_claim_is_refused_without_a_reason_or_outside_clinical_profiles() -> None:
    short = ask_self_claim(hospital_clinician(), PERSON, "because", NOW, POLICY)
    assert short.granted is None and "relationship.self-claim.request" in refused_by(short)
    social = ask_self_claim(who("social-care"), PERSON, "Safeguarding call today", NOW, POLICY)
    assert social.granted is None and "relationship.self-claim.request" in refused_by(social)


@pytest.mark.parametrize(
    "blank",
    ["\u200b" * 10, "\u200d" * 10, "\u3164" * 10, "\u2800" * 10, "\x01" * 10, "\u00a0" * 10,
     "\ufe0f" * 10, "\U000e0100" * 10, "\u034f" * 10, "\u0301" * 10, "a" + " " * 9],
)  # fmt: skip
def test_a_reason_no_reviewer_can_read_is_no_reason(blank: str) -> None:
    """Ten zero-width spaces (or joiners, Hangul fillers, braille blanks, control characters)
    survive ``str.strip`` and counted as ten characters: a grant was made, and a stored one
    honoured, for a reason the IG officer reviewing it sees as nothing."""
    user = hospital_clinician()
    glass = ask_break_glass(user, PERSON, "5", f"  {blank}  ", NOW, POLICY, 60)
    claim = ask_self_claim(user, PERSON, blank, NOW, POLICY)
    assert glass.granted is None and claim.granted is None
    made = ask_break_glass(user, PERSON, "5", "Unconscious in resus", NOW, POLICY, 60).granted
    assert made is not None
    assert decide(
        user, PatientFacts(PERSON, grants=(made,)), "ETREAT", EVERYTHING, NOW, POLICY
    ).permit
    facts = PatientFacts(PERSON, grants=(replace(made, reason_text=blank),))
    assert not decide(user, facts, "ETREAT", EVERYTHING, NOW, POLICY).permit
    assert ask_self_claim(user, PERSON, "Seen in A&E, letter to GP", NOW, POLICY).granted


def test_a_reason_counts_its_spaces_as_a_person_does() -> None:
    """Counting readable characters alone refused 'Seen in ED' (ten characters, as the form
    counts them), and ended live claims made with such a reason when the count changed."""
    user = hospital_clinician()
    assert ask_self_claim(user, PERSON, "Seen in ED", NOW, POLICY).granted is not None
    assert ask_self_claim(user, PERSON, "  Seen    in  E  ", NOW, POLICY).granted is None


def test_a_claim_found_inappropriate_ends_at_once() -> None:
    user = hospital_clinician()
    claim = ask_self_claim(user, PERSON, "Seen in outpatients today", NOW, POLICY).granted
    assert claim is not None
    facts = PatientFacts(PERSON, relationships=(replace(claim, review="inappropriate"),))
    assert not decide(user, facts, "TREAT", EVERYTHING, NOW, POLICY).permit
