"""Every error the API answers is a FHIR OperationOutcome, one issue per problem.

Messages name what was wrong with the request, never what policy hides: a record the user may
not see and a record that does not exist get the same 404 with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Response

FHIR_JSON = "application/fhir+json"
NOT_FOUND = "No such resource, or none you may see"
#: What a 405 allows where reads are: HEAD is answered wherever GET is (``HeadAsGet``).
ALLOW_READS = "GET, HEAD"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"


class FhirError(Exception):
    """Raised anywhere in a request; the app turns it into an OperationOutcome response."""

    def __init__(self, status: int, *problems: Problem, headers: dict[str, str] | None = None):
        super().__init__(problems[0].diagnostics if problems else str(status))
        self.status = status
        self.problems = problems
        self.headers = headers or {}


#: How much of what a client sent an error message repeats back.
SHOWN_CHARS = 64


def echoed(value: str) -> str:
    """``value`` as an error message may repeat it: cut short, so a 20 kB parameter name does
    not come back in full."""
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"


def not_found() -> FhirError:
    return FhirError(404, Problem("not-found", NOT_FOUND))


def outcome(problems: tuple[Problem, ...]) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": p.severity, "code": p.code, "diagnostics": p.diagnostics}
            | ({"expression": [p.expression]} if p.expression else {})
            for p in problems
        ],
    }


def fhir_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers=headers, media_type=FHIR_JSON)


def error_response(error: FhirError) -> Response:
    return fhir_response(outcome(error.problems), error.status, error.headers)
