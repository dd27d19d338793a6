"""Who may take part in a transfer: pure decisions over the user and the transfer.

Only the two organisations a transfer joins see it, and only through the profiles that do the
work at each (care-home staff, hospital clinicians); everyone else gets the same answer as for a
transfer that does not exist.
"""

from __future__ import annotations

from consent import Who
from engine.transfer.store import TransferRow

#: organisation kind → the profile that sends and receives transfers there.
PROFILES = {"care-home": "care-home", "hospital": "clinical"}
#: status → (the side that moves it on, the status it moves to) when that side acknowledges.
NEXT = {"received": ("hospital", "acknowledged"), "discharged": ("care_home", "returned")}


def may_take_part(who: Who) -> bool:
    return PROFILES.get(who.org_kind) == who.profile and who.profile is not None


def may_see(who: Who, row: TransferRow) -> bool:
    return may_take_part(who) and who.org in (row.care_home, row.hospital)


def acknowledgement(who: Who, row: TransferRow) -> str | None:
    """The status ``who`` acknowledging moves the transfer to, if they may now."""
    step = NEXT.get(row.status)
    if step is None or not may_see(who, row):
        return None
    side, status = step
    return status if getattr(row, side) == who.org else None
