"""The values the decision point reads and returns: immutable, so a decision can be replayed.

Everything the policy needs arrives in these objects; nothing inside ``consent`` fetches a fact
for itself. Times are timezone-aware ``datetime`` values: mixing in a naive one raises rather
than silently comparing local time with UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

#: The start of an objection the source gave no date: in force whenever the access is.
ALWAYS = datetime.min.replace(tzinfo=UTC)

RelationshipKind = Literal[
    "registration",
    "council-case",
    "referral",
    "placement",
    "hospital-encounter",
    "transfer",
    "self-claim",
]
#: ``consent-share``: a consent to share the record, with no organisation or category named
#: (opting back in after a dissent).
DirectiveKind = Literal[
    "dissent",
    "dissent-wide",
    "restrict-org",
    "restrict-category",
    "consent-category",
    "consent-share",
]
#: How precisely the source gave a directive's date: to the year, month, day, or a time.
Precision = Literal["year", "month", "day", "time"]
#: ``transfer``: a care home sending a resident's red-bag transfer, which it may do only for a
#: person it has a way in to (docs/red-bag.md).
Interaction = Literal[
    "read", "search", "everything", "explain", "break-glass", "self-claim", "transfer"
]
#: ``inappropriate`` is an IG officer's finding that ends the grant at once.
ReviewState = Literal["open", "appropriate", "inappropriate"]
#: What let the user in: the only three ways past need-to-know (principles 4 and 7).
Basis = Literal["relationship", "self-claim", "break-glass"]


@dataclass(frozen=True, slots=True)
class Who:
    """The user, as the token says: CIS2 role in force, organisation, training, purpose claim.

    ``profile`` is what the caller mapped from ``role_code`` and ``org_kind``; ``decide`` maps
    again and refuses a mismatch, so a wrong profile can never widen access.
    """

    user_id: str
    name: str
    profile: str | None
    role_code: str
    org: str
    org_kind: str
    ig_training: date | None
    #: The ``purpose_of_use`` claim, the default purpose of the user's requests.
    purpose: str | None = "TREAT"
    activity_codes: frozenset[str] = frozenset()

    @property
    def job_role(self) -> str:
        """The job role part (``Rxxxx``) of the ``Sxxxx:Gxxxx:Rxxxx`` triple."""
        return self.role_code.rsplit(":", 1)[-1]


@dataclass(frozen=True, slots=True)
class Relationship:
    """An organisation's relationship with the person, as the ingested data (or a claim) says.

    ``end`` is the first instant the relationship no longer holds; ``None`` while it is open.
    ``claimed_by`` names the user who made a ``self-claim``: a claim is personal, and an IG
    officer's ``inappropriate`` review ends it.
    """

    org: str
    kind: RelationshipKind
    start: datetime | None
    end: datetime | None = None
    reason: str = ""
    claimed_by: str | None = None
    review: ReviewState = "open"


@dataclass(frozen=True, slots=True)
class Grant:
    """A break-glass grant: one user at one organisation, one person, a reason, an expiry.

    The organisation is where the emergency was declared: the same user signed in elsewhere
    (a locum's other hospital, their own practice) has no emergency there."""

    user_id: str
    org: str
    patient: str
    reason_code: str
    reason_text: str
    start: datetime
    expiry: datetime
    review: ReviewState = "open"


@dataclass(frozen=True, slots=True)
class ConsentDirective:
    """A person's privacy directive (FHIR ``Consent``, scope ``patient-privacy``).

    ``org``: the viewing organisation it names (``None``: every organisation). ``category``: a
    record section (``problems-active``) or a sensitive category (``sti``).
    """

    kind: DirectiveKind
    #: ``None``: the source gave no date. Only an objection is kept without one, and it then
    #: counts as the latest word: no consent, whenever given, outweighs it.
    recorded: datetime | None
    author: str
    start: datetime
    end: datetime | None = None
    org: str | None = None
    category: str | None = None
    #: A date given to the day (or month, year) is weighed against another at that precision.
    precision: Precision = "time"


@dataclass(frozen=True, slots=True)
class PersonLabel:
    """A label on the person as one organisation recorded it (``restricted-person``)."""

    code: str
    org: str


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the caller gathered about one person before asking."""

    person_id: str
    relationships: tuple[Relationship, ...] = ()
    grants: tuple[Grant, ...] = ()
    directives: tuple[ConsentDirective, ...] = ()
    labels: frozenset[PersonLabel] = frozenset()


@dataclass(frozen=True, slots=True)
class Request:
    """What is asked: resource types (empty: every type the profile has) narrow the decision;
    the interaction is carried for the audit trail."""

    interaction: Interaction
    types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ResourceMeta:
    """The columns a stored resource is judged on; ``section`` comes from ``section_of``."""

    resource_type: str
    source_org: str
    labels: frozenset[str]
    section: str


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule let something through or shaped it."""

    rule_id: str
    principle: int
    text: str


@dataclass(frozen=True, slots=True)
class Refusal(Reason):
    """A reason that refuses: one refusal makes the whole decision a denial."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    """Top-level elements to keep (``None``: all) and to drop, for one resource type.

    ``source_row``: whether the source record's row id (``meta.source``, the source-record
    identifier) may stay; a row id may be made of the very values dropped (a council
    placement's is person|care home|start)."""

    keep: frozenset[str] | None = None
    drop: frozenset[str] = frozenset()
    source_row: bool = True


@dataclass(frozen=True, slots=True)
class Obligations:
    """What may leave, and in what shape.

    ``allowed`` pairs a resource type with a section, so a resource is judged on both; it is
    narrowed to the types asked for, and the query to its ``types``. ``contained_allowed`` is
    the profile's pairs whatever was asked: a contained resource is judged against them, so
    that it leaves alike on every read path (a care plan's contact is a contact whether the
    care plan was read by id, searched for, or sent with the whole record).
    ``withheld_labels`` (the legally restricted categories no consent opens to ``org``) hold
    for every organisation, the one that recorded the item too. Outside the user's own
    organisation three further limits apply: ``own_org_only`` (a dissent in force),
    ``own_org_sections`` (restricted sections) and ``excluded_labels`` (source-confidential
    and restricted-person labels).
    """

    org: str
    allowed: frozenset[tuple[str, str]] = frozenset()
    contained_allowed: frozenset[tuple[str, str]] = frozenset()
    own_org_only: bool = False
    own_org_sections: frozenset[str] = frozenset()
    excluded_labels: frozenset[str] = frozenset()
    withheld_labels: frozenset[str] = frozenset()
    fields: Mapping[str, FieldRule] = field(default_factory=dict)
    #: Resource types worth querying at all: narrow the database query by these.
    types: frozenset[str] = field(init=False, repr=False, compare=False)
    sections: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", frozenset(t for t, _ in self.allowed))
        object.__setattr__(self, "sections", frozenset(s for _, s in self.allowed))


@dataclass(frozen=True, slots=True)
class DirectiveNote:
    """The directive that shapes this view, shown with its author and date (contract)."""

    kind: DirectiveKind
    author: str
    recorded: datetime | None
    category: str | None = None
    #: How precisely the source gave ``recorded``: a directive dated "2019" was not made on
    #: 1 January, so the page shows the year alone.
    precision: Precision = "time"


@dataclass(frozen=True, slots=True)
class Decision:
    """Permit or deny, with obligations and reasons; a denial carries empty obligations."""

    permit: bool
    obligations: Obligations
    reasons: tuple[Reason, ...]
    purpose: str | None
    profile: str | None
    #: Which versions of the policy files decided, for the audit trail.
    policy_version: str
    basis: Basis | None = None
    directives: tuple[DirectiveNote, ...] = ()

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return tuple(r for r in self.reasons if isinstance(r, Refusal))
