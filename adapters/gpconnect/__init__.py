"""GP Connect Access Record: Structured (FHIR STU3) -> FHIR R4: reading, pulling and mapping."""

from adapters.gpconnect.adapter import GpConnectAdapter
from adapters.gpconnect.read import pull, read, read_pulled
from adapters.gpconnect.request import Consumer, GpConnectError, OperationOutcomeError

__all__ = [
    "Consumer",
    "GpConnectAdapter",
    "GpConnectError",
    "OperationOutcomeError",
    "pull",
    "read",
    "read_pulled",
]
