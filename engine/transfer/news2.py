"""NEWS2 (Royal College of Physicians, 2017): the early warning score a hospital triages on.

A pure function of the observations, scored band by band from the RCP chart. SpO2 has two
scales: scale 1 for everyone, and scale 2 only for a patient with hypercapnic respiratory
failure whose target range (88–92%) a clinician has set, so that a saturation a COPD patient
lives with is not scored as a danger, and too much oxygen is. Which scale applies is a clinical
decision the caller passes in, never inferred here. Sent with the observations so the hospital
sees the care home's total and the scale it was scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Consciousness = Literal["A", "C", "V", "P", "U"]
#: ACVPU in words: a bare letter is easy to mistake under pressure.
ACVPU: dict[Consciousness, str] = {
    "A": "Alert",
    "C": "New confusion",
    "V": "Responds to voice",
    "P": "Responds to pain",
    "U": "Unresponsive",
}
#: The readings a person can have (low, high): outside them a value is a slip of the keyboard
#: (SpO2 940), which would otherwise be scored and sent as if it were true.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "respiration_rate": (2, 80),
    "spo2": (40, 100),
    "systolic_bp": (40, 300),
    "pulse": (20, 250),
    "temperature": (25.0, 45.0),
}
Scale = Literal[1, 2]
#: What each SpO2 scale is for, in the words the form and the message use.
SCALES: dict[Scale, str] = {
    1: "SpO2 scale 1",
    2: "SpO2 scale 2 (hypercapnic respiratory failure, target 88–92%)",
}


@dataclass(frozen=True, slots=True)
class Vitals:
    respiration_rate: int
    spo2: int
    on_oxygen: bool
    systolic_bp: int
    pulse: int
    consciousness: Consciousness
    temperature: float
    spo2_scale: Scale = 1


def _band(value: float, bands: tuple[tuple[float, int], ...], top: int) -> int:
    """The score of the first band whose upper bound ``value`` does not exceed."""
    for upper, score in bands:
        if value <= upper:
            return score
    return top


def spo2_score(spo2: int, on_oxygen: bool, scale: Scale) -> int:
    """The SpO2 row of the chart. On scale 2, 88–92% scores 0, and so does anything higher
    on air; above 92% on oxygen scores 1, 2 and 3 (93–94, 95–96, 97+)."""
    if scale == 1:
        return _band(spo2, ((91, 3), (93, 2), (95, 1)), 0)
    if spo2 <= 92 or not on_oxygen:
        return _band(spo2, ((83, 3), (85, 2), (87, 1)), 0)
    return _band(spo2, ((94, 1), (96, 2)), 3)


def scores(v: Vitals) -> dict[str, int]:
    """Each parameter's score, as the chart's rows give it."""
    return {
        "respiration_rate": _band(v.respiration_rate, ((8, 3), (11, 1), (20, 0), (24, 2)), 3),
        "spo2": spo2_score(v.spo2, v.on_oxygen, v.spo2_scale),
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


def said(v: Vitals) -> str:
    """The total as every page and message words it: with its risk and the scale it was
    scored on, since a total on scale 2 reads differently."""
    return f"NEWS2 {total(v)} ({risk(v)} risk) on {SCALES[v.spo2_scale]}"
