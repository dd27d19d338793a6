"""What the pages read of a stored message (pure): its sections, and what a hospital triages
its inbox by.

A stored message passed the rules, so its shape is known; its text is still the sender's, and
is read here without trusting it: tags are stripped in linear time, and the person and the
reason are found where the rules find them, not by position or title.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from engine.transfer import news2
from engine.transfer.form import NOTHING, REASON, claimed_news2

#: A tag in a narrative. ``[^<>]`` keeps it linear: ``[^>]`` rescanned to the end from every
#: ``<`` of a text with no ``>``, which a sender could use to stall every inbox that shows it.
_TAGS = re.compile(r"<[^<>]*>")


def _composition(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Composition the header's focus names, as the rules find the one they judge."""
    entries = bundle.get("entry", [])
    focus = entries[0]["resource"]["focus"][0]["reference"] if entries else None
    return next((e["resource"] for e in entries if e.get("fullUrl") == focus), {})


@dataclass(frozen=True, slots=True)
class Shown:
    """A section as the pages show it: the resources its entries reference, which the rules
    checked (an allergy, the NEWS2 readings, a CPR decision), and the sender's own summary of
    them, its narrative as text, which nothing checks against them."""

    code: str
    title: str
    entries: tuple[dict[str, Any], ...]
    text: str


def sections(bundle: dict[str, Any]) -> list[Shown]:
    """Each section of the message, its entries resolved within the Bundle."""
    by_url = {
        e.get("fullUrl"): e.get("resource")
        for e in bundle.get("entry", [])
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    }
    return [
        Shown(
            next((c.get("code", "") for c in s.get("code", {}).get("coding", [])), ""),
            s.get("title", ""),
            tuple(
                found
                for ref in s.get("entry", [])
                if isinstance(ref, dict) and (found := by_url.get(ref.get("reference")))
            ),
            html.unescape(_TAGS.sub("", s.get("text", {}).get("div", ""))),
        )
        for s in _composition(bundle).get("section", [])
    ]


def triage(bundle: dict[str, Any]) -> dict[str, str]:
    """Who, why, and how unwell (NEWS2): the person is the Composition's subject and the reason
    its coded section, as the rules read them; a message may carry another Patient, and a
    title is the sender's words."""
    by_url = {
        e.get("fullUrl"): e.get("resource", {})
        for e in bundle.get("entry", [])
        if isinstance(e, dict)
    }
    subject = _composition(bundle).get("subject", {}).get("reference")
    name: dict[str, Any] = next(iter(by_url.get(subject, {}).get("name", [])), {})
    claim = claimed_news2(bundle.get("entry", []))  # the total the rules checked
    total = None if claim is None else claim.total
    vitals = None if claim is None else claim.vitals
    # the chart's band, where the readings give the total: a 3 in one parameter alone calls
    # for an urgent review, which the total hides
    risk = news2.risk(vitals) if vitals is not None and total == news2.total(vitals) else ""
    return {
        "name": " ".join([*name.get("given", []), name.get("family", "")]).strip(),
        "news2": "" if total is None else str(total),
        "risk": risk,
        "reason": next((s.text for s in sections(bundle) if s.code == REASON), ""),
    }


def bag_of(bundle: dict[str, Any]) -> list[str]:
    """What the care home said is in the bag, an item a line: the hospital's discharge form
    starts from it, to say what goes back. The narrative is all a message carries of it, read
    as the form writes it (``; `` between items); the hospital edits what it starts from."""
    said = next((s.text for s in sections(bundle) if s.code == "belongings"), "")
    return [] if said.strip() in ("", NOTHING, "-") else [i.strip() for i in said.split("; ")]
