"""Consent and access policy: the single decision point in front of every read (issue 4).

Use: ``policy = load()`` once; per request gather :class:`PatientFacts` (``facts`` helps), call
:func:`decide`, narrow the query by ``decision.obligations``, then for each row
:func:`visible` and :func:`mask`; :func:`explain` answers ``/access/explain``.
"""

from __future__ import annotations

from consent.decide import decide
from consent.explain import NOTICE, explain
from consent.facts import (
    Tie,
    directive,
    ods_code,
    organisation_reference,
    person_labels,
    relationship,
    tie,
)
from consent.mask import (
    Refused,
    hidden_by,
    hidden_in_record,
    mask,
    referenced_id,
    source_row_shown,
    unmasked,
    visible,
)
from consent.model import (
    ConsentDirective,
    Decision,
    DirectiveNote,
    FieldRule,
    Grant,
    Obligations,
    PatientFacts,
    PersonLabel,
    Reason,
    Refusal,
    Relationship,
    Request,
    ResourceMeta,
    Who,
)
from consent.policy import Policy, PolicyError, load
from consent.requests import Answer, ask_break_glass, ask_self_claim, user_refusals
from consent.sections import UNCLASSIFIED, meta_of, section_of

__all__ = [
    "NOTICE",
    "UNCLASSIFIED",
    "Answer",
    "ConsentDirective",
    "Decision",
    "DirectiveNote",
    "FieldRule",
    "Grant",
    "Obligations",
    "PatientFacts",
    "PersonLabel",
    "Policy",
    "PolicyError",
    "Reason",
    "Refusal",
    "Refused",
    "Relationship",
    "Request",
    "ResourceMeta",
    "Tie",
    "Who",
    "ask_break_glass",
    "ask_self_claim",
    "decide",
    "directive",
    "explain",
    "hidden_by",
    "hidden_in_record",
    "load",
    "mask",
    "meta_of",
    "ods_code",
    "organisation_reference",
    "person_labels",
    "referenced_id",
    "relationship",
    "section_of",
    "source_row_shown",
    "tie",
    "unmasked",
    "user_refusals",
    "visible",
]
