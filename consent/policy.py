"""The policy as data: role profiles, purposes, sections and rule parameters, loaded and checked.

This is the only module in ``consent`` that reads files. Each file is checked against its JSON
Schema, then against the others (a profile naming a section that does not exist is as wrong as
a malformed file), so a policy that loads is one ``decide`` can trust; anything else stops
start-up with every problem named.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters import schema
from consent.model import FieldRule

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
POLICY_DIR = MAPPINGS / "policy"
CATEGORIES = MAPPINGS / "valuesets" / "categories.json"
#: Bump when ``consent.meta_of``, ``consent.tie`` or ``consent.directive`` derive a row's
#: facts differently from the same rules (its facts stored at ingest must then be derived
#: again: ``scr db restamp``). 2: relationships, directives and ODS codes are stored too.
#: 3: a closed episode, referral or task with no end is no relationship; an inexact
#: restriction is a dissent; dates are UK days, an end to the month or year covers it; a
#: ServiceRequest is a referral, dated by authoredOn when it has no occurrence. 4: an
#: objection with no date is kept, in force from always and the latest word. 5: a planned or
#: waitlisted episode and a planned encounter are no relationship yet. 6: a directive keeps
#: the precision of its date; a permit naming nothing is a consent to share the record. 7: an
#: inexact restriction is a ``dissent-wide``, which a consent to share does not lift. 8: a
#: Consent with no provision type (or one R4 does not define) is an objection unless it opts
#: in; an objection ending before it starts stays in force.
FACTS_FORMAT = 8


class PolicyError(ValueError):
    """The policy files do not fit together; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    display: str
    identifiable: bool
    self_claim: bool
    break_glass: bool
    sections: frozenset[str]
    #: (resource type, section) pairs the profile may see, worked out once at load.
    allowed: frozenset[tuple[str, str]]
    #: Per resource type, with the ``*`` rule already merged in.
    fields: Mapping[str, FieldRule]


@dataclass(frozen=True, slots=True)
class Assignment:
    profile: str
    roles: frozenset[str]
    org_kinds: frozenset[str]
    activities: frozenset[str]


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    display: str
    direct_care: bool
    break_glass: bool
    needs_grant: bool
    profiles: frozenset[str]


@dataclass(frozen=True, slots=True)
class SectionRule:
    section: str
    path: tuple[str, ...]
    values: frozenset[str]


#: Characters Unicode calls letters or symbols that are drawn as nothing.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _shown(ch: str) -> bool:
    """Drawn as something: not a control or format character (a zero-width space), a mark
    with nothing to sit on (a combining accent, a variation selector) or a blank letter."""
    category = unicodedata.category(ch)
    return category[0] != "C" and category not in ("Mn", "Me") and ch not in _BLANK


def readable(text: str) -> str:
    """``text`` as a reader sees it: what is drawn as nothing taken out, and each run of
    spaces one space, none at either end."""
    return " ".join("".join(ch for ch in text if _shown(ch) or ch.isspace()).split())


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything ``decide`` consults, immutable once loaded."""

    version: str
    org_kinds: frozenset[str]
    profiles: Mapping[str, Profile]
    assignments: tuple[Assignment, ...]
    purposes: Mapping[str, Purpose]
    sections: Mapping[str, str]
    #: A section a restriction names → every section it restricts (itself and any split off).
    covers: Mapping[str, frozenset[str]]
    #: Per resource type, tried in order; an empty path is the type's default.
    section_rules: Mapping[str, tuple[SectionRule, ...]]
    ig_training_max_months: int
    min_reason_text: int
    self_claim_max_days: int
    break_glass_reasons: Mapping[str, str]
    #: organisation kind → relationship kind → days it holds after its end (``None``: none).
    relationships: Mapping[str, Mapping[str, int | None]]
    owner_only_labels: frozenset[str]
    #: sensitive category (``sti``) → its label (``sensitive-sti``).
    sensitive: Mapping[str, str]
    restricted_person_label: str
    restricted_person_drop: Mapping[str, frozenset[str]]
    #: Names the rules a row's facts are derived by (the section rules ``meta_of`` places a
    #: resource by, the sensitive categories ``directive`` reads): a row's facts stored under
    #: another version were derived by other rules and are not trusted (``engine.facts``).
    facts_version: str
    #: The resource types some profile may see: any other is never released.
    readable: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen = frozenset(t for p in self.profiles.values() for t, _ in p.allowed)
        object.__setattr__(self, "readable", seen)

    def reason_given(self, text: str) -> bool:
        """Whether a break-glass or self-claim reason has the characters a reviewer must be
        able to read (:func:`readable`): ten zero-width spaces, Hangul fillers or combining
        marks look like nothing; 'Seen in ED' is ten characters, as a person counts them."""
        return len(readable(text)) >= self.min_reason_text

    def profile_for(self, job_role: str, org_kind: str, activities: frozenset[str]) -> str | None:
        """The first assignment that matches the role in force; ``None`` means no access."""
        for a in self.assignments:
            if job_role in a.roles and org_kind in a.org_kinds and a.activities <= activities:
                return a.profile
        return None


def _read(directory: Path, name: str) -> Any:
    path = directory / f"{name}.json"
    doc = orjson.loads(path.read_bytes())
    schema.check(f"policy-{name}", doc, str(path))
    return doc


def _section_rules(doc: Any) -> dict[str, tuple[SectionRule, ...]]:
    rules: dict[str, list[SectionRule]] = {}
    for r in doc["rules"]:
        when = r.get("when")
        path = tuple(when["path"].split(".")) if when else ()
        values = frozenset(when["in"]) if when else frozenset()
        rules.setdefault(r["resourceType"], []).append(SectionRule(r["section"], path, values))
    return {t: tuple(rs) for t, rs in rules.items()}


def _fields(doc: Mapping[str, Any], types: frozenset[str]) -> dict[str, FieldRule]:
    every = doc.get("*", {})
    out: dict[str, FieldRule] = {}
    for t in sorted(types):
        own = doc.get(t, {})
        keep = own.get("keep")
        drop = frozenset(every.get("drop", ())) | frozenset(own.get("drop", ()))
        if keep is not None or drop:
            out[t] = FieldRule(frozenset(keep) if keep is not None else None, drop)
    return out


def _profiles(
    doc: Any, rules: Mapping[str, tuple[SectionRule, ...]], problems: list[str]
) -> dict[str, Profile]:
    pairs = {(t, r.section) for t, rs in rules.items() for r in rs}
    profiles: dict[str, Profile] = {}
    for name, p in doc["profiles"].items():
        sections = frozenset(p["sections"])
        allowed = frozenset((t, s) for t, s in pairs if s in sections)
        types = frozenset(t for t, _ in allowed)
        unknown_types = set(p["fields"]) - types - {"*"}
        if unknown_types:
            problems.append(
                f"profile {name}: fields for types it cannot see {sorted(unknown_types)}"
            )
        profiles[name] = Profile(
            name=name,
            display=p["display"],
            identifiable=p["identifiable"],
            self_claim=p["self_claim"],
            break_glass=p["break_glass"],
            sections=sections,
            allowed=allowed,
            fields=_fields(p["fields"], types),
        )
    return profiles


def _cross_check(
    profiles_doc: Any, purposes_doc: Any, sections_doc: Any, rules_doc: Any
) -> list[str]:
    problems: list[str] = []
    sections = set(sections_doc["sections"])
    kinds = set(profiles_doc["org_kinds"])
    names = set(profiles_doc["profiles"])
    for r in sections_doc["rules"]:
        if r["section"] not in sections:
            problems.append(f"sections rule for {r['resourceType']}: no section {r['section']!r}")
    for named, covered in sections_doc.get("covers", {}).items():
        for s in sorted({named, *covered} - sections):
            problems.append(f"covers {named}: no section {s!r}")
    for name, p in profiles_doc["profiles"].items():
        for s in sorted(set(p["sections"]) - sections):
            problems.append(f"profile {name}: no section {s!r}")
    for i, a in enumerate(profiles_doc["assignments"]):
        if a["profile"] not in names:
            problems.append(f"assignments/{i}: no profile {a['profile']!r}")
        for k in sorted(set(a["org_kinds"]) - kinds):
            problems.append(f"assignments/{i}: no organisation kind {k!r}")
    for code, p in purposes_doc["purposes"].items():
        for name in sorted(set(p["profiles"]) - names):
            problems.append(f"purpose {code}: no profile {name!r}")
        if p["needs_grant"] and not p["break_glass"]:
            problems.append(f"purpose {code}: needs a grant but does not allow one")
    for k in sorted(set(rules_doc["relationships"]) - kinds):
        problems.append(f"relationships: no organisation kind {k!r}")
    return problems


def _facts_version(rules: Any, sensitive: Mapping[str, str]) -> str:
    """A digest of the section rules, the sensitive categories and of how they are applied:
    it changes whenever the same body could be given other facts."""
    doc = orjson.dumps([FACTS_FORMAT, rules, sensitive], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(doc).hexdigest()[:16]


def load(directory: Path = POLICY_DIR, categories: Path = CATEGORIES) -> Policy:
    """Read, check and assemble the policy; raise naming every problem rather than guess."""
    profiles_doc = _read(directory, "profiles")
    purposes_doc = _read(directory, "purposes")
    sections_doc = _read(directory, "sections")
    rules_doc = _read(directory, "rules")
    categories_doc = orjson.loads(categories.read_bytes())
    schema.check("categories", categories_doc, str(categories))

    problems = _cross_check(profiles_doc, purposes_doc, sections_doc, rules_doc)
    section_rules = _section_rules(sections_doc)
    profiles = _profiles(profiles_doc, section_rules, problems)
    if problems:
        raise PolicyError(f"policy in {directory} is inconsistent:\n  " + "\n  ".join(problems))

    versions = (profiles_doc, purposes_doc, sections_doc, rules_doc, categories_doc)
    names = ("profiles", "purposes", "sections", "rules", "categories")
    restricted = rules_doc["restricted_person"]
    sensitive = {c: v["label"] for c, v in categories_doc["categories"].items()}
    return Policy(
        version=" ".join(f"{n}@{d['version']}" for n, d in zip(names, versions, strict=True)),
        org_kinds=frozenset(profiles_doc["org_kinds"]),
        profiles=profiles,
        assignments=tuple(
            Assignment(
                profile=a["profile"],
                roles=frozenset(a["roles"]),
                org_kinds=frozenset(a["org_kinds"]),
                activities=frozenset(a.get("activities", ())),
            )
            for a in profiles_doc["assignments"]
        ),
        purposes={
            code: Purpose(
                code=code,
                display=p["display"],
                direct_care=p["direct_care"],
                break_glass=p["break_glass"],
                needs_grant=p["needs_grant"],
                profiles=frozenset(p["profiles"]),
            )
            for code, p in purposes_doc["purposes"].items()
        },
        sections=dict(sections_doc["sections"]),
        covers={
            s: frozenset({s, *sections_doc.get("covers", {}).get(s, ())})
            for s in sections_doc["sections"]
        },
        section_rules=section_rules,
        ig_training_max_months=rules_doc["ig_training_max_months"],
        min_reason_text=rules_doc["min_reason_text"],
        self_claim_max_days=rules_doc["self_claim_max_days"],
        break_glass_reasons=dict(rules_doc["break_glass_reasons"]),
        relationships={
            kind: {rel: w.get("window_days") for rel, w in rels.items()}
            for kind, rels in rules_doc["relationships"].items()
        },
        owner_only_labels=frozenset(rules_doc["owner_only_labels"]),
        sensitive=sensitive,
        restricted_person_label=restricted["label"],
        restricted_person_drop={t: frozenset(f) for t, f in restricted["drop"].items()},
        facts_version=_facts_version(sections_doc["rules"], sensitive),
    )
