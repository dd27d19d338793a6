"""What an operator reads at the command line goes in the audit trail before it is shown.

Quarantined records are source rows as read (names, NHS numbers, clinical values), and the
identity queue and link history name patients: reading them is an access to patients' data
as much as a page is, so an IG officer reviewing the trail sees it. The operator is the login
name, as for manual identity decisions. No policy decides it: the operator role is the
deployment's, and whoever holds the database can read it anyway; the entry says who looked.
If the entry cannot be written, nothing is shown.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from audit import AuditEntry, append


def operator_view(
    engine: Engine,
    asked: str,
    refs: Sequence[str] = (),
    *,
    patient_id: str | None = None,
    nhs_number: str | None = None,
) -> None:
    """Append an ``operator-view`` entry for ``asked`` (the command as typed, in words), naming
    the FHIR resources it shows (``refs``) and the person, when it is about one, so the
    person's access report and a search by patient find it."""
    name = getpass.getuser()
    append(
        engine,
        AuditEntry(
            request_id=str(uuid.uuid4()), action="operator-view", outcome="permit",
            user_id=name, user_name=name, role_code="", profile=None, org="", purpose=None,
            rules=("operator.cli",), refs=tuple(refs), query=asked, patient_id=patient_id,
            nhs_number=nhs_number,
        ),
    )  # fmt: skip
