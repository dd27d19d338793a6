"""The patient access report (Caldicott principle 8): who looked at one person's record, in words.

Every entry about the person in the period becomes one line a person can read without knowing
scr: when (local time), which organisation, what kind of staff member, why, and what happened.
An operator's look at them at the command line (``operator-view``: the identity queue and
history name people) is one too.
IG's own work (searches, reviews, this report) is not an access to the record, so it is left
out. Names of staff are left out too: the organisation and role are what the person can act
on, and the organisation can name its staff member when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from adapters.schema import check
from audit.entry import refused_look

ROLES_FILE = Path(__file__).resolve().parent.parent / "mappings" / "ig" / "job-roles.json"

#: What each action means, to the person whose record it is.
_DONE = {
    "read": "looked at part of your record",
    "search": "looked you up",
    "everything": "looked at your record",
    "explain": "checked whether they could see your record",
    "break-glass": "used emergency access to your record",
    "self-claim": "recorded that they are involved in your care",
    "transfer-send": "sent your details with a hospital transfer",
    "transfer-receive": "sent your details to hospital with a transfer",
    "transfer-acknowledge": "confirmed receipt of your hospital transfer details",
    "transfer-discharge": "sent your hospital discharge details to your care home",
    "transfer-return": "confirmed your return from hospital",
    "operator-view": "looked at your details while running the system",
}
#: An operator at the command line has no smartcard role or organisation: who they are, and
#: where, as the person would put it (the entry names the operator for IG).
_OPERATOR_ROLE = "system administrator"
_OPERATOR_ORG = "the team that runs the shared care record"
_REFUSED = "tried to see your record and were not allowed to"
_LATE = "tried to record a step of your hospital transfer that was already recorded"


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    when: str
    organisation: str
    role: str
    purpose: str
    what: str
    emergency: bool


def role_name(role_code: str, roles: Mapping[str, str]) -> str:
    job = role_code.rsplit(":", 1)[-1]
    return roles.get(job, f"staff member (role {job})" if job else "staff member")


def lines(
    entries: Iterable[Mapping[str, Any]],
    *,
    organisations: Mapping[str, str],
    roles: Mapping[str, str],
    purposes: Mapping[str, str],
    zone: ZoneInfo,
) -> list[Line]:
    """The report's lines, oldest first, one per access or attempt."""
    out = []
    for e in sorted(entries, key=lambda e: e["seq"]):
        if e["action"] not in _DONE:
            continue
        when = datetime.fromisoformat(e["time"]).astimezone(zone)
        operator = e["action"] == "operator-view"
        out.append(
            Line(
                seq=e["seq"],
                when=f"{when:%A} {when.day} {when:%B %Y at %H:%M}",
                organisation=(
                    _OPERATOR_ORG
                    if operator and not e["org"]
                    else organisations.get(e["org"], e["org"] or "an unknown organisation")
                ),
                role=_OPERATOR_ROLE if operator else role_name(e.get("role_code") or "", roles),
                purpose=purposes.get(e.get("purpose") or "", e.get("purpose") or "not given"),
                what=(
                    _DONE[e["action"]]
                    if e["outcome"] == "permit"
                    else _REFUSED
                    if refused_look(e)
                    else _LATE
                ),
                emergency=bool(e.get("break_glass_code")) or e.get("basis") == "break-glass",
            )
        )
    return out


def load_roles(path: Path = ROLES_FILE) -> dict[str, str]:
    doc = orjson.loads(path.read_bytes())
    check("ig-job-roles", doc, str(path))
    return dict(doc["roles"])
