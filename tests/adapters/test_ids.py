"""Resource ids and source URIs: the fast paths give exactly what the standard library does.

Ids must never change between releases, or a re-ingest would create every resource again.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from adapters.base import _ID_NAMESPACE, SourceRef, resource_id, uuid5
from engine.finish import source_uri


@given(st.text())
def test_uuid5_is_the_standard_uuid5(name: str) -> None:
    assert uuid5(name) == str(uuid.uuid5(_ID_NAMESPACE, name))


def test_resource_id_is_uuid5_of_type_and_key() -> None:
    ref = SourceRef("systmone", "A81001", "SRPatient", "123")
    expected = str(uuid.uuid5(_ID_NAMESPACE, "Patient|systmone|A81001|SRPatient|123"))
    assert ref.resource_id("Patient") == resource_id("Patient", ref.key) == expected


@given(st.text())
def test_source_uri_quotes_every_row_id_as_quote_does(row_id: str) -> None:
    ref = SourceRef("emis", "A 1", "CareRecord_Observation", row_id)
    base = "https://fhir.scr.example/"
    assert source_uri(ref, base) == (
        f"{base}source/emis/A%201/CareRecord_Observation/{quote(row_id, safe='')}"
    )
