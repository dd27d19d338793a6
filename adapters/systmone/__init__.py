"""SystmOne-style (TPP Strategic Reporting) SR*.csv extracts."""

from adapters.systmone.adapter import SystmOneAdapter

__all__ = ["SystmOneAdapter"]
