"""The HTTP interface (FastAPI): the read-only FHIR API, through the gate and the audit trail."""

from __future__ import annotations

from engine.api.app import create_app

__all__ = ["create_app"]
