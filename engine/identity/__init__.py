"""Identity: one person across every source, and never a false merge.

Pure matching (``features`` → ``compare`` → ``decide``, with ``blocking`` and ``cluster``) is
kept apart from the database side (``index``, over the tables in ``tables``), so every rule can
be tested without a store and the benchmark measures exactly what ``relink`` decides.
"""

from __future__ import annotations

from engine.identity.batch import Matching, match_all
from engine.identity.blocking import Blocks, blocking_keys
from engine.identity.decide import MatchDecision, decide
from engine.identity.features import Demographics, demographics
from engine.identity.index import (
    IdentityError,
    LinkSummary,
    Span,
    held,
    history,
    link,
    patients_of,
    patients_of_run,
    people_with_nhs_number,
    person_of,
    queue,
    relink,
    relink_all,
    relink_run,
    spans,
    unlink,
)
from engine.identity.members import (
    Members,
    members_of,
    members_of_patient,
    patient_lookup,
    served_patient,
)
from engine.identity.rules import MatchRules, load_rules

__all__ = [
    "Blocks",
    "Demographics",
    "IdentityError",
    "LinkSummary",
    "MatchDecision",
    "MatchRules",
    "Matching",
    "Members",
    "Span",
    "blocking_keys",
    "decide",
    "demographics",
    "held",
    "history",
    "link",
    "load_rules",
    "match_all",
    "members_of",
    "members_of_patient",
    "patient_lookup",
    "patients_of",
    "patients_of_run",
    "people_with_nhs_number",
    "person_of",
    "queue",
    "relink",
    "relink_all",
    "relink_run",
    "served_patient",
    "spans",
    "unlink",
]
