"""NEWS2 (Royal College of Physicians, 2017): the early warning score a hospital triages on.

A pure function of the observations, scored band by band from the RCP chart (SpO2 scale 1: the
scale for anyone without a confirmed hypercapnic respiratory failure target). Sent with the
observations so the hospital sees the care home's total, and recomputed here so the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Consciousness = Literal["A", "C", "V", "P", "U"]


@dataclass(frozen=True, slots=True)
class Vitals:
    respiration_rate: int
    spo2: int
    on_oxygen: bool
    systolic_bp: int
    pulse: int
    consciousness: Consciousness
    temperature: float


def _band(value: float, bands: tuple[tuple[float, int], ...], top: int) -> int:
    """The score of the first band whose upper bound ``value`` does not exceed."""
    for upper, score in bands:
        if value <= upper:
            return score
    return top


def scores(v: Vitals) -> dict[str, int]:
    """Each parameter's score, as the chart's rows give it."""
    return {
        "respiration_rate": _band(v.respiration_rate, ((8, 3), (11, 1), (20, 0), (24, 2)), 3),
        "spo2": _band(v.spo2, ((91, 3), (93, 2), (95, 1)), 0),
        "air_or_oxygen": 2 if v.on_oxygen else 0,
        "systolic_bp": _band(v.systolic_bp, ((90, 3), (100, 2), (110, 1), (219, 0)), 3),
        "pulse": _band(v.pulse, ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3),
        "consciousness": 0 if v.consciousness == "A" else 3,
        "temperature": _band(v.temperature, ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2),
    }


def total(v: Vitals) -> int:
    return sum(scores(v).values())


def risk(v: Vitals) -> str:
    """The chart's clinical risk: ``high`` (7+), ``medium`` (5–6), ``low-medium`` (a 3 in any
    one parameter) or ``low``."""
    each = scores(v)
    score = sum(each.values())
    if score >= 7:
        return "high"
    if score >= 5:
        return "medium"
    return "low-medium" if 3 in each.values() else "low"
