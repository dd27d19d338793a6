"""The demo's sign-in personas: synthetic users at the synthetic region's organisations.

Offered by the sign-in page in ``dev`` mode only. Each is a CIS2-shaped role at one of the
organisations in ``catalogue``; what each may see follows from its role and its organisation's
kind (the directory ``scr synth`` writes), exactly as for a real user.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.synth import catalogue as cat


@dataclass(frozen=True, slots=True)
class Persona:
    key: str
    title: str
    user_id: str
    name: str
    role_code: str
    org: str
    purpose: str = "TREAT"
    #: Where the user lives, as a staff directory would hold it: the IG alert for a record
    #: sharing the user's surname and postcode compares these (docs/ig-console.md).
    postcode: str = "BC99 9ZZ"

    @property
    def surname(self) -> str:
        return self.name.rsplit(" ", 1)[-1]


_CLINICAL = "S8000:G8000:R8000"
PERSONAS = (
    Persona(
        "gp", "GP at Ambridge Surgery", "demo-gp", "Dr Ada Synthetic", _CLINICAL,
        cat.SYSTMONE_PRACTICE.ods,
    ),
    Persona(
        "ae-doctor", "A&E doctor at Borchester General, with no prior relationship", "demo-ae",
        "Dr Ben Synthetic", _CLINICAL, cat.HOSPITAL.ods,
    ),
    Persona(
        "social-worker", "Social worker at Borsetshire Council", "demo-sw", "Cal Synthetic",
        "S8002:G8004:R8014", cat.COUNCIL.ods,
    ),
    Persona(
        "care-home-nurse", "Nurse at Grey Gables Care Home", "demo-chn", "Dee Synthetic",
        "S8000:G8000:R8001", cat.CARE_HOMES[0].ods,
    ),
    Persona(
        "receptionist", "Receptionist at Ambridge Surgery", "demo-rec", "Eve Synthetic",
        "S8001:G8003:R8009", cat.SYSTMONE_PRACTICE.ods,
    ),
    Persona(
        "ig-officer", "Information governance officer", "demo-ig", "Fay Synthetic",
        "S8001:G8002:R8012", cat.IG_OFFICE.ods,
    ),
)  # fmt: skip
BY_KEY = {p.key: p for p in PERSONAS}
