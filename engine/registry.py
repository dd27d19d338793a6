"""The adapters scr knows, by the name used on the command line."""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import Adapter
from adapters.council import CouncilAdapter
from adapters.emis import EmisAdapter
from adapters.gpconnect import GpConnectAdapter
from adapters.systmone import SystmOneAdapter

_FACTORIES: dict[str, Callable[[], Adapter]] = {
    "systmone": SystmOneAdapter,
    "emis": EmisAdapter,
    "council": CouncilAdapter,
    "gpconnect": GpConnectAdapter,
}


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def adapter_for(kind: str, org: str | None = None) -> Adapter:
    """A fresh adapter; ``org`` names the council when its source does not (the API)."""
    if kind not in _FACTORIES:
        raise ValueError(f"unknown source kind {kind!r}; known: {', '.join(kinds())}")
    if org is not None:
        if kind != "council":
            raise ValueError(f"--org applies to council sources only, not {kind!r}")
        return CouncilAdapter(org)
    return _FACTORIES[kind]()
