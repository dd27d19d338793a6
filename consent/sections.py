"""Which record section a stored resource belongs to, by the rules in ``sections.json``.

Profiles are granted sections, not just types: a social worker sees current medications but
not past ones, both ``MedicationStatement``. Placing a resource is a lookup of a few element
values, never an expression, so the rules stay reviewable data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from adapters.labels import label_codes
from consent.model import ResourceMeta
from consent.policy import Policy

#: Where a resource no rule places ends up; no profile lists it, so it is withheld.
UNCLASSIFIED = "unclassified"


def _values(node: Any, path: tuple[str, ...]) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
    elif not path:
        if isinstance(node, str):
            yield node
    elif isinstance(node, dict):
        yield from _values(node.get(path[0]), path[1:])


def section_of(resource: Mapping[str, Any], policy: Policy) -> str:
    """The first matching section rule for the resource's type, else ``unclassified``."""
    for rule in policy.section_rules.get(str(resource.get("resourceType")), ()):
        if not rule.path or any(v in rule.values for v in _values(resource, rule.path)):
            return rule.section
    return UNCLASSIFIED


def meta_of(
    resource: Mapping[str, Any], source_org: str, labels: str, policy: Policy
) -> ResourceMeta:
    """The meta of a stored row: its body, ``source_org`` and space-separated ``labels``.

    Labels in the body's ``meta.security`` count too, so a row whose label column was
    written short still cannot carry a restricted item past the filter.
    """
    return ResourceMeta(
        resource_type=str(resource.get("resourceType")),
        source_org=source_org,
        labels=frozenset(labels.split()) | label_codes(dict(resource)),
        section=section_of(resource, policy),
    )
