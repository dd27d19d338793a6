"""Council-style adult social care records: a CSV extract folder, or a paginated JSON API."""

from adapters.council.adapter import CouncilAdapter

__all__ = ["CouncilAdapter"]
