"""The server's own log holds no NHS number: the audit trail is where accesses are recorded."""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.serve import server
from tests.factories import nhs_numbers


def test_requests_naming_an_nhs_number_leave_it_out_of_the_server_log(tmp_path: Path) -> None:
    number = next(nhs_numbers(999_700_000))
    url = f"sqlite:///{tmp_path / 'scr.db'}"
    with server(url, tmp_path, workers=1) as served:
        base = served.base
        search = f"{base}/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{number}"
        assert httpx.get(search).status_code == 401
        assert httpx.get(f"{base}/record/{number}").status_code in (200, 303, 401)
    log = (tmp_path / "serve.log").read_text()
    assert "Application startup complete" in log  # the log read is the server's
    assert number not in log
