"""Searchset Bundles: entries, the visible total, and paging links built from the same page.

The total and the links come from the gate's count of what this user may see, so neither a
page count nor a ``next`` link can reveal that hidden items exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from engine.gate import Item

_MATCH = {"mode": "match"}
_INCLUDE = {"mode": "include"}


def searchset(
    base: str,
    path: str,
    params: Mapping[str, str],
    items: Sequence[Item],
    total: int,
    offset: int = 0,
    count: int | None = None,
    included: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A searchset of ``items`` (one page) with self, first, previous and next links;
    ``included`` resources (Provenance) ride along with search mode ``include``, outside the
    total. Each item's JSON goes in as it is (``orjson.Fragment``), not parsed and written
    again."""

    def link(relation: str, at: int) -> dict[str, str]:
        query = dict(params) | ({"_count": str(count), "_offset": str(at)} if count else {})
        return {"relation": relation, "url": f"{base}{path}?{urlencode(query)}".rstrip("?")}

    links = [link("self", offset)]
    if count:
        links.append(link("first", 0))
        if offset > 0:
            links.append(link("previous", max(0, offset - count)))
        if offset + count < total:
            links.append(link("next", offset + count))
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "total": total,
        "link": links,
        "entry": [
            *(
                {
                    "fullUrl": f"{base}/{i.resource_type}/{i.id}",
                    "resource": orjson.Fragment(i.json),
                    "search": _MATCH,
                }
                for i in items
            ),
            *(
                {
                    # Made for this answer (a Provenance), not kept: no URL of ours would answer.
                    "fullUrl": f"urn:uuid:{r['id']}",
                    "resource": r,
                    "search": _INCLUDE,
                }
                for r in included
            ),
        ],
    }
