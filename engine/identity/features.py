"""What identity matching reads from a stored Patient: a frozen, normalised :class:`Demographics`.

Every source spells the same person slightly differently (``O'NEILL`` and ``O'Neill``,
``Smith-Jones`` and ``Smith Jones``, ``Zoë`` and ``Zoe``), so names are folded to bare lower-case
letters once, here, and every comparison works on the folded form. Folding keeps letters of
every script (``Пётр`` folds to ``петр``, not to nothing), so names in Cyrillic or Arabic are
compared like any other. An NHS number that fails the modulus-11 check is kept out of
``nhs_number`` (it is treated as no number at all, because a mistyped number says nothing
about who the person is) and only flagged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import jellyfish

from adapters.values import nhs_number_valid

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
VERIFICATION_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
#: UK Core NHS number verification status "number present and verified" (England and Wales).
VERIFIED = "01"
#: Trace statuses under which the source itself doubts the number: trace required (03), no or
#: several matches (04), number and details conflict (05), in progress (06), no number
#: expected (07), postponed (08). ``02`` (present, not traced) is merely unverified.
DOUBTED = frozenset({"03", "04", "05", "06", "07", "08"})
#: Name uses that hold a name the person no longer goes by (a maiden or previous surname).
_OLD_USES = frozenset({"old", "maiden"})
#: A run of letters or digits in any script.
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Demographics:
    """One Patient's identifying details, normalised for comparison (slots: one per record)."""

    #: A valid NHS number (modulus 11, not a placeholder such as 0000000000), or None.
    nhs_number: str | None
    #: The number's UK Core verification status code ("01" verified, "02" not traced, ...).
    nhs_status: str | None
    #: The record held an NHS number that fails modulus 11 or is a placeholder (treated as none).
    nhs_number_invalid: bool
    #: Current family name, folded ("oneill"); "" when the record has none.
    family: str
    #: Previous family names (``use: old`` / ``maiden``), folded.
    previous_families: tuple[str, ...]
    #: First word of the first given name, folded; "" when none.
    given: str
    #: Every word of the first given name ("Mary-Jane": mary, jane), folded.
    given_parts: tuple[str, ...]
    #: Every given word after the first (the rest of a compound name, then middle names).
    other_given: tuple[str, ...]
    birth_date: date | None
    #: The birth year, from a full date or a partial one ("1951"): a year can still contradict.
    birth_year: int | None
    #: ``male``, ``female`` or ``other``; None when unknown or absent.
    sex: str | None
    #: Home postcode without spaces, upper case ("BO91RH").
    postcode: str | None
    #: Words of the home address (lines, text, city, district), folded, postcode left out.
    address_tokens: frozenset[str]

    @property
    def nhs_verified(self) -> bool:
        """Traced and verified on the Spine (``01``)."""
        return self.nhs_status == VERIFIED

    @property
    def nhs_doubted(self) -> bool:
        """The source's trace status says the number itself is in doubt (see DOUBTED)."""
        return self.nhs_status in DOUBTED

    @property
    def all_families(self) -> tuple[str, ...]:
        """The current family name first, then previous ones (married-name changes meet here)."""
        return tuple(dict.fromkeys(f for f in (self.family, *self.previous_families) if f))

    @property
    def postcode_sector(self) -> str | None:
        """Outward code plus the inward digit ("BO91" for "BO9 1RH"): a few streets."""
        if not self.postcode or len(self.postcode) < 5:
            return None
        return self.postcode[:-2]


def fold(text: str) -> str:
    """Letters only (any script), accents removed, case folded: the form names are compared in."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c)).casefold()


def phonetic(name: str) -> str:
    """Metaphone code of a folded name ("" for no name)."""
    return jellyfish.metaphone(name) if name else ""


def _words(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _WORD.findall(plain)


def _current_name(names: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The official (or usual) name; else the first name that is not an old one."""
    for wanted in ("official", "usual"):
        for name in names:
            if name.get("use") == wanted:
                return name
    return next((n for n in names if n.get("use") not in _OLD_USES), None)


def _given(name: Mapping[str, Any] | None) -> list[list[str]]:
    """Each given name as its folded words."""
    if name is None:
        return []
    out = [[f for w in _words(str(part)) if (f := fold(w))] for part in name.get("given", [])]
    return [words for words in out if words]


def _nhs(identifiers: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None, bool]:
    """The NHS number, its trace status, and whether only invalid numbers were held.

    A record may hold several NHS identifiers (an old one kept beside the traced one): a
    verified number is taken before an earlier unverified one, and an invalid one is skipped.
    """
    found: list[tuple[str, str | None]] = []
    invalid = False
    for ident in identifiers:
        if ident.get("system") != NHS_SYSTEM:
            continue
        value = re.sub(r"[\s-]", "", str(ident.get("value", "")))
        if value and nhs_number_valid(value):
            found.append((value, _status(ident)))
        elif value:
            invalid = True
    if not found:
        return None, None, invalid
    value, status = min(found, key=lambda f: f[1] != VERIFIED)
    return value, status, False


def _status(ident: Mapping[str, Any]) -> str | None:
    """The identifier's UK Core verification status code, if it carries one."""
    codes = [
        coding.get("code")
        for ext in ident.get("extension", [])
        if ext.get("url") == VERIFICATION_URL
        for coding in ext.get("valueCodeableConcept", {}).get("coding", [])
    ]
    return next((str(c) for c in codes if c), None)


def _birth_year(raw: object) -> int | None:
    """The year of a full or partial date ("1950", "1950-03")."""
    if not isinstance(raw, str) or len(raw) < 4 or not raw[:4].isdigit():
        return None
    return int(raw[:4])


def _birth_date(raw: object) -> date | None:
    """A full date only: a partial date ("1950", "1950-03") cannot be compared day by day."""
    if not isinstance(raw, str) or len(raw) != 10:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _home(addresses: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The current home address: use ``home`` without an end date, else the first current one.

    An ended address is where the person no longer lives: a past home shared with someone
    must not count as living together now.
    """
    current = [a for a in addresses if not a.get("period", {}).get("end")]
    homes = [a for a in current if a.get("use", "home") == "home"]
    return next(iter(homes or current), None)


def _address(address: Mapping[str, Any] | None) -> tuple[str | None, frozenset[str]]:
    if address is None:
        return None, frozenset()
    postcode = re.sub(r"\s", "", str(address.get("postalCode", ""))).upper() or None
    parts = [*address.get("line", []), address.get("text", ""), address.get("city", "")]
    parts.append(address.get("district", ""))
    tokens = {w for part in parts for w in _words(str(part))}
    if postcode:
        tokens -= {w.lower() for w in (postcode[:-3], postcode[-3:])}
    return postcode, frozenset(tokens)


def demographics(patient: Mapping[str, Any]) -> Demographics:
    """Read a stored R4 Patient (UK Core shape) into :class:`Demographics`."""
    names: list[Mapping[str, Any]] = list(patient.get("name", []))
    current = _current_name(names)
    given = _given(current)
    words = [w for part in given for w in part]
    previous = [
        fold(str(n.get("family", "")))
        for n in names
        if n.get("use") in _OLD_USES and n is not current
    ]
    family = fold(str(current.get("family", ""))) if current else ""
    nhs_number, status, invalid = _nhs(patient.get("identifier", []))
    gender = patient.get("gender")
    postcode, tokens = _address(_home(list(patient.get("address", []))))
    return Demographics(
        nhs_number=nhs_number,
        nhs_status=status,
        nhs_number_invalid=invalid,
        family=family,
        previous_families=tuple(dict.fromkeys(p for p in previous if p and p != family)),
        given=words[0] if words else "",
        given_parts=tuple(given[0]) if given else (),
        other_given=tuple(words[1:]),
        birth_date=_birth_date(patient.get("birthDate")),
        birth_year=_birth_year(patient.get("birthDate")),
        sex=gender if gender in ("male", "female", "other") else None,
        postcode=postcode,
        address_tokens=tokens,
    )
