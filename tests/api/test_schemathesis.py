"""schemathesis against ``/openapi.json``, in process: every operation, valid and invalid input,
as a signed-in GP over the synthetic store, and no answer may be a 5xx or stray from the
document (status, media type, body shape).

schemathesis's pytest loader for fixture-built schemas does not run on this pytest (it writes a
node attribute pytest 9.2 no longer has), so each operation's cases are drawn with its
Hypothesis strategy here; the examples are bounded and derandomised, so a run is repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, checks
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema

from engine.api import create_app
from tests.api.conftest import PATIENT, Store, Token, auth

#: Sound for a read-only API whose every answer is documented; ``ignored_auth`` resends each
#: call without the token and expects a refusal where the document asks for a bearer token.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]
EXAMPLES = 40
_ABOUT_PATIENT = {"path_parameters": {"patient_id": PATIENT}}
KNOWN: dict[str, dict[str, Any]] = {
    "/fhir/Patient/{patient_id}": _ABOUT_PATIENT,
    "/fhir/Patient/{patient_id}/$everything": _ABOUT_PATIENT,
    "/fhir/{resource_type}": {
        "path_parameters": {"resource_type": "Observation"},
        "query": {"patient": PATIENT},
    },
    "/access/explain": {"query": {"patient": PATIENT}},
}


def api_schema(store: Store) -> BaseSchema:
    """``ignored_auth`` resends hundreds of calls without a token from one address: past the
    refusal limit they would be 429 (engine/api/throttle.py), not the 401 it checks for."""
    settings = replace(store.settings, refusal_limit=1_000_000)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, store.engine))


def operations(schema: BaseSchema) -> list[APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert found, "the document lists no operations"
    return found


def cases(operation: APIOperation) -> st.SearchStrategy[Case]:
    """Valid and invalid input alike, and valid input about the store's one person, so the
    permitted paths (paging, filters) are fuzzed as well as the refusals."""
    modes = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    if operation.path in KNOWN:
        modes.append(operation.as_strategy(**KNOWN[operation.path]))
    return st.one_of(modes)


def fuzz(operation: APIOperation, headers: dict[str, str]) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )  # fmt: skip
    @given(case=cases(operation))
    def run(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def test_no_operation_answers_a_server_error_or_strays_from_the_document(
    store: Store, token: Token
) -> None:
    headers = auth(token("gp"))
    failures: list[str] = []
    for operation in operations(api_schema(store)):
        try:
            fuzz(operation, headers)()
        except (Exception, FailureGroup) as exc:  # every operation is tried, every failure told
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
