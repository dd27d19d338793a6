"""EMIS-style (EMIS Web partner extract) CSV folders."""

from adapters.emis.adapter import EmisAdapter

__all__ = ["EmisAdapter"]
