"""What a user may see of a person and why, in words: sections and reasons, never content.

The explanation is built from the decision alone, and the decision from facts about the
person and the user, never from the record, so it cannot name or count what is hidden. The
notice is the same sentence for everyone, whether anything is withheld or not.
"""

from __future__ import annotations

from typing import Any

from consent.model import Decision, Refusal
from consent.rules import UNSHOWN

NOTICE = "Some information may be withheld"


def explain(decision: Decision) -> dict[str, Any]:
    """A JSON-ready account of ``decision`` for ``/access/explain`` and the record page."""
    ob = decision.obligations
    limited = ob.sections if ob.own_org_only else ob.sections & ob.own_org_sections
    return {
        "permit": decision.permit,
        "purpose": decision.purpose,
        "profile": decision.profile,
        "basis": decision.basis,
        "sections": sorted(ob.sections),
        "own_organisation_only": sorted(limited),
        "reasons": [
            {
                "rule": r.rule_id,
                "principle": r.principle,
                "text": r.text,
                "refusal": isinstance(r, Refusal),
            }
            for r in decision.reasons
            if r.rule_id not in UNSHOWN
        ],
        "directives": [
            {
                "kind": n.kind,
                "author": n.author,
                "recorded": n.recorded.isoformat() if n.recorded else None,
                "category": n.category,
            }
            for n in decision.directives
        ],
        "notice": NOTICE,
        "policy_version": decision.policy_version,
    }
