"""``hidden_by``: the reason an item is held back, for the audit trail's withheld counts."""

from __future__ import annotations

from consent import Request, decide, hidden_by, visible
from tests.consent.personas import GP, NOW, OTHER_GP, POLICY, directive, facts, meta, typical, who

OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "BP"}}
EVERYTHING = Request("everything")


def test_each_reason_is_named_and_visible_agrees() -> None:
    gp = who("clinical")
    decision = decide(gp, facts(typical(gp)), "TREAT", EVERYTHING, NOW, POLICY)
    cases = {
        None: meta(OBSERVATION, OTHER_GP),
        "labels.excluded": meta(OBSERVATION, OTHER_GP, "source-confidential"),
        "profile.types": meta({"resourceType": "Basic"}, OTHER_GP),
    }
    for reason, item in cases.items():
        assert hidden_by(item, decision) == reason
        assert visible(item, decision) is (reason is None)
    assert hidden_by(meta(OBSERVATION, GP, "source-confidential"), decision) is None
    dissent = decide(
        gp, facts(typical(gp), directives=(directive("dissent"),)), "TREAT", EVERYTHING, NOW, POLICY
    )
    assert hidden_by(meta(OBSERVATION, OTHER_GP), dissent) == "consent.own-organisation-only"
    refused = decide(who("clinical", org="Y99999"), facts(), "TREAT", EVERYTHING, NOW, POLICY)
    assert hidden_by(meta(OBSERVATION, OTHER_GP), refused) == "refused"
