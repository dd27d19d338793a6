"""The patient access report: exactly the accesses to one person, in plain words, printable."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from audit.entry import time_text
from audit.report import lines, load_roles
from engine.web.ig import filters_from
from tests.api.conftest import NHS, Token
from tests.api.test_access import REASON, everything, post
from tests.audit.trail import stamped
from tests.ig.conftest import officer


def test_report_lists_exactly_the_accesses_and_none_of_igs_own_work(
    web: TestClient, token: Token, ig_token: str
) -> None:
    assert everything(web, token("gp")).status_code == 200
    assert everything(web, token("ae-doctor")).status_code == 404
    made = post(web, token("ae-doctor"), "break-glass",
                {"patient": NHS, "reason_code": "5", "reason_text": REASON})  # fmt: skip
    assert made.status_code == 201
    assert everything(web, token("ae-doctor"), "ETREAT").status_code == 200
    officer(web, ig_token)
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


#: Tuesday 2 June 2099 at 00:30 in London, still 1 June in UTC (and after the store's person
#: was made, so the report's own span of their record holds it).
_AT = datetime(2099, 6, 1, 23, 30, tzinfo=UTC)


def _when(page: str) -> list[str]:
    return re.findall(r'<tr data-seq="\d+"><td>([^<]+)</td>', page)


def test_report_days_are_the_uk_days_it_shows_its_times_in(
    web: TestClient, token: Token, ig_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stamped(monkeypatch, _AT):
        assert everything(web, token("gp")).status_code == 200
    officer(web, ig_token)
    asked = {"patient": NHS}
    assert _when(web.get("/ig/report", params=asked).text) == ["Tuesday 2 June 2099 at 00:30"]
    on_the_2nd = web.get(
        "/ig/report", params=asked | {"since": "2099-06-02", "until": "2099-06-02"}
    )
    assert _when(on_the_2nd.text) == ["Tuesday 2 June 2099 at 00:30"]
    assert _when(web.get("/ig/report", params=asked | {"until": "2099-06-01"}).text) == []
    assert _when(web.get("/ig/report", params=asked | {"since": "2099-06-03"}).text) == []


def test_a_uk_day_runs_from_local_midnight_to_local_midnight_in_utc() -> None:
    london = ZoneInfo("Europe/London")
    summer = filters_from({"since": "2026-06-02", "until": "2026-06-02"}, london)
    assert (summer.since, summer.until) == (
        datetime(2026, 6, 1, 23, tzinfo=UTC), datetime(2026, 6, 2, 23, tzinfo=UTC)
    )  # fmt: skip
    spring = filters_from({"since": "2026-03-29", "until": "2026-03-29"}, london)  # 23 hours
    assert (spring.since, spring.until) == (
        datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 29, 23, tzinfo=UTC)
    )  # fmt: skip
    plain = filters_from({"since": "2026-06-02", "until": "2026-06-02"})
    assert (plain.since, plain.until) == (
        datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC)
    )  # fmt: skip


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


def test_an_operators_command_line_view_of_the_person_is_a_line() -> None:
    """``scr identity history`` names the person (``engine.operator.operator_view``): the
    person's report tells them, though the operator has no smartcard role or organisation."""
    when = datetime(2026, 7, 1, 13, 5, tzinfo=UTC)
    entry = {"seq": 1, "time": time_text(when), "action": "operator-view", "outcome": "permit",
             "org": "", "role_code": "", "purpose": None, "patient_id": "person-1"}  # fmt: skip
    (line,) = lines([entry], organisations={}, roles=load_roles(), purposes={},
                    zone=ZoneInfo("Europe/London"))  # fmt: skip
    assert (line.role, line.organisation, line.purpose, line.what) == (
        "system administrator", "the team that runs the shared care record", "not given",
        "looked at your details while running the system",
    )  # fmt: skip
