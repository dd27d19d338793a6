"""The adapters scr knows, by the name used on the command line."""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import Adapter
from adapters.emis import EmisAdapter
from adapters.systmone import SystmOneAdapter

_FACTORIES: dict[str, Callable[[], Adapter]] = {
    "systmone": SystmOneAdapter,
    "emis": EmisAdapter,
}


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def adapter_for(kind: str) -> Adapter:
    try:
        return _FACTORIES[kind]()
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}; known: {', '.join(kinds())}") from None
