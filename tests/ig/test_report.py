"""The patient access report: exactly the accesses to one person, in plain words, printable."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from audit.entry import time_text
from audit.report import lines, load_roles
from engine.api.deps import SESSION_COOKIE
from tests.api.conftest import NHS, Token
from tests.api.test_access import REASON, everything, post


def test_report_lists_exactly_the_accesses_and_none_of_igs_own_work(
    web: TestClient, token: Token, ig_token: str
) -> None:
    assert everything(web, token("gp")).status_code == 200
    assert everything(web, token("ae-doctor")).status_code == 404
    made = post(web, token("ae-doctor"), "break-glass",
                {"patient": NHS, "reason_code": "5", "reason_text": REASON})  # fmt: skip
    assert made.status_code == 201
    assert everything(web, token("ae-doctor"), "ETREAT").status_code == 200
    web.cookies.set(SESSION_COOKIE, ig_token)
    web.get("/ig", params={"patient": NHS})
    page = web.get("/ig/report", params={"patient": NHS})
    assert page.status_code == 200
    rows = re.findall(r'<tr data-seq="\d+"><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td>'
                      r"<td>([^<]+)</td><td>([^<]+)</td>", page.text)  # fmt: skip
    assert rows == [
        ("A clinician (a doctor or other clinical practitioner)", "Riverside Surgery",
         "treatment", "They looked at your record."),
        ("A clinician (a doctor or other clinical practitioner)", "Borchester General Hospital",
         "treatment", "They tried to see your record and were not allowed to."),
        ("A clinician (a doctor or other clinical practitioner)", "Borchester General Hospital",
         "treatment", "They used emergency access to your record (emergency access)."),
        ("A clinician (a doctor or other clinical practitioner)", "Borchester General Hospital",
         "emergency treatment", "They looked at your record (emergency access)."),
    ]  # fmt: skip
    assert "4 times in all" in page.text and "@media print" in page.text
    later = web.get("/ig/report", params={"patient": NHS, "since": "2999-01-01"})
    assert 'id="no-accesses"' in later.text
    assert web.get("/ig/report", params={"patient": "123"}).status_code == 400


def test_lines_read_as_plain_english_in_local_time() -> None:
    when = datetime(2026, 7, 1, 13, 5, tzinfo=UTC)
    entry = {"seq": 1, "time": time_text(when), "action": "everything", "outcome": "permit",
             "org": "R9Z", "role_code": "S8000:G8000:R8001", "purpose": "TREAT"}  # fmt: skip
    (line,) = lines([entry, entry | {"seq": 2, "action": "ig-view"}],
                    organisations={"R9Z": "Borchester General Hospital"}, roles=load_roles(),
                    purposes={"TREAT": "treatment"}, zone=ZoneInfo("Europe/London"))  # fmt: skip
    assert (line.when, line.role, line.organisation, line.purpose, line.what) == (
        "Wednesday 1 July 2026 at 14:05", "nurse", "Borchester General Hospital", "treatment",
        "looked at your record",
    )  # fmt: skip
